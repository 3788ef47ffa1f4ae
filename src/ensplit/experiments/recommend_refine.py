"""Successive refinement: spend what the FLOPs cap leaves after the ladders where the answer is decided.

The ladders (P/32 … P/4) are cheap but far from the budget: on MNIST-1D their extrapolation misses by 0.05–0.13
CNLL for the sharing methods (benchmarks/results/recommend_design.md), enough to pick the wrong one. Their
first predictions still order the families well enough to say which are worth a closer look. So, best
predicted first, each sharing family gets one more rung at P/2 (`config.seeds` runs) as long as every cheap
run together stays within `cost_cap` of a one-seed brute force's training FLOPs; its prediction then
extrapolates one octave instead of two. A family left out keeps its ladder's (wide) interval. The choice
depends only on stored results, so a rerun plans the same rungs and resumes.

With --tune the rung sits at P/√2 and searches three lrs around its family's top tuned cell (with two fresh
replicates, `recommend_tune`): a family whose tuned envelope flattens near P (multihead on MNIST-1D, whose best
lr stops growing where a larger one diverges) shows it there, half an octave from P.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from ensplit.data.dataset import Dataset
from ensplit.experiments.recommend_cost import job_training_flops
from ensplit.experiments.recommend_plan import (
    LadderPlan,
    RecommendConfig,
    grid_size,
    ladder_budgets,
    ladder_job,
    sharing_candidate,
)


def refine_budget(config: RecommendConfig) -> int | None:
    """The refinement rung: the grid size at or below P/2 (with --tune at or below P/√2: that rung searches a
    small grid around its family's top tuned cell, `recommend_tune.local_grid`, so a rung nearer P costs less
    than the whole grid at P/2 would), unless the ladder already reaches it."""
    budget = grid_size(config.budget / (math.sqrt(2) if config.tune else 2))
    return None if budget in ladder_budgets(config) else budget


def plan_refinement(config: RecommendConfig, data: Dataset, ranked: Sequence[Any], spent: int, brute_force: int,
                    configs: dict[tuple[str, int], RecommendConfig], cells: float = 1,
                    planned: Collection[tuple[str, int, int]] = ()) -> LadderPlan:
    """Refinement jobs, best predicted sharing family first, while the total stays within the cap.

    `ranked`: the assessed candidates after the ladders (best first); `spent`: training FLOPs of every cheap
    run so far; `configs`: each family's config; `cells`: what each rung costs, in rung jobs (--tune: every
    grid cell, and the fresh replicates); `planned`: rungs the ladders already hold (a ladder that climbed to
    P/2 needs no refinement)."""
    budget = refine_budget(config)
    plan: LadderPlan = {}
    if budget is None or config.cost_cap <= 0:
        return plan
    allowed = math.floor(config.cost_cap * brute_force) - spent
    for assessed in ranked:
        candidate = assessed.candidate
        family = (candidate.method, candidate.members)
        if family not in configs or (*family, budget) in planned:
            continue  # the single network and the memory splits: predicted from the deep pools
        rung = sharing_candidate(configs[family].recipe, data, candidate.method, candidate.members, budget)
        if rung is None or rung.params >= candidate.params:
            continue  # a rung at or above its candidate (narrowed by a flops_budget) predicts nothing new
        jobs = ladder_job(configs[family], data, candidate.method, candidate.members, budget)
        if not jobs:
            continue
        cost = math.ceil(sum(job_training_flops(job, data) for job in jobs) * cells)
        if cost > allowed:
            continue  # a cheaper family further down may still fit
        allowed -= cost
        plan[(candidate.method, candidate.members, budget)] = jobs
    return plan
