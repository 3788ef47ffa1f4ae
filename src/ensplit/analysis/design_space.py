"""The design space of Wasay & Idreos: which class wins each (parameter budget, epochs) cell.

Pure logic on accuracy tables; nothing here trains or times a network. An accuracy table holds, for
one design class, the test accuracy `[budgets, epochs]` (rows sorted by the single network's parameter
count, column e = accuracy after e + 1 epochs); NaN marks a cell the class cannot fill (for instance a
width-equivalent ensemble that would need fewer than one layer per member).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SINGLE, WIDTH_EQUIVALENT, DEPTH_EQUIVALENT = "single", "width_equivalent", "depth_equivalent"
CLASSES: tuple[str, ...] = (SINGLE, WIDTH_EQUIVALENT, DEPTH_EQUIVALENT)
SHORT_NAMES = {SINGLE: "single", WIDTH_EQUIVALENT: "weq", DEPTH_EQUIVALENT: "deq"}
NO_WINNER = -1


def _tables(accuracy: Mapping[str, np.ndarray]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Stack the tables in CLASSES order: `[classes, budgets, epochs]` float64."""
    if SINGLE not in accuracy:
        raise ValueError("the accuracy tables need the 'single' class")
    unknown = set(accuracy) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown design classes {sorted(unknown)}")
    names = tuple(c for c in CLASSES if c in accuracy)
    stacked = np.stack([np.asarray(accuracy[c], dtype=np.float64) for c in names])
    if stacked.ndim != 3:
        raise ValueError("each accuracy table must be 2-D: [budgets, epochs]")
    return stacked, names


def winners(accuracy: Mapping[str, np.ndarray], margin: float = 0.0) -> np.ndarray:
    """Index into CLASSES of the most accurate class per cell, `[budgets, epochs]` int.

    An ensemble class wins a cell only when it beats the single network by more than `margin`
    (ties go to the single network: the cheaper claim). Among ensembles the more accurate wins.
    Cells where the single network is NaN get NO_WINNER.
    """
    stacked, names = _tables(accuracy)
    single = stacked[names.index(SINGLE)]
    out = np.full(single.shape, CLASSES.index(SINGLE), dtype=np.int64)
    best = single + margin
    for name, table in zip(names, stacked, strict=True):
        if name == SINGLE:
            continue
        better = np.nan_to_num(table, nan=-np.inf) > best
        out[better] = CLASSES.index(name)
        best = np.where(better, table, best)
    out[np.isnan(single)] = NO_WINNER
    return out


def ensemble_wins(accuracy: Mapping[str, np.ndarray], which: str = "any", margin: float = 0.0) -> np.ndarray:
    """Boolean `[budgets, epochs]`: cells where ensembles beat the single network by more than `margin`.

    which: "any" (at least one ensemble class wins), "both" (every ensemble class given beats the single
    network; the region Wasay & Idreos mark on its heat maps) or a class name.
    """
    stacked, names = _tables(accuracy)
    single = stacked[names.index(SINGLE)]
    ensembles = [n for n in names if n != SINGLE]
    if which in ("any", "both"):
        chosen = ensembles
    elif which in ensembles:
        chosen = [which]
    else:
        raise ValueError(f"which must be 'any', 'both' or one of {ensembles}, got {which!r}")
    if not chosen:
        return np.zeros(single.shape, dtype=bool)
    beats = [np.nan_to_num(stacked[names.index(n)], nan=-np.inf) > single + margin for n in chosen]
    combined = np.logical_and.reduce(beats) if which == "both" else np.logical_or.reduce(beats)
    return combined & ~np.isnan(single)


def switchover_staircase(wins: np.ndarray, min_fraction: float = 1.0) -> list[int | None]:
    """For each budget row i, the first epoch column e such that ensembles win (at least `min_fraction` of)
    every cell with budget ≥ i and epochs ≥ e; None if there is none.

    With the default 1.0 this is the boundary of the largest "upper-right" region in which ensembles win
    every cell: the EST of Wasay & Idreos is the corner where it starts, and the staircase never rises as the
    budget grows. A fraction below 1 tolerates isolated lost cells (single-seed accuracy is noisy).
    """
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    wins = np.asarray(wins, dtype=bool)
    budgets, epochs = wins.shape
    # won[i, e] = number of won cells in the quadrant [i:, e:] (suffix sums in both directions)
    won = wins[::-1, ::-1].cumsum(0).cumsum(1)[::-1, ::-1]
    cells = np.arange(budgets, 0, -1)[:, None] * np.arange(epochs, 0, -1)[None, :]
    ok = won >= min_fraction * cells - 1e-9
    stairs: list[int | None] = []
    for i in range(budgets):
        columns = np.flatnonzero(ok[i])
        stairs.append(int(columns[0]) if columns.size else None)
    return stairs


def switchover_epochs(wins: np.ndarray) -> list[int | None]:
    """Per budget row, the first epoch column from which ensembles win every later epoch at that budget
    (None if they lose the last epoch): the EST read one budget at a time, ignoring larger budgets."""
    wins = np.asarray(wins, dtype=bool)
    out: list[int | None] = []
    for row in wins:
        lost = np.flatnonzero(~row)
        first = 0 if lost.size == 0 else int(lost[-1]) + 1
        out.append(first if first < row.size else None)
    return out


