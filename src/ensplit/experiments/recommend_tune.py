"""`recommend --tune`: every cheap run at its own learning rate and weight decay, chosen on validation only.

- What is tuned: each cheap size on its own. Every deep-pool size is tuned on its first `TUNE_NETWORKS`
  networks, twice from the same runs: for the memory splits ("deep") on the validation CNLL of those networks
  as one ensemble (the rest of the pool, `pool` networks in all at every size, then trains in that cell, and
  the (n, s) plane reads them all), and for the single network ("single") on each network alone (its ladder
  reads the chosen cell's networks). The two differ: on MNIST-1D the single network is best at weight decay
  2e-3 and every memory split at 5e-4 or 0, by up to 0.085 validation CNLL (the tuned brute force's runs,
  benchmarks/results/recommend_tune.md); a pool tuned on single networks under-predicts the larger ensembles
  and favours too few members. Every ladder rung
  of every sharing method is tuned on its own runs, then `TUNE_REPLICATES` fresh runs train in the chosen
  cell, and the rung is the choosing run(s) with them. The ladders and the (n, s) plane then describe the
  tuned envelope, the best CNLL reachable at each size, and the power law extrapolates that to P: what a brute
  force tuned at the budget measures (it too chooses on one seed's validation CNLL, then reports the mean test
  CNLL of three seeds).
- The winner's curse: within a rung, a run's validation and test CNLL correlate at 0.98 on MNIST-1D (the seed,
  not the 400 validation examples, makes most of the noise), so the run that wins on validation of 12-18 cells
  is a lucky seed on test too: over 25 rungs it scores 0.020 CNLL (standard error 0.009) below the fresh runs
  of its cell (benchmarks/results/recommend_tune.md). The fresh runs hold each rung to what its cell gives anew.
- The top deep pool sits just above P/2 (`recommend_plan.pool_sizes`), so the 2-member split is interpolated,
  and is tuned last, on small grids around the cells its neighbour below chose (`top_pool_grids`: three lrs
  for the memory splits, every weight decay for the single network): the whole grid there would cost what the
  cap keeps for the sharing methods' refinement rungs (benchmarks/results/recommend_tune.md).
- The refinement rung (`recommend_refine`) sits at P/√2 and searches `local_grid`, three lrs around the cell of
  its family's largest tuned size: a tuned envelope can bend where the best lr stops growing (multihead: a
  larger lr diverges), and the ladders alone carry the steep part past P.
- One cell per family carried to every size fails: the best lr grows with size
  (benchmarks/results/tune_carry.md), so a cell good at P/2 is too hot at P/32.
- Seeds do not depend on the cell (paired comparison); job ids do, through the training options, so a
  killed search resumes.
- Score: validation CNLL (`cnll_ttcv` on the validation predictions): a pool cell's networks as one ensemble
  ("deep") or each alone ("single"), each ladder run's ensemble whole, the mean over them; a diverged run scores
  +inf. The test split is never read.
- Grid-edge rule: `recommend_grid`, at each size, at most `tune_extensions` times.
- Carry rule (what verification trains and what the user is told to train at P): a family's weight decay is
  the one chosen at its largest tuned size; its lr is read at P off lr ∝ size^γ, fitted by least squares in
  log-log through the lrs chosen at its sizes, with γ clipped to [0, 1] (0: the geometric mean).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_grid import Cell, Grid, GridSearch
from ensplit.experiments.recommend_plan import (
    Candidate,
    LadderPlan,
    RecommendConfig,
    _job,
    ladder_job,
    pool_networks,
    pool_widths,
    sharing_candidate,
)
from ensplit.metrics import cnll_ttcv
from ensplit.runs.executors import Executor
from ensplit.runs.folder import RunFolder, execute, note
from ensplit.runs.plan import TrainJob, network_seed
from ensplit.store import ResultStore
from ensplit.train.config import TrainConfig

TUNE_NETWORKS = 3  # pool networks a pool size is tuned on (the fewest an untuned pool holds)
TUNE_REPLICATES = 2  # fresh runs of each ladder rung in its chosen cell: with the choosing run, a 3-seed mean
LOCAL_LR_STEPS = (0.5, 1.0, 2.0)  # the refinement rung's lrs, relative to its family's lr at the top tuned size


def family_key(candidate: Candidate) -> str:
    """The family a candidate's lr and weight decay are carried for: "single" for the single network, "deep"
    for every memory split (tuned as ensembles), else "method×members"."""
    if candidate.method in ("single", "deep"):
        return candidate.method
    return f"{candidate.method}×{candidate.members}"


def at_cell(config: RecommendConfig, cell: Cell) -> RecommendConfig:
    """`config` with the cell's lr and weight decay."""
    lr, wd = cell
    return dataclasses.replace(config, recipe=config.recipe.with_train(lr=lr, weight_decay=wd))


