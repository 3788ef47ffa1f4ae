"""Seed-000 figures beyond CNLL: NLL at fixed temperatures (Fig. 2), uncalibrated NLL_s (Fig. 4), LE-NLL
against CNLL (eqs. 4–5, App. D), power-law parameters against s (Fig. 3), per-n prediction error (Fig. 6).

Every function takes plain arrays and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ensplit.reports.study_figures import _colors, plt
from ensplit.reports.ticks import count_axis, loss_axis, parameter_axis, temperature_axis

Predictor = Callable[[np.ndarray], np.ndarray]
ParamRows = Mapping[str, np.ndarray]  # "a", "b", "c", "rmse" -> values along the x axis


def _log_y_if_positive(ax) -> None:
    """Log y axis when the plotted data has positive finite values (NaN-only panels stay linear)."""
    values = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()] or [np.array([])])
    if np.any(np.isfinite(values) & (values > 0)):
        ax.set_yscale("log")


def nll_tau_curves(n: np.ndarray, taus: np.ndarray, nll: np.ndarray, fits: Sequence[Predictor | None],
                   params: int, mode: str = "before", shown: int = 7) -> Figure:
    """NLL_n(τ) against n at `shown` temperatures spread over the grid, with their power-law fits.

    nll: `[len(n), len(taus)]`; fits: one predictor (or None) per τ."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    picks = np.unique(np.linspace(0, len(taus) - 1, min(shown, len(taus))).round().astype(int))
    grid = np.geomspace(1, n.max(), 100)
    for color, t in zip(_colors(len(picks)), picks, strict=True):
        ax.plot(n, nll[:, t], "o", ms=4, color=color, label=f"τ = {taus[t]:.3g}")
        if fits[t] is not None:
            ax.plot(grid, fits[t](grid), "-", lw=1, color=color)
    ax.set(xscale="log", yscale="log", xlabel="ensemble size n", ylabel="NLL_n(τ)",
           title=f"NLL_n(τ), τ {mode} averaging, s = {params:,}")
    loss_axis(ax)
    count_axis(ax)
    ax.legend(fontsize=7, ncol=2)
    return fig


