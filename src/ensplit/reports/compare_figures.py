"""Figures of `ensplit compare`: metrics against parameters (MixtureEnsembles, Figure 3 left) and against the number
of members (Figure 3 right). Rows are dicts as `ensplit.experiments.compare.stored_row` returns them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

LABELS = {"accuracy": "test accuracy", "cnll": "CNLL (nats)", "nll": "NLL (nats)", "ece": "ECE (%)"}


def _by_method(rows: Sequence[dict[str, Any]], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get(y) is not None:
            series.setdefault(row["method"], []).append((row[x], row[y]))
    return {m: sorted(points) for m, points in series.items()}


def metric_vs(rows: Sequence[dict[str, Any]], x: str, y: str, title: str, log_x: bool = False) -> Figure:
    """One line per method of metric `y` against `x` ("params" or "members")."""
    figure = Figure(figsize=(5.2, 3.8))
    ax = figure.subplots()
    for method, points in _by_method(rows, x, y).items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=method)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("parameters (whole ensemble)" if x == "params" else "members")
    ax.set_ylabel(LABELS.get(y, y))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure
