"""`recommend --tune`: each candidate family's own learning rate and weight decay, chosen on validation only.

- Families (`family_key`): "deep" (the single network and every memory split share the member architecture,
  so it is tuned on single networks) and each sharing method × members ("batchensemble×4", ...).
- Cheap size: each family at the grid size of P / `tune_divisor` (2 by default; one grid step up at a time
  when the family does not fit there), `tune_seeds` runs per cell, trained as kind "tune" jobs (stored,
  resumable, ids stable). The seeds are the same in every cell, so cells are compared on paired runs.
- Score: validation CNLL (`cnll_ttcv` on the validation predictions), mean over the cell's runs; a diverged
  run scores +inf. The test split is never read.
- Grid-edge rule: when the best cell lies on an edge (lowest or highest lr, highest weight decay, lowest
  weight decay when it is not 0; weight decay 0 is a true lower edge), the grid grows one step that way
  (lr × or ÷ 2, weight decay × or ÷ 4) and the new cells are trained, at most `tune_extensions` times; the
  result says whether the optimum is interior or still on an edge. An axis given one value is fixed.
- Carry rule: the chosen lr and weight decay are used unchanged at every cheap-run size and at the budget
  (`tuned_train`); every other training field stays the recipe's. Measured on MNIST-1D (MLP, P = 23,050;
  benchmarks/results/tune_carry.md) the best lr grows with size: at P/8 it is 2-4× below the best at P, and a
  cell chosen there and carried to P is worse than the default; chosen at P/2 it beats it (hence P/2).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_plan import (
    Candidate,
    RecommendConfig,
    _job,
    candidates,
    deep_width,
    grid_size,
    sharing_candidate,
)
from ensplit.metrics import cnll_ttcv
from ensplit.runs.executors import Executor
from ensplit.runs.folder import RunFolder, execute, note
from ensplit.runs.plan import TrainJob, network_seed
from ensplit.store import ResultStore
from ensplit.train.config import TrainConfig

Cell = tuple[float, float]  # (lr, weight_decay)
LR_STEP = 2.0
WD_STEP = 4.0


# -- the grid and its edge rule (pure) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """The lr × weight-decay cells tried (both axes sorted ascending)."""

    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lrs", tuple(sorted(self.lrs)))
        object.__setattr__(self, "weight_decays", tuple(sorted(self.weight_decays)))

    def cells(self) -> list[Cell]:
        return [(lr, wd) for lr in self.lrs for wd in self.weight_decays]


def open_edges(grid: Grid, best: Cell) -> list[str]:
    """The edges of `grid` the best cell lies on that can still be extended: "lr_low", "lr_high", "wd_low"
    (only when the lowest weight decay is not 0), "wd_high". An axis of one value is fixed (never extended)."""
    lr, wd = best
    edges = []
    if len(grid.lrs) > 1:
        edges += ["lr_low"] * (lr == grid.lrs[0]) + ["lr_high"] * (lr == grid.lrs[-1])
    if len(grid.weight_decays) > 1:
        edges += ["wd_low"] * (wd == grid.weight_decays[0] > 0) + ["wd_high"] * (wd == grid.weight_decays[-1])
    return edges


def extend(grid: Grid, edges: list[str]) -> Grid:
    """`grid` grown one step beyond each edge (lr × or ÷ 2, weight decay × or ÷ 4)."""
    lrs, wds = list(grid.lrs), list(grid.weight_decays)
    if "lr_low" in edges:
        lrs.insert(0, lrs[0] / LR_STEP)
    if "lr_high" in edges:
        lrs.append(lrs[-1] * LR_STEP)
    if "wd_low" in edges:
        wds.insert(0, wds[0] / WD_STEP)
    if "wd_high" in edges:
        wds.append(wds[-1] * WD_STEP)
    return Grid(tuple(lrs), tuple(wds))


@dataclass
class GridSearch:
    """One family's search: the grid so far, every cell's score, and the extensions left."""

    grid: Grid
    extensions_left: int
    scores: dict[Cell, float] = field(default_factory=dict)
    extended: list[list[str]] = field(default_factory=list)

    def pending(self) -> list[Cell]:
        return [cell for cell in self.grid.cells() if cell not in self.scores]

    @property
    def best(self) -> Cell:
        """The lowest-scoring cell (ties: the smaller lr, then the smaller weight decay)."""
        return min(self.grid.cells(), key=lambda c: (self.scores[c], c))

    @property
    def edges(self) -> list[str]:
        """Edges the best cell still lies on (empty: the optimum is interior, or at weight decay 0)."""
        return open_edges(self.grid, self.best)

    def advance(self) -> bool:
        """With every cell scored: extend past the best cell's edges if any are left; True when it did."""
        edges = self.edges
        if not edges or self.extensions_left <= 0:
            return False
        self.grid = extend(self.grid, edges)
        self.extensions_left -= 1
        self.extended.append(edges)
        return True


