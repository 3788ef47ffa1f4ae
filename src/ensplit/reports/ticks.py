"""Tick labels that read as numbers on the log axes of every report: parameter counts as 17k, 2.7M (at 1, 2 and
5 per decade), ensemble sizes as whole numbers, losses at round values and temperatures at powers of two, never
as 2×10^4."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import FixedLocator, FormatStrFormatter, FuncFormatter, LogLocator, NullFormatter

COUNT_TICKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def compact(value: float, _position: Any = None) -> str:
    """2.7k, 15k, 1.2M: counts written plainly, without 10^k."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def parameter_axis(axis: Any) -> None:
    """A log axis of counts (parameters, FLOPs): ticks at 1, 2 and 5 per decade, labelled compactly, no minor
    labels."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(compact))
    axis.set_minor_formatter(NullFormatter())


def _fixed(axis: Any, ticks: Any) -> None:
    """Major ticks exactly at `ticks`, written plainly (%g), no minor labels."""
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def count_axis(ax: Any) -> None:
    """The x axis of ensemble sizes n on a log scale: whole numbers (1, 2, 3, 4, 6, 8, …), every other one when
    more than nine fit. Call after plotting (reads the axis limits)."""
    low, high = ax.get_xlim()
    ticks = [t for t in COUNT_TICKS if low <= t <= high]
    if len(ticks) > 9:
        ticks = ticks[::2]
    _fixed(ax.xaxis, ticks)
    ax.set_xlim(low, high)


def loss_axis(ax: Any) -> None:
    """CNLL spans well under a decade: tick a log y axis at round values (0.9, 1.0, 1.1) in plain numbers
    rather than at powers of ten. Call after plotting (reads the axis limits)."""
    low, high = ax.get_ylim()
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0):
        ticks = np.arange(np.ceil(low / step) * step, high, step)
        if len(ticks) <= 8:
            break
    if len(ticks) >= 2:
        _fixed(ax.yaxis, ticks)
    ax.set_ylim(low, high)


def temperature_axis(ax: Any, taus: np.ndarray) -> None:
    """A log τ axis ticked at powers of two in plain numbers (0.25, 0.5, 1, 2, 4), not 2×10⁻¹."""
    low, high = float(np.min(taus)), float(np.max(taus))
    _fixed(ax.xaxis, [2.0 ** k for k in range(int(np.floor(np.log2(low))), int(np.ceil(np.log2(high))) + 1)])
