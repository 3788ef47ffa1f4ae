"""`recommend`'s settings, its candidates at the budget, and the cheap runs that predict them.

Candidates at a budget P (exact parameter counts, ≤ P): the single network; every memory split of n networks
(n = 2..members_max, each the widest with n·s ≤ P); every sharing method at each of `sharing_members`.

Cheap runs live on one global grid of sizes (powers of √2 parameters), so a second budget reuses what the
first trained. They are sized to cost well under a brute force (one run of every candidate at P; the result's
`cost` counts both, `recommend_cost`): deep pools at P/2, P/4, P/8 and P/16 (`pool` networks at or below P/8,
3 above; with --tune `pool` at every size and the top one just above P/2), and for each sharing method a
ladder of `rungs` budgets 2× apart, the largest at or below P/`ladder_top` (P/32 … P/4 by default), with
`seeds` runs each (several trained together as one stacked model). benchmarks/results/recommend_design.md
compares this design with others on dense MNIST-1D evidence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from ensplit.data.dataset import Dataset
from ensplit.ensembles import method_param_count, solve_method_width
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_sizing import AtBudget, Sizing, fit_flops
from ensplit.models import count_params
from ensplit.models.scaling import solve_width
from ensplit.parsing import COUNT, require_distinct
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.plan import TrainJob, chunks, identifying_train_options, identity_differences, network_seed
from ensplit.settings import RunnerFields, config_class
from ensplit.settings.options import CnllSplits

SharingMethod = Literal["batchensemble", "mimo", "mixture", "grouped", "multihead"]
SHARING = ("batchensemble", "mimo", "mixture", "grouped", "multihead")
MEMBERS_PER_RUN = 32
TUNE_LRS = (0.05, 0.1, 0.2, 0.4)  # holds every family's best lr at P/8, P/2 and P on MNIST-1D (default_recipe.md)


@config_class(groups=(RunnerFields,))
class RecommendConfig:
    """The question (a budget) and how much evidence to gather for the answer."""

    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    budget: Annotated[int, Field(ge=1, le=10**12, description="parameter budget P (e.g. 80k, 1.5M)"), COUNT] = 80_000
    methods: Annotated[tuple[SharingMethod, ...], Field(
        max_length=5, description="sharing methods to consider, comma-separated (empty: memory splits only)")] = SHARING
    members_max: Annotated[int, Field(ge=2, le=64, description="largest memory split n (members of a deep "
                                                               "ensemble)")] = 8
    sharing_members: Annotated[tuple[Annotated[int, Field(ge=2, le=64)], ...], Field(
        min_length=1, max_length=8, description="members of each sharing method, comma-separated")] = (4,)
    flops_budget: Annotated[int, Field(ge=1, le=10**15, description="inference FLOPs per example: each candidate "
                                                                    "is narrowed to fit it"), COUNT] | None = None
    seeds: Annotated[int, Field(ge=1, le=100, description="runs per ladder budget of each sharing method "
                                                          "(trained together, stacked)")] = 1
    rungs: Annotated[int, Field(ge=3, le=12, description="ladder budgets of each sharing method, 2× apart, the "
                                                         "largest at or below P/ladder_top")] = 4
    ladder_top: Annotated[int, Field(ge=2, le=64, description="the largest ladder budget is at or below P/this "
                                                              "(a larger value: cheaper runs, a longer "
                                                              "extrapolation)")] = 4
    cost_cap: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, description="the cheap runs' training "
                                     "FLOPs at most this share of a one-seed brute force: what the ladders leave "
                                     "buys a rung at P/2 for the best predicted sharing methods (0: none)")] = 0.5
    pool: Annotated[int, Field(ge=4, le=1000, description="networks per member size of the deep pools at or "
                                                          "below P/8 (3 above, where a network costs more; "
                                                          "every size with --tune)")] = 6
    verify: Annotated[bool, Field(description="train the recommendation and the single network at the budget "
                                              "with fresh seeds, and compare with the prediction")] = True
    bootstrap: Annotated[int, Field(ge=10, le=10_000, description="bootstrap resamples of every interval")] = 100
    cnll_splits: CnllSplits = 5
    tune: Annotated[bool, Field(description="choose the lr and weight decay of every cheap run on a validation "
                                            "split (validation_fraction 0.1 when it is 0), each size on its "
                                            "own, and carry each family's to P by lr ∝ size^γ")] = False
    tune_lrs: Annotated[tuple[Annotated[float, Field(gt=0, le=1e3)], ...], Field(
        min_length=1, max_length=32, description="learning rates tried by --tune, comma-separated")] = TUNE_LRS
    tune_weight_decays: Annotated[tuple[Annotated[float, Field(ge=0, le=1)], ...], Field(
        min_length=1, max_length=32, description="weight decays tried by --tune, comma-separated")] = (0.0, 5e-4, 2e-3)
    tune_extensions: Annotated[int, Field(ge=0, le=10, description="times --tune grows its grid past an edge "
                                                                   "the best cell lies on")] = 2

    def __post_init__(self) -> None:
        require_distinct("methods", self.methods)
        require_distinct("sharing_members", self.sharing_members)
        if self.rungs * self.seeds < 4:  # three points fit the three-parameter law exactly: no noise estimate
            raise EnsplitError(f"rungs × seeds = {self.rungs} × {self.seeds}: a ladder needs 4 runs at least to "
                               "estimate its noise; raise --rungs or --seeds")
        require_distinct("tune_lrs", self.tune_lrs)
        require_distinct("tune_weight_decays", self.tune_weight_decays)
        if self.tune and self.recipe.validation_fraction == 0.0:  # tuning needs a validation split (as study)
            object.__setattr__(self, "recipe", dataclasses.replace(self.recipe, validation_fraction=0.1))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RecommendConfig:
        return build_settings(cls, "recommend", values)

    def identity(self) -> dict[str, Any]:
        """What decides every stored run: the recipe (never the budget, so one folder serves every budget)."""
        r = self.recipe
        return {"experiment": "recommend", "dataset": r.dataset, "num_samples": r.num_samples,
                "data_seed": r.data_seed, "train_subset": r.train_subset, "test_subset": r.test_subset,
                "validation_fraction": r.validation_fraction, "family": r.family, "depth": r.depth,
                "family_options": dict(r.family_options), "seed": r.seed,
                "train": identifying_train_options(dataclasses.asdict(r.train))}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=list).encode()).hexdigest()[:16]

    def differences(self, other: RecommendConfig) -> list[str]:
        """Each identifying field that differs from `other`'s (the folder's), with both values."""
        return identity_differences(self.identity(), other.identity())


@dataclass(frozen=True)
class Candidate:
    """One way to spend the budget: `method` ("single", "deep" or a sharing method) with `members` of `width`;
    `params` is the whole model's exact count."""

    method: str
    members: int
    width: int
    params: int
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        if self.method == "single":
            return f"single w{self.width}"
        if self.method == "deep":
            return f"deep {self.members}×w{self.width}"
        return f"{self.method}({self.members}) w{self.width}"


