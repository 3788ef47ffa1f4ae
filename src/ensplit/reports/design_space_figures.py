"""Figures of the design-space study (Wasay & Idreos): winner heat maps, error vs params, time, memory, EST."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ensplit.analysis.design_space import (  # noqa: E402
    CLASSES,
    SHORT_NAMES,
    SINGLE,
    DesignRecord,
    SwitchoverThreshold,
    accuracy_tables,
    budgets,
    ensemble_wins,
    switchover_epochs,
    thresholds,
    winners,
)
from ensplit.reports.html import epochs  # noqa: E402

COLOURS = {SINGLE: "#9e9e9e", "width_equivalent": "#1f77b4", "depth_equivalent": "#d62728"}
Value = Callable[[DesignRecord], float | None]


def _ks(records: Sequence[DesignRecord]) -> list[int]:
    return sorted({r.group_members for r in records if r.design_class != SINGLE})


def _axes_row(count: int, height: float = 3.4) -> tuple[Figure, list]:
    figure = Figure(figsize=(max(4.2 * count, 5.0), height), layout="constrained")
    axes = figure.subplots(1, count, squeeze=False)[0]
    return figure, list(axes)


def _no_ensembles(height: float = 3.4) -> Figure:
    """A one-panel figure saying why it is empty: no ensemble of any K was formed in the grid (every one was
    too small for the budget), so there is no panel per K to draw."""
    figure = Figure(figsize=(5.0, height), layout="constrained")
    ax = figure.subplots()
    ax.text(0.5, 0.5, "no ensemble of any K could be formed in this grid", ha="center", va="center", fontsize=9)
    ax.set_axis_off()
    return figure


def _budget_labels(records: Sequence[DesignRecord]) -> list[str]:
    return [f"{w}×{d}\n{p / 1000:.3g}k" for p, w, d in budgets(records)]


def winner_heatmaps(records: Sequence[DesignRecord], est: Mapping[int, SwitchoverThreshold]) -> Figure:
    """Seed 001 Fig. 2: the most accurate class per (params, epochs) cell, one panel per K. Hatched cells:
    both ensemble classes beat the single network. Black line: the EST staircase (ensembles win every
    cell above and to the right of it)."""
    ks = _ks(records)
    if not ks:
        return _no_ensembles(height=4.2)
    figure, axes = _axes_row(len(ks), height=4.2)
    cmap = ListedColormap([COLOURS[c] for c in CLASSES])
    labels = _budget_labels(records)
    for ax, k in zip(axes, ks, strict=True):
        tables, _ = accuracy_tables(records, k)
        win = winners(tables).astype(float)
        win[win < 0] = np.nan
        both = ensemble_wins(tables, "both")
        n_budgets, n_epochs = win.shape
        ax.imshow(win.T, origin="lower", aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(CLASSES) - 0.5,
                  interpolation="nearest", extent=(-0.5, n_budgets - 0.5, 0.5, n_epochs + 0.5))
        ii, ee = np.nonzero(both)
        ax.scatter(ii, ee + 1, marker="x", s=8, color="white", linewidths=0.7)
        stairs = est[k].staircase if k in est else ()
        xs, ys = [], []
        for i, e in enumerate(stairs):
            if e is not None:
                xs += [i - 0.5, i + 0.5]
                ys += [e + 0.5, e + 0.5]
        if xs:
            ax.plot(xs, ys, color="black", linewidth=1.6)
            ax.plot([xs[0], xs[0]], [ys[0], n_epochs + 0.5], color="black", linewidth=1.6)
        threshold = est.get(k)
        found = threshold is not None and threshold.params is not None
        where = f"EST ≈ {threshold.params / 1000:.3g}k params, {epochs(threshold.epochs)}" if found else "no EST"
        ax.set_title(f"K = {k}: {where}", fontsize=9)
        ax.set_xticks(range(n_budgets), labels, fontsize=6)
        ax.set_xlabel("single network width×depth / params")
        ax.set_ylabel("epochs")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Patch(color=COLOURS[c], label=SHORT_NAMES[c]) for c in CLASSES]
    axes[-1].legend(handles=handles, fontsize=7, loc="upper left", framealpha=0.8)
    return figure


def error_vs_params(records: Sequence[DesignRecord]) -> Figure:
    """Seed 001 Fig. 3 / C: final test error vs total parameters per class, one line per depth of the
    single networks (marker); dotted: the mean error of the ensemble's individual members."""
    ks = _ks(records)
    if not ks:
        return _no_ensembles()
    figure, axes = _axes_row(len(ks))
    markers = dict(zip(sorted({r.budget_depth for r in records}), "osD^v<>ph", strict=False))
    for ax, k in zip(axes, ks, strict=True):
        for c in CLASSES:
            for depth, marker in markers.items():
                chosen = {(r.budget_width, r.budget_depth): r for r in records  # a single appears once per K
                          if r.design_class == c and r.budget_depth == depth and (c == SINGLE or r.group_members == k)}
                rows = sorted(chosen.values(), key=lambda r: r.params)
                if not rows:
                    continue
                x = [r.params for r in rows]
                ax.plot(x, [100 * (1 - r.accuracy_by_epoch[-1]) for r in rows], "-", marker=marker,
                        color=COLOURS[c], label=f"{SHORT_NAMES[c]}, single depth {depth}", markersize=4)
                if c != SINGLE and all(r.member_accuracy is not None for r in rows):
                    ax.plot(x, [100 * (1 - r.member_accuracy) for r in rows], ":", color=COLOURS[c], linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("total parameters")
        ax.set_ylabel("test error (%) after the last epoch")
        ax.set_title(f"K = {k} (dotted: mean error of the members)", fontsize=9)
        ax.legend(fontsize=6)
    return figure


def grouped_bars(records: Sequence[DesignRecord], value: Value, ylabel: str, title: str,
                 second: Value | None = None, second_label: str = "", log: bool = False,
                 annotate: Callable[[DesignRecord], str] | None = None) -> Figure:
    """One panel per K: per budget, one bar per class (missing bar + '×' = not available / not reached).
    `second` draws a hatched bar beside each class bar (e.g. the member-batched time); `annotate` writes
    a label above each bar."""
    ks = _ks(records)
    if not ks:
        return _no_ensembles()
    figure, axes = _axes_row(len(ks))
    labels = _budget_labels(records)
    order = {(w, d): i for i, (_, w, d) in enumerate(budgets(records))}
    parts = 2 if second is not None else 1
    width = 0.8 / (len(CLASSES) * parts)
    for ax, k in zip(axes, ks, strict=True):
        for j, c in enumerate(CLASSES):
            rows = [r for r in records if r.design_class == c and r.group_members == k]
            for r in rows:
                i = order[(r.budget_width, r.budget_depth)]
                for p, fn in enumerate([value] + ([second] if second is not None else [])):
                    x = i - 0.4 + width * (j * parts + p + 0.5)
                    v = fn(r)
                    if v is None:
                        ax.text(x, 0, "×", ha="center", va="bottom", fontsize=7, color=COLOURS[c])
                        continue
                    ax.bar(x, v, width, color=COLOURS[c], hatch="///" if p else None,
                           edgecolor="white" if p else None, alpha=0.6 if p else 1.0)
                    if annotate is not None and p == 0:
                        ax.text(x, v, annotate(r), ha="center", va="bottom", fontsize=5)
        ax.set_xticks(range(len(labels)), labels, fontsize=6)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}, K = {k}", fontsize=9)
    handles = [Patch(color=COLOURS[c], label=SHORT_NAMES[c]) for c in CLASSES]
    if second is not None:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label=second_label))
    axes[-1].legend(handles=handles, fontsize=7)
    return figure