# -- one size's search --------------------------------------------------------------------------------------
@dataclass
class SizeSearch:
    """The grid search at one cheap size of one family; `jobs(cell)` are the runs that score a cell (the same
    seeds in every cell); `rest(cell)` the runs of that size trained only in the chosen cell."""

    family: str
    budget: int
    params: int
    jobs: Callable[[Cell], list[TrainJob]]
    search: GridSearch
    rest: Callable[[Cell], list[TrainJob]] = field(default=lambda cell: [])
    rung: tuple[str, int, int] | None = None  # (method, members, budget) of a ladder rung
    as_ensemble: bool = False  # score a deep cell's networks as one ensemble (else each alone)

    @property
    def chosen(self) -> list[TrainJob]:
        """Every run of this size in the chosen cell (what the prediction reads)."""
        return self.jobs(self.search.best) + self.rest(self.search.best)

    def tried(self) -> list[TrainJob]:
        return [job for cell in self.search.grid.cells() for job in self.jobs(cell)] + self.rest(self.search.best)

    def to_json(self) -> dict[str, Any]:
        s = self.search
        lr, wd = s.best
        return {"budget": self.budget, "params": self.params, "lr": lr, "weight_decay": wd,
                "lrs": list(s.grid.lrs), "weight_decays": list(s.grid.weight_decays),
                "cells": [{"lr": c[0], "weight_decay": c[1], "validation_cnll": s.scores.get(c)}
                          for c in s.grid.cells()],
                "extended": s.extended, "edges": s.edges, "interior": not s.edges}


def pool_searches(config: RecommendConfig, data: Dataset, sizes: Collection[int] | None = None,
                  grids: dict[str, Grid] | None = None) -> list[SizeSearch]:
    """Two searches per deep-pool size (of `sizes`, default all) on the same runs, its first TUNE_NETWORKS
    networks: "deep" scores them as one ensemble and trains the rest of the pool in its best cell; "single"
    scores each alone. Each on the configured grid, or on its family's entry in `grids`."""
    searches = []
    full = Grid(config.tune_lrs, config.tune_weight_decays)
    for size, width in pool_widths(config, data).items():
        if sizes is not None and size not in sizes:
            continue
        count = pool_networks(config, size)
        seeds = tuple(network_seed(config.recipe.seed, "pool", width, i) for i in range(count))
        first = min(TUNE_NETWORKS, count)

        def jobs(cell: Cell, width: int = width, seeds: tuple[int, ...] = seeds, first: int = first) -> list:
            return [_job(at_cell(config, cell), "pool", width, seeds[:first], 0)]

        def rest(cell: Cell, width: int = width, seeds: tuple[int, ...] = seeds, first: int = first) -> list:
            return [_job(at_cell(config, cell), "pool", width, seeds[first:], first)] if seeds[first:] else []

        params = config.recipe.params(width, data)
        deep, single = ((grids or {}).get(family, full) for family in ("deep", "single"))
        searches.append(SizeSearch("deep", size, params, jobs, GridSearch(deep, config.tune_extensions), rest,
                                   as_ensemble=True))
        searches.append(SizeSearch("single", size, params, jobs, GridSearch(single, config.tune_extensions)))
    return searches


