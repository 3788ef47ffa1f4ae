"""The two-budget view of `ensplit recommend`'s report: every candidate's parameters against its inference FLOPs
per example, coloured by predicted CNLL, with the Pareto front over (parameters, FLOPs, predicted CNLL) marked."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ensplit.analysis.pareto import pareto_front


def front_flags(ranked: list[Any]) -> list[bool]:
    """For each ranked candidate: whether no other has <= parameters, <= FLOPs and <= predicted CNLL (one <)."""
    return pareto_front([(a.candidate.params, a.flops, a.prediction.value) for a in ranked])


def front_labels(front: list[Any], near: float = 0.02) -> list[tuple[tuple[int, int], list[str]]]:
    """The front's names grouped by position: candidates within `near` of each other in log10 of both
    parameters and FLOPs share one label (at the first one's point), in rank order."""
    groups: list[tuple[tuple[int, int], list[str]]] = []
    for a in front:
        x, y = math.log10(a.candidate.params), math.log10(a.flops)
        for (params, flops), names in groups:
            if abs(math.log10(params) - x) < near and abs(math.log10(flops) - y) < near:
                names.append(a.candidate.name)
                break
        else:
            groups.append(((a.candidate.params, a.flops), [a.candidate.name]))
    return groups


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
    for (params, flops), names in front_labels([a for a, f in zip(ranked, flags, strict=True) if f]):
        # only the front is named (candidates at one budget crowd together; the table names all), and names of
        # points that nearly coincide are stacked in one label instead of printed over each other
        ax.annotate("\n".join(names), (params, flops), xytext=(5, 4), textcoords="offset points", fontsize=7,
                    fontweight="bold", va="bottom")
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
    ax.set_xlabel("parameters")
    ax.set_ylabel("inference FLOPs per example")
    ax.set_title("Two budgets: parameters and inference FLOPs of every candidate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    return figure


def _compact(value: float, _position: Any = None) -> str:
    """2.7k, 15k, 1.2M: counts written plainly, without 10^k."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _scale(axis: Any, set_scale: Any) -> None:
    """Log scale where the values span a decade or more, linear otherwise (a FLOPs budget packs them close)."""
    low, high = axis.get_view_interval()
    if low > 0 and high / low >= 10:
        set_scale("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # labels at 1, 2, 5: a decade has three
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(_compact))