def est_by_members(records: Sequence[DesignRecord], est: Mapping[int, SwitchoverThreshold]) -> Figure:
    """Seed 001 Fig. 4 / B: per K, the epoch from which an ensemble wins every later epoch at each budget
    (a line over the budgets; missing points: the single network wins the last epoch), and the EST (star)."""
    figure = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = figure.subplots()
    for k in _ks(records):
        tables, params = accuracy_tables(records, k)
        epochs = switchover_epochs(ensemble_wins(tables, "any"))
        x = [p for p, e in zip(params, epochs, strict=True) if e is not None]
        y = [e + 1 for e in epochs if e is not None]
        line = ax.plot(x, y, "o", linestyle="none", label=f"K = {k}", markersize=6, alpha=0.8)[0]
        threshold = est.get(k)
        if threshold is not None and threshold.params is not None:
            ax.plot([threshold.params], [threshold.epochs], "*", markersize=16, color=line.get_color(),
                    markeredgecolor="black", label=f"EST, K = {k}")
    ax.set_xscale("log")
    ax.set_xlabel("single-network parameters (budget)")
    ax.set_ylabel("ensembles win from epoch")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Switchover epoch per budget; ★ = EST", fontsize=9)
    if _ks(records):  # no K formed an ensemble: nothing to label
        ax.legend(fontsize=7)
    return figure


def _mb(value: int | None) -> float | None:
    return None if value is None else value / 2**20


def summary_table(records: Sequence[DesignRecord]) -> list[dict[str, object]]:
    """One row per record for the report's table (final-epoch metrics, times, memory)."""
    rows = []
    for r in records:
        rows.append({
            "K": r.group_members, "budget w×d": f"{r.budget_width}×{r.budget_depth}",
            "class": SHORT_NAMES[r.design_class], "member w×d": f"{r.width}×{r.depth}", "members": r.members,
            "params": r.params, "acc (last)": r.accuracy_by_epoch[-1], "acc (best)": max(r.accuracy_by_epoch),
            "member acc": r.member_accuracy, "NLL": r.nll, "CNLL": r.cnll,
            "s/epoch": r.seconds_per_epoch, "s/epoch batched": r.seconds_per_epoch_batched,
            "s to single acc": r.time_to_single_accuracy, "ms/ex b=1": r.inference_ms_batch1,
            "ms/ex large": r.inference_ms_large_batch, "peak MiB": _mb(r.peak_memory_bytes),
            "peak MiB batched": _mb(r.peak_memory_bytes_batched), "layers": r.layers,
        })
    return rows


