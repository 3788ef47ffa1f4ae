"""Seconds per epoch, defined once: the figure every command reports as `seconds_per_epoch`.

The training loop records each epoch's wall-clock seconds (`TrainResult.seconds_per_epoch`, predictions and
callbacks excluded); `ensplit.train.measure` records timed runs of a fixed number of steps. Both become one
number by the same rule, `steady_median`: drop the warm-up, take the median of the rest.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

WARMUP_EPOCHS = 1  # the first epoch pays one-time costs: lazy imports, allocator growth, kernel selection, compile


def steady_median(runs: Sequence[float], warmup: int) -> float:
    """The median of `runs` (seconds) after the first `warmup` of them; of all of them when none is left.

    Median, not mean: on a shared machine a stall (another process, a page-cache miss) lengthens one run in a
    few; it moves the mean of a handful of runs but not their median, which equals the mean when runs are steady.
    """
    if not runs:
        raise ValueError("no timed runs")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    return float(statistics.median(runs[warmup:] or runs))


def seconds_per_epoch(epoch_seconds: Sequence[float]) -> float:
    """The reported seconds per training epoch of one run, from the loop's per-epoch seconds: the median of the
    epochs after the first (the first carries the warm-up, see WARMUP_EPOCHS); a one-epoch run's only epoch,
    warm-up included (an overestimate, the only figure there is)."""
    return steady_median(epoch_seconds, WARMUP_EPOCHS)