@dataclass(frozen=True)
class SwitchoverThreshold:
    """The EST: from `params` parameters and `epochs` epochs on, ensembles win every cell of the grid.

    budget_index/epoch_index locate it in the table; None everywhere when ensembles never win a corner.
    min_fraction: the share of the region's cells ensembles had to win (1.0 = every cell).
    """

    params: int | None
    epochs: int | None
    budget_index: int | None
    epoch_index: int | None
    staircase: tuple[int | None, ...]
    min_fraction: float = 1.0


def switchover_threshold(wins: np.ndarray, params: Sequence[int], epochs: Sequence[int],
                         min_fraction: float = 1.0) -> SwitchoverThreshold:
    """Read the EST off a win mask `[budgets, epochs]` (rows sorted by `params`, columns by `epochs`):
    the smallest budget whose staircase step exists, with the first epoch of that step."""
    wins = np.asarray(wins, dtype=bool)
    if wins.shape != (len(params), len(epochs)):
        raise ValueError(f"win mask {wins.shape} does not match {len(params)} budgets × {len(epochs)} epochs")
    if list(params) != sorted(params):
        raise ValueError("budgets must be sorted by parameter count")
    stairs = switchover_staircase(wins, min_fraction)
    for i, e in enumerate(stairs):
        if e is not None:
            return SwitchoverThreshold(int(params[i]), int(epochs[e]), i, e, tuple(stairs), min_fraction)
    return SwitchoverThreshold(None, None, None, None, tuple(stairs), min_fraction)


def epochs_to_reach(accuracy_by_epoch: Sequence[float], target: float) -> int | None:
    """Number of epochs after which `accuracy_by_epoch` first reaches `target` (None if never)."""
    for index, value in enumerate(accuracy_by_epoch):
        if value is not None and np.isfinite(value) and value >= target:
            return index + 1
    return None


def time_to_accuracy(accuracy_by_epoch: Sequence[float], target: float, seconds_per_epoch: float) -> float | None:
    """Training seconds until `target` accuracy is first reached (epochs needed × seconds per epoch)."""
    needed = epochs_to_reach(accuracy_by_epoch, target)
    return None if needed is None else needed * float(seconds_per_epoch)


@dataclass
class DesignRecord:
    """One design class at one grid point (budget_width, budget_depth, group_members).

    width/depth/members describe the networks of this class (for ensembles, each member); params is the
    class's total. Times in seconds, inference in ms per example, memory in bytes; None = not measured or
    (time_to_single_accuracy) never reached. `seconds_per_epoch`, `peak_memory_bytes` and the inference
    times follow the paper's protocol (members one after another); `*_batched` the member-batched one.
    """

    design_class: str
    budget_width: int
    budget_depth: int
    group_members: int
    width: int
    depth: int
    members: int
    params: int
    accuracy_by_epoch: list[float]
    member_accuracy: float | None = None
    nll: float | None = None
    cnll: float | None = None
    seconds_per_epoch: float | None = None
    seconds_per_epoch_batched: float | None = None
    time_to_single_accuracy: float | None = None
    inference_ms_batch1: float | None = None
    inference_ms_large_batch: float | None = None
    peak_memory_bytes: int | None = None
    peak_memory_bytes_batched: int | None = None
    layers: int | None = None

    JSON_KEYS = ("class", "width", "depth", "members", "params", "accuracy_by_epoch", "seconds_per_epoch",
                 "seconds_per_epoch_batched", "time_to_single_accuracy", "inference_ms_batch1",
                 "inference_ms_large_batch", "peak_memory_bytes")

    def to_json(self) -> dict[str, object]:
        """The `ensplit designspace --json` object: exactly JSON_KEYS."""
        values = {"class": self.design_class, **{k: getattr(self, k) for k in self.JSON_KEYS[1:]}}
        return {k: values[k] for k in self.JSON_KEYS}


def budgets(records: Sequence[DesignRecord]) -> list[tuple[int, int, int]]:
    """The grid's single networks as (params, width, depth), sorted by parameter count."""
    singles = {(r.params, r.budget_width, r.budget_depth) for r in records if r.design_class == SINGLE}
    return sorted(singles)


def accuracy_tables(records: Sequence[DesignRecord], members: int) -> tuple[dict[str, np.ndarray], list[int]]:
    """Per class, accuracy `[budgets, epochs]` for ensembles of `members` (NaN where a class is missing),
    and the budgets' parameter counts (the rows, sorted)."""
    rows = budgets(records)
    epochs = max((len(r.accuracy_by_epoch) for r in records), default=0)
    tables = {c: np.full((len(rows), epochs), np.nan) for c in CLASSES}
    index = {(w, d): i for i, (_, w, d) in enumerate(rows)}
    for r in records:
        if r.design_class != SINGLE and r.group_members != members:
            continue
        i = index[(r.budget_width, r.budget_depth)]
        values = np.array([np.nan if v is None else v for v in r.accuracy_by_epoch], dtype=np.float64)
        tables[r.design_class][i, : len(values)] = values
    return tables, [p for p, _, _ in rows]


def thresholds(records: Sequence[DesignRecord], which: str = "any", margin: float = 0.0,
               min_fraction: float = 1.0) -> dict[int, SwitchoverThreshold]:
    """The EST for each ensemble size in `records` (see `switchover_threshold`)."""
    out = {}
    for k in sorted({r.group_members for r in records if r.design_class != SINGLE}):
        tables, params = accuracy_tables(records, k)
        epochs = list(range(1, tables[SINGLE].shape[1] + 1))
        out[k] = switchover_threshold(ensemble_wins(tables, which, margin), params, epochs, min_fraction)
    return out