def temperature_parameters(laws: Mapping[int, tuple[np.ndarray, ParamRows]],
                           optimum: Mapping[int, tuple[float, float]]) -> Figure:
    """a, b, c and RMSE of the NLL_n(τ) power laws against τ, one line per member size (Lobacheva et al. Fig. 2);
    ★ marks τ* = argmin c(τ) of each size. laws[s] = (τ values, {"a", "b", "c", "rmse"})."""
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 7))
    axes = axes.ravel()
    for color, s in zip(_colors(len(laws)), sorted(laws), strict=True):
        taus, rows = laws[s]
        for ax, key in zip(axes, ("a", "b", "c", "rmse"), strict=True):
            ax.plot(taus, rows[key], "-o", ms=3, color=color, label=f"s = {s:,}")
        if s in optimum:
            axes[2].plot(*optimum[s], "*", ms=13, color=color, mec="k", zorder=5)
    all_taus = np.concatenate([laws[s][0] for s in laws])
    for ax, key in zip(axes, ("a", "b", "c = NLL_∞(τ)   (★ τ* = argmin c)", "RMSE"), strict=True):
        ax.set(xscale="log", xlabel="temperature τ", title=key)
        temperature_axis(ax, all_taus)
    _log_y_if_positive(axes[1])
    _log_y_if_positive(axes[3])
    axes[0].axhline(-1, color="grey", ls=":", lw=1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def nll_and_cnll_s(params: Sequence[int], nll: Sequence[float], cnll: Sequence[float], nll_fit: Predictor | None,
                   cnll_fit: Predictor | None) -> Figure:
    """Uncalibrated NLL_s (τ = 1) and CNLL_s of single networks against their size, with fits (Fig. 4 left)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    grid = np.geomspace(min(params), max(params), 100)
    for values, fit, color, name in ((nll, nll_fit, "C3", "NLL (τ = 1)"), (cnll, cnll_fit, "C0", "CNLL")):
        ax.plot(params, values, "o", color=color, label=f"{name}, n = 1")
        if fit is not None:
            ax.plot(grid, fit(grid), "-", lw=1, color=color, label=f"{name} power-law fit")
    ax.set(xscale="log", yscale="log", xlabel="parameters s", ylabel="NLL", title="NLL_s and CNLL_s (single network)")
    parameter_axis(ax.xaxis)
    loss_axis(ax)
    ax.legend(fontsize=8)
    return fig


def le_nll_against_cnll(curves: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Figure:
    """Left: CNLL_n (points) and LE-NLL_n (lines) per member size. Right: LE-NLL_n − CNLL_n.

    curves[s] = (n, CNLL_n, LE-NLL_n)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for color, s in zip(_colors(len(curves)), sorted(curves), strict=True):
        n, cnll, le = curves[s]
        left.plot(n, cnll, "o", ms=4, color=color, label=f"CNLL, s = {s:,}")
        left.plot(n, le, "-", lw=1.2, color=color)
        right.plot(n, le - cnll, "-o", ms=3, color=color, label=f"s = {s:,}")
    left.set(xscale="log", yscale="log", xlabel="ensemble size n", ylabel="NLL",
             title="CNLL_n (points) and LE-NLL_n (lines)")
    loss_axis(left)
    count_axis(left)
    left.legend(fontsize=7)
    right.axhline(0, color="grey", lw=1)
    right.set(xscale="log", xlabel="ensemble size n", ylabel="LE-NLL − CNLL (nats)",
              title="LE-NLL_n − CNLL_n (min over τ outside vs inside the mean)")
    count_axis(right)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def parameters_against_s(params: Sequence[int], rows: Mapping[str, ParamRows], unit: str) -> Figure:
    """a, b, c and RMSE of the power laws in n against the member size s (Lobacheva et al. Fig. 3).

    rows: a label ("CNLL_n", "NLL_n") -> {"a", "b", "c", "rmse"} `[len(params)]` (NaN where not fitted)."""
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 7))
    axes = axes.ravel()
    for (label, values), marker in zip(rows.items(), ("-o", "--s", ":^"), strict=False):
        for ax, key in zip(axes, ("a", "b", "c", "rmse"), strict=True):
            ax.plot(params, values[key], marker, ms=4, label=label)
    for ax, key in zip(axes, ("a", "b", "c", f"RMSE ({unit})"), strict=True):
        ax.set(xscale="log", xlabel="member size s (parameters)", title=key)
        parameter_axis(ax.xaxis)
    _log_y_if_positive(axes[3])
    axes[0].axhline(-1, color="grey", ls=":", lw=1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def prediction_rmse_per_n(curves: Mapping[int, tuple[np.ndarray, np.ndarray]], fit_max_n: int, resample: str
                          ) -> Figure:
    """RMSE over the repeats of the predicted CNLL_n against the measured one, per n (Lobacheva et al. Fig. 6 left).

    curves[s] = (n, RMSE); the shaded region n ≤ fit_max_n is where the law was fitted. With no curves (every
    pool has fewer than 3 networks, too few to fit) the figure says so."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if not curves:
        ax.text(0.5, 0.5, "No predictions: every pool has fewer than 3 networks,\ntoo few to fit a power law in n.",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for color, s in zip(_colors(len(curves)), sorted(curves), strict=True):
        n, rmse = curves[s]
        ax.plot(n, rmse, "-o", ms=4, color=color, label=f"s = {s:,}")
    ax.axvspan(0.8, fit_max_n + 0.5, color="grey", alpha=0.15, lw=0)
    _log_y_if_positive(ax)
    ax.set(xscale="log", xlabel="ensemble size n", ylabel="RMSE of predicted CNLL (nats)",
           title=f"Prediction error per n (fit on n ≤ {fit_max_n}, {resample} repeats)")
    count_axis(ax)
    ax.legend(fontsize=7)
    return fig