def rung_searches(config: RecommendConfig, data: Dataset, rungs: Sequence[tuple[str, int, int]],
                  grids: dict[str, Grid] | None = None) -> list[SizeSearch]:
    """A search per ladder rung (method, members, budget), scored on the rung's own runs, on the configured grid
    or its family's entry in `grids`; `TUNE_REPLICATES` fresh runs are then trained in the chosen cell (the
    winner's curse, module docstring)."""
    searches = []
    for method, members, budget in rungs:
        found = sharing_candidate(config.recipe, data, method, members, budget)
        if found is None:
            continue
        grid = (grids or {}).get(f"{method}×{members}", Grid(config.tune_lrs, config.tune_weight_decays))

        def jobs(cell: Cell, method: str = method, members: int = members, budget: int = budget) -> list:
            return ladder_job(at_cell(config, cell), data, method, members, budget)

        def rest(cell: Cell, method: str = method, members: int = members, budget: int = budget) -> list:
            return ladder_job(at_cell(config, cell), data, method, members, budget, config.seeds, TUNE_REPLICATES)

        searches.append(SizeSearch(f"{method}×{members}", budget, found.params, jobs,
                                   GridSearch(grid, config.tune_extensions), rest, (method, members, budget)))
    return searches


def validation_score(store: ResultStore, jobs: list[TrainJob], labels: torch.Tensor, splits: int,
                     as_ensemble: bool = False) -> float:
    """Mean validation CNLL of a cell's runs (each network of a deep job alone, or with `as_ensemble` all of
    them as one ensemble; each seed's ensemble of a sharing method whole); +inf when a run is missing or
    diverged. Reads the validation predictions only."""
    values = []
    for job in jobs:
        rows = sorted((r for r in store.networks(job.kind, job.width) if r["job_id"] == job.job_id),
                      key=lambda r: r["member"])
        if not rows or any(r["status"] != "ok" for r in rows) or len(rows) % len(job.seeds):
            return math.inf
        log_probs = torch.as_tensor(store.log_probs(rows, "val")).double()
        if not bool(torch.isfinite(log_probs).all()):
            return math.inf
        per = (len(rows) if as_ensemble else 1) if job.method == "deep" else len(rows) // len(job.seeds)
        values += [float(cnll_ttcv(log_probs[i:i + per], labels, splits=splits))
                   for i in range(0, len(rows), per)]
    return sum(values) / len(values)


def run_searches(searches: list[SizeSearch], config: RecommendConfig, run: RunFolder, executor: Executor,
                 progress: bool, stage: str) -> int:
    """Every search's pending cells trained together, one `execute` per round of the edge rule, then the chosen
    cells' remaining runs; returns the jobs trained."""
    labels = torch.as_tensor(run.store.labels("val")).long()
    active, trained = list(searches), 0
    for round_ in range(config.tune_extensions + 1):
        cells = [{cell: s.jobs(cell) for cell in s.search.pending()} for s in active]
        jobs = distinct([job for by_cell in cells for cell_jobs in by_cell.values() for job in cell_jobs])
        trained += execute(jobs, run, executor, progress, stage if round_ == 0 else f"{stage} (grid extended)")
        for s, by_cell in zip(active, cells, strict=True):
            for cell, cell_jobs in by_cell.items():
                s.search.scores[cell] = validation_score(run.store, cell_jobs, labels, config.cnll_splits,
                                                         s.as_ensemble)
        active = [s for s in active if s.search.advance()]
        if not active:
            break
    rest = distinct([job for s in searches for job in s.rest(s.search.best)])
    return trained + execute(rest, run, executor, progress, f"{stage}: the rest of each pool")


def distinct(jobs: Sequence[TrainJob]) -> list[TrainJob]:
    """`jobs` without repeats (a pool size's two searches share their runs), in order."""
    return list({job.job_id: job for job in jobs}.values())


# -- the carry rule and the result --------------------------------------------------------------------------
def carry(points: Sequence[tuple[int, float, float]], budget: int) -> tuple[float, float, float]:
    """(lr, weight decay, γ) at `budget` from the (params, lr, weight decay) chosen at each tuned size: lr ∝
    size^γ fitted by least squares in log-log (γ clipped to [0, 1]), weight decay of the largest size."""
    points = sorted(points)
    x = np.log2([p[0] for p in points])
    y = np.log2([p[1] for p in points])
    gamma = 0.0 if len(points) < 2 or np.ptp(x) == 0 else float(np.polyfit(x, y, 1)[0])
    gamma = min(max(gamma, 0.0), 1.0)
    lr = float(2 ** (y.mean() + gamma * (math.log2(budget) - x.mean())))
    return float(f"{lr:.4g}"), points[-1][2], gamma


