"""The two-budget view of `ensplit recommend`'s report: every candidate's parameters against its inference FLOPs
per example, coloured by predicted CNLL, with the Pareto front over (parameters, FLOPs, predicted CNLL) marked."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ensplit.analysis.pareto import pareto_front
from ensplit.reports.ticks import compact, parameter_axis


def front_flags(ranked: list[Any]) -> list[bool]:
    """For each ranked candidate: whether no other has <= parameters, <= FLOPs and <= predicted CNLL (one <)."""
    return pareto_front([(a.candidate.params, a.flops, a.prediction.value) for a in ranked])


FONT = 7  # label size in points; a bold character is about 0.62 of it wide, a line 1.3 of it tall
CHAR, LINE = 0.62 * FONT, 1.3 * FONT


def label_lines(names: list[str], points: list[tuple[float, float]], char: float = CHAR,
                line: float = LINE) -> list[int]:
    """How many text lines above its usual place each name goes (`points`: where each point is drawn, in
    points), so that no label overlaps one placed before it: labels are placed in order, each at the lowest
    free height, and stay beside their own point."""
    placed: list[tuple[float, float, float, float]] = []
    lifts = []
    for name, (x, y) in zip(names, points, strict=True):
        left, right = x + 5, x + 5 + char * len(name)
        lift = 0
        while any(left < r and l < right and y + 4 + lift * line < t and b < y + 4 + (lift + 1) * line
                  for l, r, b, t in placed):
            lift += 1
        placed.append((left, right, y + 4 + lift * line, y + 4 + (lift + 1) * line))
        lifts.append(lift)
    return lifts


def pareto_figure(result: Any) -> Figure:
    """Parameters × inference FLOPs per example of every candidate (log-log); the front ringed and named (the
    rest unnamed: the table names them),
    candidates dropped by the FLOPs budget as crosses at width 1, both budgets as dashed lines."""
    figure = Figure(figsize=(8.6, 5.0), layout="constrained")
    ax = figure.subplots()
    ranked = result.ranked
    flags = front_flags(ranked)
    values = [a.prediction.value for a in ranked]
    points = ax.scatter([a.candidate.params for a in ranked], [a.flops for a in ranked], c=values, cmap="viridis_r",
                        s=[90 if f else 40 for f in flags], edgecolors=["black" if f else "none" for f in flags],
                        linewidths=1.5, zorder=3)
    figure.colorbar(points, ax=ax, label="predicted CNLL at the budget (nats)")
    if result.dropped:
        ax.scatter([a.candidate.params for a in result.dropped], [a.flops for a in result.dropped], marker="x",
                   color="C3", label="dropped: above the FLOPs budget even at width 1", zorder=3)
    ax.scatter([], [], s=90, facecolors="none", edgecolors="black", linewidths=1.5,
               label="Pareto front (params, FLOPs, predicted CNLL)")
    ax.axvline(result.config.budget, color="0.4", linestyle="--", linewidth=1,
               label=f"parameter budget {result.config.budget:,}")
    if result.config.flops_budget is not None:
        ax.axhline(result.config.flops_budget, color="C3", linestyle="--", linewidth=1,
                   label=f"FLOPs budget {result.config.flops_budget:,}")
    _scale(ax.xaxis, ax.set_xscale)
    _scale(ax.yaxis, ax.set_yscale)
    _name_front(ax, [a for a, f in zip(ranked, flags, strict=True) if f])
    ax.set_xlabel("parameters")
    ax.set_ylabel("inference FLOPs per example")
    ax.set_title("Two budgets: parameters and inference FLOPs of every candidate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    return figure


def _name_front(ax: Any, front: list[Any]) -> None:
    """Name the front only (candidates at one budget crowd together; the table names all); a label that would
    overlap another is lifted by whole lines, with a thin leader to its point."""
    scale = 72 / ax.figure.dpi  # display pixels to points
    points = [tuple(v * scale for v in ax.transData.transform((a.candidate.params, a.flops))) for a in front]
    names = [a.candidate.name for a in front]
    for a, name, lift in zip(front, names, label_lines(names, points), strict=True):
        ax.annotate(name, (a.candidate.params, a.flops), xytext=(5, 4 + lift * LINE), textcoords="offset points",
                    fontsize=FONT, fontweight="bold", va="bottom",
                    arrowprops=dict(arrowstyle="-", color="0.5", linewidth=0.5) if lift else None)


def _scale(axis: Any, set_scale: Any) -> None:
    """Log scale where the values span a decade or more, linear otherwise (a FLOPs budget packs them close)."""
    low, high = axis.get_view_interval()
    if low > 0 and high / low >= 10:
        set_scale("log")
        parameter_axis(axis)
    else:
        axis.set_major_formatter(FuncFormatter(compact))