def _ms_per_layer(r: DesignRecord) -> float | None:
    """Milliseconds per parameterised layer per epoch (members one after another), or None if not timed."""
    return None if r.seconds_per_epoch is None or not r.layers else 1000 * r.seconds_per_epoch / r.layers


def _corner(records: Sequence[DesignRecord], t: SwitchoverThreshold) -> str:
    """A threshold's corner in words: params (budget width×depth), epochs; or "not reached"."""
    if t.params is None:
        return "not reached"
    _, w, d = budgets(records)[t.budget_index]
    return f"{t.params:,} params ({w}×{d}), {epochs(t.epochs)}"


def _cells_won(records: Sequence[DesignRecord], k: int) -> dict[str, object]:
    """For K = k: the share of cells an ensemble wins and the budgets an ensemble wins at the last epoch."""
    tables, _ = accuracy_tables(records, k)
    wins = ensemble_wins(tables, "any")
    last = [f"{w}×{d}" for (_, w, d), ok in zip(budgets(records), wins[:, -1], strict=True) if ok]
    return {"cells won by an ensemble": f"{wins.mean():.0%}", "budgets won at the last epoch": ", ".join(last)}


def _est_rows(records: Sequence[DesignRecord], est: Mapping[int, SwitchoverThreshold],
              fraction: float) -> list[dict[str, object]]:
    """One table row per K: the EST of any ensemble and of each ensemble class alone, and the cells won."""
    by_class = {c: thresholds(records, which=c, min_fraction=fraction) for c in CLASSES if c != SINGLE}
    return [{"K": k, "EST (any ensemble)": _corner(records, t),
             **{f"{SHORT_NAMES[c]} only": _corner(records, by_class[c][k]) for c in by_class}, **_cells_won(records, k)}
            for k, t in sorted(est.items())]


def report_sections(records: Sequence[DesignRecord], est: Mapping[int, SwitchoverThreshold], memory_method: str,
                    notes: Sequence[str] = ()) -> list:
    """The design-space report: every figure of issue 5, then the full table."""
    from ensplit.reports.html import Section

    fraction = next(iter(est.values())).min_fraction if est else 1.0
    est_rows = _est_rows(records, est, fraction)
    return [
        Section("Which class wins", "Most accurate class per (parameter budget, epochs) cell; white × marks "
                "cells where both ensemble classes beat the single network; the black staircase bounds the "
                "region (up and to the right) where an ensemble wins every cell: its corner is the EST.",
                [(winner_heatmaps(records, est), "Winner per cell (Wasay & Idreos, Fig. 2)")]),
        Section("Ensemble Switchover Threshold per K", f"EST: the smallest (budget, epochs) corner beyond which "
                f"ensembles win at least {fraction:.0%} of the grid's cells (Wasay & Idreos expect it to move right as "
                "K grows, since members get smaller).",
                [(est_by_members(records, est), "Switchover epoch per budget and EST per K (Wasay & Idreos, Fig. 4)")],
                table=est_rows),
        Section("Error vs parameters", "", [(error_vs_params(records), "Test error after the last epoch")]),
        Section("Time to the single network's accuracy", "Training seconds (members one after another, as in "
                "the paper) until each class first reaches the single network's best test accuracy; × = never.",
                [(grouped_bars(records, lambda r: r.time_to_single_accuracy, "seconds", "time to single acc."),
                  "Time to accuracy (Wasay & Idreos, Fig. 5)")]),
        Section("Training time per epoch", "Solid: members one after another (the paper's protocol); hatched: "
                "all members in one member-batched network. Median of repeated timed runs after warm-up.",
                [(grouped_bars(records, lambda r: r.seconds_per_epoch, "seconds per epoch", "epoch time",
                               second=lambda r: r.seconds_per_epoch_batched, second_label="member-batched"),
                  "Per-epoch time (Wasay & Idreos, Fig. 6)"),
                 (grouped_bars(records, _ms_per_layer, "ms per layer per epoch", "per-layer time",
                               annotate=lambda r: str(r.layers)),
                  "Breakdown (Wasay & Idreos §5): epoch time (one after another) = time per layer × total "
                  "parameterised layers of all members (the number above each bar)")]),
        Section("Inference time", "Milliseconds per example, members one after another, eval mode.",
                [(grouped_bars(records, lambda r: r.inference_ms_batch1, "ms per example", "batch 1"),
                  "Inference at batch 1 (Wasay & Idreos, Fig. 7)"),
                 (grouped_bars(records, lambda r: r.inference_ms_large_batch, "ms per example", "large batch"),
                  "Inference at a large batch")]),
        Section("Peak training memory", f"Method: {memory_method}. Solid: one member at a time (the paper's "
                "protocol); hatched: all members member-batched.",
                [(grouped_bars(records, lambda r: _mb(r.peak_memory_bytes), "MiB", "peak memory",
                               second=lambda r: _mb(r.peak_memory_bytes_batched), second_label="member-batched"),
                  "Peak training memory (Wasay & Idreos, Fig. 8)")]),
        Section("All measurements", " ".join(notes), table=summary_table(records)),
    ]
