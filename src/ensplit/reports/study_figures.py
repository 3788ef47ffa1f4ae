"""The figures of Lobacheva et al. 2020, one function each, from plain arrays.

Inputs are small mappings so that `ensplit study` and `ensplit analyze` (bring-your-own predictions)
share them: `curves` maps params-per-member s to (n values, CNLL means, CNLL stds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ensplit.reports.ticks import count_axis, loss_axis, parameter_axis  # noqa: E402

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]  # n, mean CNLL, std CNLL
Predictor = Callable[[np.ndarray], np.ndarray]


def _colors(count: int) -> list:
    """`count` colours along viridis (none for 0: callers zip them strictly with their curves)."""
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.05, 0.9, count)]


def ns_plane(curves: Mapping[int, Curve]) -> Figure:
    """CNLL over the (n, s) plane, with lines of constant budget B = n·s."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    sizes = sorted(curves)
    points = [(n, s, c) for s in sizes for n, c in zip(curves[s][0], curves[s][1], strict=True)]
    n, s, c = (np.array(v, dtype=float) for v in zip(*points, strict=True))
    sc = ax.scatter(n, s, c=c, cmap="viridis_r", s=90, marker="s")
    fig.colorbar(sc, ax=ax, label="CNLL")
    budgets = np.geomspace(s.min(), (n * s).max(), 6)
    grid = np.geomspace(1, n.max(), 50)
    for b in budgets:
        ax.plot(grid, b / grid, color="grey", lw=0.9, ls=(0, (1, 3)))  # dotted at any size
    ax.set(xscale="log", yscale="log", xlabel="ensemble size n", ylabel="member size s (parameters)",
           ylim=(s.min() / 1.5, s.max() * 1.5), xlim=(0.8, n.max() * 1.25), title="CNLL on the (n, s) plane")
    count_axis(ax)
    parameter_axis(ax.yaxis)
    return fig


def cnll_n(curves: Mapping[int, Curve], fits: Mapping[int, Predictor | None], metric: str = "CNLL") -> Figure:
    """CNLL_n (or another metric: `metric` names the axis) for each member size with its power-law fit,
    log-log axes."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for color, s in zip(_colors(len(curves)), sorted(curves), strict=True):
        n, mean, std = curves[s]
        ax.errorbar(n, mean, yerr=std, fmt="o", ms=4, color=color, label=f"s = {s:,}")
        if fits.get(s) is not None:
            grid = np.geomspace(1, n.max(), 100)
            ax.plot(grid, fits[s](grid), color=color, lw=1)
    ax.set(xscale="log", yscale="log", xlabel="ensemble size n", ylabel=metric,
           title=f"{metric}_n with power-law fits c + b·n^a")
    loss_axis(ax)
    count_axis(ax)
    ax.legend(fontsize=7)
    return fig


def cnll_s(params: Sequence[int], cnll: Sequence[float], fit: Predictor | None) -> Figure:
    """CNLL of a single network (n = 1) against its size."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(params, cnll, "o", label="measured (n = 1)")
    if fit is not None:
        grid = np.geomspace(min(params), max(params), 100)
        ax.plot(grid, fit(grid), "-", label="power-law fit")
    ax.set(xscale="log", yscale="log", xlabel="parameters s", ylabel="CNLL", title="CNLL_s (single network)")
    loss_axis(ax)
    parameter_axis(ax.xaxis)
    ax.legend()
    return fig