def search_grid(grid: Grid, score: Callable[[list[Cell]], dict[Cell, float]], extensions: int) -> GridSearch:
    """Score `grid`, then apply the grid-edge rule until the best cell is interior or `extensions` are spent."""
    search = GridSearch(grid, extensions)
    while True:
        search.scores.update(score(search.pending()))
        if not search.advance():
            return search


# -- families, their cheap runs and their scores ------------------------------------------------------------
def family_key(candidate: Candidate) -> str:
    """The family a candidate's lr and weight decay are tuned for: "deep" for the single network and every
    memory split (one member architecture), else "method×members"."""
    if candidate.method in ("single", "deep"):
        return "deep"
    return f"{candidate.method}×{candidate.members}"


@dataclass(frozen=True)
class TuneFamily:
    """A family at its cheap tuning size: `method` "deep" (single networks) or a sharing method."""

    key: str
    method: str
    members: int
    width: int
    params: int
    options: tuple[tuple[str, Any], ...] = ()


def cheap_budget(config: RecommendConfig) -> int:
    """The tuning size: the grid size of P / tune_divisor (P / 2 by default)."""
    return grid_size(config.budget / config.tune_divisor)


def _at_cheap_size(config: RecommendConfig, data: Dataset, candidate: Candidate) -> TuneFamily | None:
    """The candidate's family at the smallest grid size from `cheap_budget` up (√2 steps, at most P) where it
    fits."""
    recipe = config.recipe
    low = math.floor(2 * math.log2(config.budget / config.tune_divisor) + 1e-9)
    for step in range(max(low, 0), math.floor(2 * math.log2(config.budget) + 1e-9) + 1):
        size = int(2 ** (step / 2))  # the grid sizes from cheap_budget(config) up to P
        if candidate.method in ("single", "deep"):
            width = deep_width(recipe, data, size, 1)
            if width is not None:
                return TuneFamily("deep", "deep", 1, width, recipe.params(width, data))
        else:
            found = sharing_candidate(recipe, data, candidate.method, candidate.members, size)
            if found is not None:
                return TuneFamily(family_key(candidate), found.method, found.members, found.width, found.params,
                                  found.options)
    return None


def tune_plan(config: RecommendConfig, data: Dataset, found: list[Candidate] | None = None) -> list[TuneFamily]:
    """One family per distinct `family_key` of the candidates, at its cheap size (families that fit nowhere
    below the budget are left out and keep the recipe's settings)."""
    families: dict[str, TuneFamily] = {}
    for candidate in candidates(config, data) if found is None else found:
        key = family_key(candidate)
        if key not in families:
            family = _at_cheap_size(config, data, candidate)
            if family is not None:
                families[key] = family
    return list(families.values())


def tune_jobs(config: RecommendConfig, family: TuneFamily, cell: Cell) -> list[TrainJob]:
    """A cell's runs, kind "tune": `tune_seeds` single networks in one job, or one ensemble per seed. The
    seeds do not depend on the cell (paired comparison); the job ids do, through the training options."""
    lr, wd = cell
    tuned = dataclasses.replace(config, recipe=config.recipe.with_train(lr=lr, weight_decay=wd))
    seeds = tuple(network_seed(config.recipe.seed, f"tune {family.key}", family.width, i)
                  for i in range(config.tune_seeds))
    if family.method == "deep":
        return [_job(tuned, "tune", family.width, seeds, 0)]
    return [_job(tuned, "tune", family.width, (seed,), i, family.method, family.members, family.options)
            for i, seed in enumerate(seeds)]


def validation_score(store: ResultStore, jobs: list[TrainJob], labels: torch.Tensor, splits: int) -> float:
    """Mean validation CNLL of a cell's runs (each single network alone, each ensemble whole); +inf when a
    run is missing or diverged. Reads the validation predictions only."""
    values = []
    for job in jobs:
        rows = sorted((r for r in store.networks("tune", job.width) if r["job_id"] == job.job_id),
                      key=lambda r: r["member"])
        if not rows or any(r["status"] != "ok" for r in rows):
            return math.inf
        log_probs = torch.as_tensor(store.log_probs(rows, "val")).double()
        if not bool(torch.isfinite(log_probs).all()):
            return math.inf
        groups = [log_probs[i:i + 1] for i in range(len(rows))] if job.method == "deep" else [log_probs]
        values += [float(cnll_ttcv(group, labels, splits=splits)) for group in groups]
    return sum(values) / len(values)