@dataclass
class FamilyTuning:
    """One family's searches (one per tuned size) and its settings carried to the budget."""

    key: str
    budget: int
    sizes: list[SizeSearch] = field(default_factory=list)

    def carried(self) -> tuple[float, float, float]:
        return carry([(s.params, *s.search.best) for s in self.sizes], self.budget)

    @property
    def settings(self) -> dict[str, float]:
        lr, wd, _ = self.carried()
        return {"lr": lr, "weight_decay": wd}

    def to_json(self) -> dict[str, Any]:
        return {"family": self.key, "settings": self.settings, "lr_exponent": round(self.carried()[2], 4),
                "sizes": [s.to_json() for s in sorted(self.sizes, key=lambda s: s.params)],
                "interior": all(not s.search.edges for s in self.sizes)}


@dataclass
class TuneResult:
    """Every family's searches and carried settings, and every job the tuning trained or read."""

    families: dict[str, FamilyTuning] = field(default_factory=dict)
    trained_jobs: int = 0
    tried: list[TrainJob] = field(default_factory=list)
    replicates: int = TUNE_REPLICATES  # fresh runs each ladder rung adds in its chosen cell
    refinement_lrs: int = len(LOCAL_LR_STEPS)  # lrs the refinement rung tries around its family's top cell

    def carry_to(self, budgets: dict[str, int]) -> None:
        """Carry each family's settings to its own budget in `budgets` (by family key) instead of P: under a
        flops_budget, its largest narrowed candidate (`carry_targets`)."""
        for key, family in self.families.items():
            family.budget = budgets.get(key, family.budget)

    def add(self, searches: list[SizeSearch], budget: int) -> None:
        for s in searches:
            self.families.setdefault(s.family, FamilyTuning(s.family, budget)).sizes.append(s)
        self.tried = distinct(self.tried + [job for s in searches for job in s.tried()])

    @property
    def single_jobs(self) -> list[TrainJob] | None:
        """The pool networks the single network's ladder reads: each size's runs in its "single" cell (None
        when the pools were not tuned)."""
        single = self.families.get("single")
        return None if single is None else [job for s in single.sizes for job in s.chosen]

    @property
    def settings(self) -> dict[str, dict[str, float]]:
        """Family key -> {"lr", "weight_decay"} carried to the budget."""
        return {key: family.settings for key, family in self.families.items()}

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "families": [f.to_json() for f in self.families.values()],
                "trained_jobs": self.trained_jobs}


def tuned_train(train: TrainConfig, settings: dict[str, dict[str, float]], candidate: Candidate) -> TrainConfig:
    """The candidate's training config at the budget: the recipe's with its family's carried lr and weight
    decay; unchanged for a family that was not tuned."""
    chosen = settings.get(family_key(candidate))
    return train if chosen is None else dataclasses.replace(train, **chosen)


def warn_edges(searches: list[SizeSearch], config: RecommendConfig) -> None:
    """One note per size whose best cell is still on an edge the rule may not extend any more."""
    for s in searches:
        if s.search.edges:
            lr, wd = s.search.best
            note(f"tuning {s.family} at {s.params:,} parameters: the best cell (lr {lr:g}, weight decay {wd:g}) is "
                 f"still on the grid's edge ({', '.join(s.search.edges)}) after {config.tune_extensions} "
                 "extension(s); raise --tune-extensions or widen the grid")


def _chosen_ladders(searches: list[SizeSearch]) -> LadderPlan:
    return {s.rung: s.chosen for s in searches if s.rung is not None}