def _kwargs(recipe: Recipe, data: Dataset) -> dict[str, Any]:
    return dict(in_shape=tuple(data.in_shape), num_classes=data.num_classes, **recipe.options)


def deep_width(recipe: Recipe, data: Dataset, budget: int, members: int) -> int | None:
    """The widest member of a `members`-network ensemble within `budget` (None: width 1 does not fit)."""
    kwargs = _kwargs(recipe, data)
    if members * count_params(recipe.family, 1, recipe.depth, **kwargs) > budget:
        return None
    return solve_width(recipe.family, budget // members, recipe.depth, **kwargs)


_SIZED: dict[str, Candidate | None] = {}  # sharing_candidate's answers: the width search traces models


def sharing_candidate(recipe: Recipe, data: Dataset, method: str, members: int, budget: int) -> Candidate | None:
    """A sharing method within `budget` (the mixture keeps the single network's width as its backbone and
    takes the budget as its template-bank knob); None when it cannot fit. Memoised on everything it reads."""
    key = json.dumps([recipe.family, recipe.depth, recipe.options, list(data.in_shape), data.num_classes, method,
                      members, int(budget)], sort_keys=True, default=str)
    if key not in _SIZED:
        _SIZED[key] = _sharing_candidate(recipe, data, method, members, budget)
    return _SIZED[key]


def _sharing_candidate(recipe: Recipe, data: Dataset, method: str, members: int, budget: int) -> Candidate | None:
    kwargs = dict(in_shape=tuple(data.in_shape), num_classes=data.num_classes)
    try:
        if method == "mixture":
            width = deep_width(recipe, data, budget, 1)
            if width is None:
                return None
            options: tuple[tuple[str, Any], ...] = (("budget", int(budget)),)
        else:
            width = solve_method_width(method, budget, recipe.family, members, recipe.depth, **kwargs,
                                       family_options=recipe.options)
            options = ()
        params = method_param_count(method, recipe.family, members, width, recipe.depth, **kwargs,
                                    family_options=recipe.options, **dict(options))
    except EnsplitError:
        return None
    return Candidate(method, members, width, params, options) if params <= budget else None


def candidates(config: RecommendConfig, data: Dataset, budget: int | None = None,
               flops: bool = True) -> list[Candidate]:
    """Every candidate at the budget (see the module docstring); with `flops` and a flops_budget, each narrowed to
    the largest that also fits it and those that fit it at no size left out (`flops_sizing`)."""
    budget = config.budget if budget is None else budget
    recipe = config.recipe
    found = []
    for n in range(1, config.members_max + 1):
        width = deep_width(recipe, data, budget, n)
        if width is not None:
            found.append(Candidate("single" if n == 1 else "deep", n, width, n * recipe.params(width, data)))
    for method in config.methods:
        for members in config.sharing_members:
            candidate = sharing_candidate(recipe, data, method, members, budget)
            if candidate is not None:
                found.append(candidate)
    if not found:
        raise EnsplitError(f"budget = {budget:,}: not even one network of width 1 fits; raise the budget")
    if flops and config.flops_budget is not None:
        return fit_flops(found, config, data, _at_budget(config, data), budget).kept
    return found


def _at_budget(config: RecommendConfig, data: Dataset) -> AtBudget:
    """A knob-sized sharing candidate at another budget, sized as its ladder sizes it (`sharing_candidate`)."""
    return lambda candidate, budget: sharing_candidate(config.recipe, data, candidate.method, candidate.members,
                                                       budget)


POOLS_ABOVE_LARGEST = 2.0  # under a flops_budget the pools are planned at 2× the largest memory split, at most P


def pool_planning_config(config: RecommendConfig, kept: Sequence[Candidate]) -> RecommendConfig:
    """The config the deep pools are planned with: `config`, or, when a flops_budget narrows the single network
    and the memory splits, the same at P'' = min(P, 2·P'), P' the largest of them in parameters, so that the
    pools (P''/16 … P''/2) reach down to their members as they do for P. Planned at P they sat above the narrowed
    members: at 23,050 parameters and 8,000 FLOPs (P' = 4,095, members of 500–2,000 parameters) the memory
    splits were extrapolated down to them and missed by up to 0.26 (regret 0.097), and the pools cost 1.5× a
    brute force of the narrowed candidates. The ladders stay planned at P (their rungs are sized below each
    method's candidate, `method_ladder_budgets`): planned lower, they ended further below the sharing methods'
    narrowed candidates, and multihead was missed by 0.2. At P' itself (the pools placed as P/16 … P/2 are for
    P) the single network was extrapolated 1.5 octaves and the answers were worse: regret 0.041 and 0.007
    against 0.025 and 0.001 at 8,000 and 15,000 FLOPs (benchmarks/results/recommend_flops_budget.md)."""
    memory = [c.params for c in kept if c.method in ("single", "deep")]
    if config.flops_budget is None or not memory:
        return config
    planned = min(config.budget, math.ceil(POOLS_ABOVE_LARGEST * max(memory)))
    return config if planned >= config.budget else dataclasses.replace(config, budget=planned)


def flops_sizing(config: RecommendConfig, data: Dataset) -> Sizing:
    """The candidates at the budget sized to the flops_budget, and those no size fits (`recommend_sizing`)."""
    return fit_flops(candidates(config, data, flops=False), config, data, _at_budget(config, data))


def _grid_index(budget: float) -> int:
    """k of the largest grid size 2^(k/2) at or below `budget`."""
    return math.floor(2 * math.log2(budget) + 1e-9)


def grid_size(budget: float) -> int:
    """The largest power of √2 at or below `budget` (the global grid every cheap run is placed on)."""
    return int(2 ** (math.floor(2 * math.log2(budget) + 1e-9) / 2))


POOL_STEP = 2.0  # deep pools 2× apart in size: interpolating log s between them is enough for the plane


def pool_sizes(config: RecommendConfig) -> list[int]:
    """Grid sizes of the deep pools: P/2, P/4, … (2× apart) down to min(P/16, one step below P/members_max).
    With `tune` the top one moves up to the grid size at or above P/2, so that the 2-member split (just under
    P/2) is interpolated in log s between two pools rather than extrapolated past the top one; that pool is
    tuned on a small grid around its neighbour's cell (`recommend_tune.tune_cheap_runs`), which pays for it.
    Untuned, the 0.5 FLOPs cap would pay for it with a sharing method's refinement rung (README, "Accuracy")."""
    low = min(config.budget / 16, config.budget / config.members_max / math.sqrt(2))
    top, step = _grid_index(config.budget / 2), round(2 * math.log2(POOL_STEP))
    sizes = {int(2 ** (k / 2)) for k in range(top, -1, -step) if 2 ** (k / 2) >= low * (1 - 1e-9)}
    above = math.ceil(2 * math.log2(config.budget / 2) - 1e-9)  # the grid index at or above P/2
    if config.tune and sizes and above > top:
        sizes = (sizes - {int(2 ** (top / 2))}) | {int(2 ** (above / 2))}
    return sorted(sizes)


def pool_networks(config: RecommendConfig, size: int) -> int:
    """Networks in the deep pool of `size`: `pool` at or below P/8, 3 above (a network there costs more than an
    eighth of the budget, and three give every n ≤ 3 of the plane directly). With `tune`, `pool` at every size:
    the three that choose the size's cell are then joined by fresh networks in it, as each ladder rung's
    replicates join its choosing run, so the deep splits near P are read from more than three tuned networks
    (benchmarks/results/recommend_tune.md)."""
    return config.pool if config.tune or size <= config.budget / 8 * (1 + 1e-9) else MIN_POOL


MIN_POOL = 3


LADDER_STEP = 2.0  # rungs 2× apart: a wide span in log B pins the law's curvature down (see the module doc)


def ladder_budgets(config: RecommendConfig) -> list[int]:
    """The sharing methods' ladder: `rungs` grid sizes 2× apart, the largest at or below P/ladder_top (P/32 …
    P/4 by default: the four rungs of one run each cost about 0.47 of one run at the budget)."""
    top, step = _grid_index(config.budget / config.ladder_top), round(2 * math.log2(LADDER_STEP))
    return sorted({int(2 ** ((top - j * step) / 2)) for j in range(config.rungs)})


MIN_LADDER_SIZES = 3  # a power law c + b·B^a needs three distinct sizes


def method_ladder_budgets(config: RecommendConfig, data: Dataset, method: str, members: int) -> list[int]:
    """The method's rungs: the `ladder_budgets` it fits, one per distinct network (two budgets that fit the same
    network would train it twice for one point of the law). When fewer than `rungs` sizes fit (a method too
    coarse for the small rungs, e.g. grouped members at width 1), the ladder climbs on, 2× at a time above its
    top, up to the grid size at or below P/2; when that leaves fewer than the three sizes a law needs, on up
    the √2 grid towards P while the network stays smaller than the candidate at P, so the method is predicted
    (from a costlier rung) rather than left out."""
    budgets: list[int] = []
    seen: set[int] = set()
    at_p = sharing_candidate(config.recipe, data, method, members, config.budget)
    ceiling = config.budget if at_p is None else at_p.params

    def take(budget: int) -> bool:
        """Add `budget` when it fits a network not yet on the ladder and below the candidate; False past it."""
        candidate = sharing_candidate(config.recipe, data, method, members, budget)
        if candidate is not None and candidate.params >= ceiling:
            return False
        if candidate is not None and candidate.params not in seen:
            seen.add(candidate.params)
            budgets.append(budget)
        return True

    for budget in ladder_budgets(config):
        take(budget)
    step = round(2 * math.log2(LADDER_STEP))
    index = _grid_index(config.budget / config.ladder_top) + step
    half = config.budget / 2 * (1 + 1e-9)
    while len(budgets) < config.rungs and 2 ** (index / 2) <= half and take(int(2 ** (index / 2))):
        index += step
    index = _grid_index(half) + 1
    while len(budgets) < MIN_LADDER_SIZES and 2 ** (index / 2) < config.budget and take(int(2 ** (index / 2))):
        index += 1
    return budgets


def _job(config: RecommendConfig, kind: str, width: int, seeds: tuple[int, ...], first: int, method: str = "deep",
         members: int = 0, options: tuple[tuple[str, Any], ...] = ()) -> TrainJob:
    r = config.recipe
    return TrainJob(kind, r.family, width, r.depth, tuple(sorted(r.family_options.items())), r.data,
                    tuple(sorted(dataclasses.asdict(r.train).items())), seeds, first, method, members, options)


def pool_widths(config: RecommendConfig, data: Dataset) -> dict[int, int]:
    """Width of each deep pool (sizes too small for width 1 are left out; equal widths are merged)."""
    widths = {}
    for size in pool_sizes(config):
        width = deep_width(config.recipe, data, size, 1)
        if width is not None and width not in widths.values():
            widths[size] = width
    return widths


def plan_pool_jobs(config: RecommendConfig, data: Dataset) -> list[TrainJob]:
    """The deep pools' jobs: `pool_networks` networks of each pool width (the first networks of a larger pool
    have the same seeds, so a folder with more networks per size serves a plan with fewer)."""
    jobs = []
    for size, width in pool_widths(config, data).items():
        for start, stop in chunks(pool_networks(config, size), MEMBERS_PER_RUN):
            seeds = tuple(network_seed(config.recipe.seed, "pool", width, i) for i in range(start, stop))
            jobs.append(_job(config, "pool", width, seeds, start))
    return jobs


LadderPlan = dict[tuple[str, int, int], list[TrainJob]]


def ladder_job(config: RecommendConfig, data: Dataset, method: str, members: int, budget: int, first: int = 0,
               count: int | None = None) -> list[TrainJob]:
    """The method's rung at `budget`: one job holding every seed's run (`count` runs from seed index `first`;
    by default the `seeds` runs from 0), trained as one stacked model (`ensplit.train.stacked`); none when the
    method cannot fit the budget."""
    candidate = sharing_candidate(config.recipe, data, method, members, budget)
    if candidate is None:
        return []
    kind = f"ladder {method}×{members}"
    stop = first + (config.seeds if count is None else count)
    seeds = tuple(network_seed(config.recipe.seed, kind, budget, i) for i in range(first, stop))
    return [_job(config, "ladder", candidate.width, seeds, first, method, members, candidate.options)]


def plan_ladder_jobs(config: RecommendConfig, data: Dataset) -> LadderPlan:
    """(method, members, ladder budget) -> its jobs (`ladder_job`); budgets a method cannot fit are left out."""
    plan = {}
    for method in config.methods:
        for members in config.sharing_members:
            for budget in method_ladder_budgets(config, data, method, members):
                jobs = ladder_job(config, data, method, members, budget)
                if jobs:
                    plan[(method, members, budget)] = jobs
    return plan


def verify_job(config: RecommendConfig, candidate: Candidate) -> TrainJob:
    """The candidate trained at the budget with fresh seeds (never used by the cheap runs)."""
    seed = config.recipe.seed
    if candidate.method in ("single", "deep"):
        seeds = tuple(network_seed(seed, "verify", candidate.width, i) for i in range(candidate.members))
        return _job(config, "verify", candidate.width, seeds, 0)
    fresh = (network_seed(seed, f"verify {candidate.method}×{candidate.members}", candidate.width, 0),)
    return _job(config, "verify", candidate.width, fresh, 0, candidate.method, candidate.members, candidate.options)