# -- the whole search ---------------------------------------------------------------------------------------
@dataclass
class FamilyTuning:
    """One family's search: where it ran (cheap size), the grid tried, every cell's score and the choice."""

    family: TuneFamily
    search: GridSearch

    @property
    def settings(self) -> dict[str, float]:
        lr, wd = self.search.best
        return {"lr": lr, "weight_decay": wd}

    def to_json(self) -> dict[str, Any]:
        s, f = self.search, self.family
        return {"family": f.key, "width": f.width, "params": f.params, "settings": self.settings,
                "lrs": list(s.grid.lrs), "weight_decays": list(s.grid.weight_decays),
                "cells": [{"lr": lr, "weight_decay": wd, "validation_cnll": s.scores[(lr, wd)]}
                          for lr, wd in s.grid.cells()],
                "extended": s.extended, "edges": s.edges, "interior": not s.edges}


@dataclass
class TuneResult:
    """Every family's chosen lr and weight decay, with the grid and validation scores behind it."""

    families: dict[str, FamilyTuning] = field(default_factory=dict)
    trained_jobs: int = 0

    @property
    def settings(self) -> dict[str, dict[str, float]]:
        """Family key -> {"lr", "weight_decay"}."""
        return {key: tuning.settings for key, tuning in self.families.items()}

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "families": [t.to_json() for t in self.families.values()],
                "trained_jobs": self.trained_jobs}

    def jobs(self, config: RecommendConfig) -> list[TrainJob]:
        """Every tuning job of every cell tried (what the tuning cost, counted in `recommend_cost`)."""
        return [job for t in self.families.values() for cell in t.search.grid.cells()
                for job in tune_jobs(config, t.family, cell)]


def tuned_train(train: TrainConfig, settings: dict[str, dict[str, float]], candidate: Candidate) -> TrainConfig:
    """The carry rule: the candidate's training config at any size (cheap runs and the budget) is the recipe's
    with its family's chosen lr and weight decay; unchanged for a family that was not tuned."""
    chosen = settings.get(family_key(candidate))
    return train if chosen is None else dataclasses.replace(train, **chosen)


def tune_families(config: RecommendConfig, data: Dataset, run: RunFolder, executor: Executor, progress: bool = True,
                  found: list[Candidate] | None = None) -> TuneResult:
    """Tune every family of the candidates (`found`, default all at the budget) on the validation split (module
    docstring). All families' pending cells are trained together, one `execute` per round of the edge rule."""
    if data.y_val is None:
        raise EnsplitError("tuning needs a validation split: validation_fraction = 0.0; set it above 0 "
                           "(tune = true sets 0.1)")
    run.store.save_labels("val", data.y_val.cpu().numpy())
    labels = torch.as_tensor(run.store.labels("val")).long()
    grid = Grid(config.tune_lrs, config.tune_weight_decays)
    result = TuneResult({f.key: FamilyTuning(f, GridSearch(grid, config.tune_extensions))
                         for f in tune_plan(config, data, found)})
    active = list(result.families.values())
    for round_ in range(config.tune_extensions + 1):
        cells = {t.family.key: {cell: tune_jobs(config, t.family, cell) for cell in t.search.pending()}
                 for t in active}
        jobs = [job for by_cell in cells.values() for cell_jobs in by_cell.values() for job in cell_jobs]
        result.trained_jobs += execute(jobs, run, executor, progress, "tuning" if round_ == 0 else "tuning (grid "
                                       "extended)")
        for tuning in active:
            for cell, cell_jobs in cells[tuning.family.key].items():
                tuning.search.scores[cell] = validation_score(run.store, cell_jobs, labels, config.cnll_splits)
        active = [t for t in active if t.search.advance()]
        if not active:
            break
    for tuning in result.families.values():
        if tuning.search.edges:
            note(f"tuning {tuning.family.key}: the best cell (lr {tuning.settings['lr']:g}, weight decay "
                 f"{tuning.settings['weight_decay']:g}) is still on the grid's edge ({', '.join(tuning.search.edges)}) "
                 f"after {config.tune_extensions} extension(s); raise --tune-extensions or widen the grid")
    return result