def tune_cheap_runs(config: RecommendConfig, data: Dataset, run: RunFolder, executor: Executor, rungs: LadderPlan,
                    progress: bool = True, pools_config: RecommendConfig | None = None,
                    ) -> tuple[list[TrainJob], LadderPlan, TuneResult]:
    """Tune every deep-pool size (planned by `pools_config`, default `config`) and every rung of `rungs` on the
    validation split (module docstring); returns the pools' jobs and the ladders in their chosen cells, and the
    searches."""
    pools_config = pools_config or config
    if data.y_val is None:
        raise EnsplitError("tuning needs a validation split: validation_fraction = 0.0; set it above 0 "
                           "(tune = true sets 0.1)")
    run.store.save_labels("val", data.y_val.cpu().numpy())
    sizes = list(pool_widths(pools_config, data))
    top = max(sizes)  # above P/2 (`pool_sizes`): searched last, near its neighbour's cell
    below = [size for size in sizes if size != top]
    pools, ladders = pool_searches(pools_config, data, below), rung_searches(config, data, list(rungs))
    result = TuneResult()
    result.trained_jobs = run_searches(pools + ladders, config, run, executor, progress, "tuning every cheap size")
    result.add(pools + ladders, config.budget)
    grids = top_pool_grids(result, config) if {"deep", "single"} <= set(result.families) else None
    highest = pool_searches(pools_config, data, [top], grids)
    result.trained_jobs += run_searches(highest, config, run, executor, progress, "tuning the top pool")
    result.add(highest, config.budget)
    pools += highest
    warn_edges(pools + ladders, config)
    return [job for s in pools if s.family == "deep" for job in s.chosen], _chosen_ladders(ladders), result


def carry_targets(kept: list[Candidate]) -> dict[str, int]:
    """Each tuned family's largest candidate in parameters (by `family_key`): where its settings are carried to
    under a flops_budget, which narrows the candidates below P."""
    targets: dict[str, int] = {}
    for candidate in kept:
        key = family_key(candidate)
        targets[key] = max(targets.get(key, 0), candidate.params)
    return targets


def top_pool_grids(result: TuneResult, config: RecommendConfig) -> dict[str, Grid]:
    """The top deep pool's grids: the memory splits' on `local_grid` (three lrs at the weight decay their
    neighbour chose), the single network's at its neighbour's lr over every configured weight decay (the single
    network's best weight decay differs from the ensembles' and moves with size: 2e-3 or 5e-4 on MNIST-1D).
    Where the neighbours chose the same cell the two grids share it, so five cells train, not twelve."""
    lr, _ = max(result.families["single"].sizes, key=lambda s: s.params).search.best
    return {"deep": local_grid(result.families["deep"]), "single": Grid((lr,), config.tune_weight_decays)}


def local_grid(family: FamilyTuning) -> Grid:
    """The refinement rung's (and the top deep pool's) grid: the lr chosen at the family's largest tuned size ×
    `LOCAL_LR_STEPS`, at that size's weight decay (the edge rule still grows the lr axis when the best lr moved
    further). Near P the best lr moves slowly with size (its jumps come at the small rungs: multihead's 0.05 →
    0.2 between 2k and 4k parameters on MNIST-1D, benchmarks/results/recommend_tune.md), so three cells find it
    where the whole grid costs four to six times as much."""
    lr, wd = max(family.sizes, key=lambda s: s.params).search.best
    return Grid(tuple(float(f"{lr * step:.6g}") for step in LOCAL_LR_STEPS), (wd,))


def refinement_cost(config: RecommendConfig) -> float:
    """What one refinement rung costs, in jobs of that rung (`recommend_refine.plan_refinement`'s `cells`): one
    without --tune; with it, the `local_grid` cells and the fresh replicates (a job holds `seeds` runs)."""
    return len(LOCAL_LR_STEPS) + TUNE_REPLICATES / config.seeds if config.tune else 1.0


def tune_rungs(config: RecommendConfig, data: Dataset, run: RunFolder, executor: Executor, rungs: LadderPlan,
               result: TuneResult, progress: bool = True) -> LadderPlan:
    """Tune more rungs (the refinement's) into `result`, each on its family's `local_grid`; returns them in
    their chosen cells."""
    grids = {key: local_grid(family) for key, family in result.families.items() if family.sizes}
    searches = rung_searches(config, data, list(rungs), grids)
    result.trained_jobs += run_searches(searches, config, run, executor, progress, "tuning the refinement")
    result.add(searches, config.budget)
    warn_edges(searches, config)
    return _chosen_ladders(searches)