def cnll_b(points: Sequence[tuple[int, int, int, float]], envelope: Sequence[tuple[int, float]],
           fit: Predictor | None) -> Figure:
    """All ensembles as (budget, CNLL) coloured by n, their lower envelope CNLL_B and its fit.

    points: (n, s, B, cnll); envelope: (B, best cnll)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    n = np.array([p[0] for p in points], dtype=float)
    sc = ax.scatter([p[2] for p in points], [p[3] for p in points], c=np.log2(n), cmap="plasma", s=14, alpha=0.8)
    fig.colorbar(sc, ax=ax, label="log2 n")
    eb, ec = zip(*envelope, strict=True)
    ax.step(eb, ec, "k-", where="post", lw=1.2, label="lower envelope CNLL_B")
    ax.plot(eb, ec, "ko", ms=4)
    if fit is not None:
        grid = np.geomspace(min(eb), max(eb), 100)
        ax.plot(grid, fit(grid), "r--", lw=1, label="power-law fit")
    ax.set(xscale="log", yscale="log", xlabel="total parameters B = n·s", ylabel="CNLL", title="CNLL_B")
    loss_axis(ax)
    parameter_axis(ax.xaxis)
    ax.legend(fontsize=8)
    return fig


def msa_curves(budget_curves: Mapping[int, Sequence[tuple[int, float]]]) -> Figure:
    """Memory-split curves: CNLL against n at several fixed budgets (n·s ≈ B)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for color, b in zip(_colors(len(budget_curves)), sorted(budget_curves), strict=True):
        n, c = zip(*sorted(budget_curves[b]), strict=True)
        ax.plot(n, c, "-o", ms=4, color=color, label=f"B = {b:,}")
        best = int(np.argmin(c))
        ax.plot(n[best], c[best], "*", ms=12, color=color, mec="k")
    ax.set(xscale="log", xlabel="ensemble size n (members of size B/n)", ylabel="CNLL",
           title="Memory split: CNLL vs n at fixed budget (★ = optimum)")
    count_axis(ax)
    ax.legend(fontsize=7)
    return fig


def prediction(measured: Mapping[int, Curve], predicted: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray,
               np.ndarray]], fit_max_n: int) -> Figure:
    """Predicted vs measured CNLL_n for large n, fitted on n ≤ fit_max_n, with 5–95% predictive bands (where one
    new n-network ensemble's CNLL falls).

    predicted[s] = (n grid, point prediction, lower, upper)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for color, s in zip(_colors(len(measured)), sorted(measured), strict=True):
        n, mean, _ = measured[s]
        ax.plot(n, mean, "o", ms=4, color=color, label=f"s = {s:,}")
        if s in predicted:
            grid, mid, lo, hi = predicted[s]
            ax.plot(grid, mid, "--", color=color, lw=1)
            ax.fill_between(grid, lo, hi, color=color, alpha=0.2)
    ax.axvline(fit_max_n, color="grey", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="ensemble size n", ylabel="CNLL",
           title=f"Predicted (dashed, fit on n ≤ {fit_max_n}, 90% predictive band) vs measured")
    loss_axis(ax)
    count_axis(ax)
    ax.legend(fontsize=7)
    return fig


def optimal_splits(rows: Sequence[dict]) -> Figure:
    """Optimal number of members per budget: predicted vs measured.

    rows: dicts with budget, measured_n, predicted_n and optionally predicted_range (lo, hi) over resamples."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    budgets = [r["budget"] for r in rows]
    ax.plot(budgets, [r["measured_n"] for r in rows], "o-", label="measured optimum")
    predicted = np.array([r["predicted_n"] for r in rows], dtype=float)
    ranges = [r.get("predicted_range") or (r["predicted_n"], r["predicted_n"]) for r in rows]
    spread = np.array([[p - lo for p, (lo, _) in zip(predicted, ranges, strict=True)],
                       [hi - p for p, (_, hi) in zip(predicted, ranges, strict=True)]])
    ax.errorbar(budgets, predicted, yerr=np.clip(spread, 0, None), fmt="x--", ms=9, capsize=3,
                label="predicted from small ensembles (5–95% over resamples)")
    ax.set(xscale="log", yscale="log", xlabel="budget B (parameters)", ylabel="optimal n",
           title="Optimal memory split")
    parameter_axis(ax.xaxis)
    ax.legend()
    return fig
