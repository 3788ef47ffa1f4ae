"""`ensplit recommend`: a parameter budget in, the best way to spend it out — predicted, with intervals, checked.

1. Candidates at the budget P: the single network, every memory split n × s (n = 2..members_max), every
   sharing method (`recommend_plan`); their inference FLOPs, training time per epoch and inference time are
   measured on the models themselves; `flops_budget` narrows each to the widest that also fits it
   (`recommend_sizing`). The result's `cost` weighs the cheap runs against a brute force (`recommend_cost`).
2. Cheap runs on budgets below P (deep pools, sharing-method ladders), stored in a resumable run folder
   that every budget shares, predict each candidate's CNLL at P with a 5–95% interval
   (`recommend_evidence`, `ensplit.analysis.extrapolation`).
3. The recommendation is the lowest predicted CNLL; its interval separates it from the runner-up or not.
4. Verification: the recommendation and the single network, trained at P with fresh seeds.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensplit._version import provenance
from ensplit.analysis.extrapolation import Prediction
from ensplit.data.dataset import Dataset
from ensplit.data.spec import load_data
from ensplit.ensembles import build_method
from ensplit.ensembles.cost import forward_flops
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_cost import Cost, brute_force_flops, cost_of, grid_cells, training_flops
from ensplit.experiments.recommend_evidence import Evidence, gather, predict, stored_cnll
from ensplit.experiments.recommend_measured import cost_key, keep_costs, stored_costs
from ensplit.experiments.recommend_plan import (
    Candidate,
    LadderPlan,
    RecommendConfig,
    flops_sizing,
    ladder_budgets,
    plan_ladder_jobs,
    plan_pool_jobs,
    pool_planning_config,
    pool_widths,
    verify_job,
)
from ensplit.experiments.recommend_refine import plan_refinement
from ensplit.experiments.recommend_tune import (
    TuneResult,
    carry_targets,
    family_key,
    refinement_cost,
    tune_cheap_runs,
    tune_rungs,
)
from ensplit.jsonable import to_jsonable
from ensplit.runs.executors import make_executor
from ensplit.runs.folder import admit, execute, note, open_folder
from ensplit.runs.plan import TrainJob
from ensplit.runs.resources import check_training
from ensplit.store import folder_lock
from ensplit.train import measure, train
from ensplit.train.epoch_time import seconds_per_epoch
from ensplit.train.measure import steps_in_epoch

DEFAULT_OUT = "ensplit-recommend"


@dataclass
class Assessed:
    """A candidate with its costs at the budget, its prediction and (if verified) its measured CNLL."""

    candidate: Candidate
    flops: int
    seconds_per_epoch: float
    inference_ms: float
    prediction: Prediction | None = None
    measured_cnll: float | None = None
    settings: dict[str, float] | None = None  # its family's tuned lr and weight decay (--tune), else None

    def to_json(self) -> dict[str, Any]:
        c, p = self.candidate, self.prediction
        return {"method": c.method, "members": c.members, "width": c.width, "params": c.params, "name": c.name,
                "settings": self.settings,
                "flops_per_example": self.flops, "predicted_cnll": None if p is None else p.value,
                "interval": None if p is None else [p.lower, p.upper], "measured_cnll": self.measured_cnll,
                "seconds_per_epoch": self.seconds_per_epoch, "inference_ms_per_example": self.inference_ms}


@dataclass
class RecommendResult:
    """The ranked candidates and the verification. `to_json()` is what `ensplit recommend --json` prints."""

    config: RecommendConfig
    folder: Path
    ranked: list[Assessed]
    dropped: list[Assessed] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    evidence: Evidence = field(default_factory=Evidence)
    trained_jobs: int = 0
    seconds: float = 0.0
    report: Path | None = None
    cost: Cost | None = None
    tuning: TuneResult | None = None

    @property
    def recommendation(self) -> Assessed:
        return self.ranked[0]

    @property
    def runner_up(self) -> Assessed | None:
        return self.ranked[1] if len(self.ranked) > 1 else None

    @property
    def separated(self) -> bool:
        """Whether the recommendation's interval lies wholly below the runner-up's."""
        rival = self.runner_up
        return rival is not None and self.recommendation.prediction.upper < rival.prediction.lower

    def to_json(self) -> dict[str, Any]:
        best = self.recommendation.to_json()
        recommendation = {k: best[k] for k in ("method", "members", "width", "params", "flops_per_example",
                                              "predicted_cnll", "interval", "name", "settings")}
        rival = self.runner_up
        return to_jsonable({
            "budget": self.config.budget, "flops_budget": self.config.flops_budget,
            "recipe": self.config.recipe.to_json(), "recommendation": recommendation,
            "runner_up": None if rival is None else rival.to_json(), "separated": self.separated,
            "candidates": [a.to_json() for a in self.ranked],
            "dropped": [{**a.to_json(), "reason": "flops_budget"} for a in self.dropped],
            "verification": self.verification, "folder": str(self.folder), "trained_jobs": self.trained_jobs,
            "seconds": round(self.seconds, 1), "cost": None if self.cost is None else self.cost.to_json(),
            "report": None if self.report is None else str(self.report),
            "tuning": None if self.tuning is None else self.tuning.to_json(), **provenance()})


def _log(message: str, progress: bool) -> None:
    if progress:
        print(f"ensplit recommend: {message}", file=sys.stderr, flush=True)


def build(candidate: Candidate, config: RecommendConfig, data: Dataset) -> Any:
    """The candidate's model (as it would be trained), on the CPU."""
    r = config.recipe
    return build_method(candidate.method, r.family, candidate.members, candidate.width, r.depth, data.in_shape,
                        data.num_classes, r.seed, r.options, **dict(candidate.options))


def assess_costs(candidate: Candidate, config: RecommendConfig, data: Dataset) -> Assessed:
    """Inference FLOPs per example, seconds per training epoch (`steps` steps timed by the shared epoch timer,
    `ensplit.train.epoch_time`, scaled to a full epoch; training a candidate at P is what `recommend` avoids)
    and inference ms."""
    model = build(candidate, config, data)
    sample = data.prepare(data.x_test[:64]).to(next(model.parameters()).dtype)
    flops = forward_flops(model, sample)
    steps = 3
    subset = dataclasses.replace(data, x_train=data.x_train[: steps * config.recipe.train.batch_size],
                                 y_train=data.y_train[: steps * config.recipe.train.batch_size])
    timing = dataclasses.replace(config.recipe.train, epochs=1, batching=model.batching)
    seeds = list(range(model.members))
    seconds = []
    for _ in range(2):  # short "epochs" of `steps` steps; the first pays for warm-up (the shared timer drops it)
        result = train(model, subset, timing, seeds, progress=False, index_sampler=model.index_sampler)
        seconds.append(result.seconds_per_epoch[0])
    batches = steps_in_epoch(data.x_train.shape[0], config.recipe.train.batch_size)
    per_epoch = seconds_per_epoch(seconds) * batches / steps
    inference = measure.inference_ms_per_example([model], data.prepare(data.x_test[:256]).float(), 256, repeats=3)
    return Assessed(candidate, flops, per_epoch, inference)


def _verify(config: RecommendConfig, run: Any, executor: Any, best: Assessed, single: Assessed | None,
            planned: list[TrainJob], progress: bool) -> tuple[dict[str, Any], int]:
    """Train the recommendation and the single network at the budget (`planned`, in that order) and compare."""
    jobs = {a.candidate: job for a, job in zip([a for a in (best, single) if a is not None], planned, strict=True)}
    trained = execute(planned, run, executor, progress, "verification")
    for assessed in (best, single):
        if assessed is not None:
            assessed.measured_cnll = stored_cnll(run.store, jobs[assessed.candidate].job_id, config.cnll_splits)
    p = best.prediction
    single_cnll = (single or best).measured_cnll
    measured = best.measured_cnll
    return {"method": best.candidate.method, "members": best.candidate.members, "width": best.candidate.width,
            "predicted_cnll": p.value, "interval": [p.lower, p.upper], "measured_cnll": measured,
            "within_interval": None if measured is None else p.contains(measured),
            "single_predicted_cnll": (single or best).prediction.value, "single_measured_cnll": single_cnll,
            "measured_advantage": None if measured is None or single_cnll is None else single_cnll - measured}, trained


MIN_POOL_SIZES = 3  # a power law in s (c + b·s^a) needs three member sizes


def _check_pool_sizes(config: RecommendConfig, data: Dataset) -> None:
    """Refuse, before any training, a budget whose deep pools (P/16 … P/2) hold fewer than three network sizes,
    naming the smallest budget that has them."""
    sizes = len(pool_widths(config, data))
    if sizes >= MIN_POOL_SIZES:
        return
    budget = config.budget
    while budget < 10**12 and len(pool_widths(dataclasses.replace(config, budget=budget), data)) < MIN_POOL_SIZES:
        budget = math.ceil(budget * 1.25)
    raise EnsplitError(f"budget = {config.budget:,}: too small for the cheap runs: the deep pools at P/16 … P/2 "
                       f"hold {sizes} network size(s) of {config.recipe.family}, and the prediction needs "
                       f"{MIN_POOL_SIZES}; raise --budget to at least {budget:,}")


def tuned(config: RecommendConfig, settings: dict[str, dict[str, float]], key: str) -> RecommendConfig:
    """The config a family trains with at the budget: its carried lr and weight decay (`recommend_tune`), or the
    recipe's own."""
    chosen = settings.get(key)
    return config if chosen is None else dataclasses.replace(config, recipe=config.recipe.with_train(**chosen))


@dataclass
class CheapRuns:
    """The cheap runs of one recommendation: tuning (if asked), deep pools, ladders, and what they show."""

    evidence: Evidence
    planned: list[TrainJob]
    trained: int
    tuning: TuneResult | None
    widths: dict[int, int]
    pool_jobs: list[TrainJob]
    ladders: LadderPlan
    family_configs: dict[tuple[str, int], RecommendConfig]
    pools_config: RecommendConfig  # the deep pools' plan (`pool_planning_config`)

    @property
    def settings(self) -> dict[str, dict[str, float]]:
        """Each tuned family's lr and weight decay at the budget (none without --tune)."""
        return {} if self.tuning is None else self.tuning.settings


def cheap_runs(config: RecommendConfig, data: Dataset, run: Any, executor: Any, found: list[Candidate],
               progress: bool) -> CheapRuns:
    """Train the deep pools (planned by `pool_planning_config`) and every sharing method's ladder (with `tune`,
    each size in its own tuned cell, `recommend_tune`), and gather the evidence."""
    pools = pool_planning_config(config, found)
    widths = pool_widths(pools, data)
    ladders: LadderPlan = {}
    family_configs = {}
    for method in config.methods:
        for members in config.sharing_members:
            own = dataclasses.replace(config, methods=(method,), sharing_members=(members,))
            family_configs[(method, members)] = own
            ladders.update(plan_ladder_jobs(own, data))
    pools_at = "" if pools is config else f" up to {max(widths):,}"
    _log(f"{len(found)} candidates at {config.budget:,} parameters; cheap runs: deep pools at "
         f"{len(widths)} sizes{pools_at}, {_ladder_text(config, ladders)}", progress)
    tuning = None
    if config.tune:
        pool_jobs, ladders, tuning = tune_cheap_runs(config, data, run, executor, ladders, progress, pools)
        trained, planned = tuning.trained_jobs, list(tuning.tried)
    else:
        pool_jobs = plan_pool_jobs(pools, data)
        ladder_jobs = [j for jobs in ladders.values() for j in jobs]
        trained = execute(pool_jobs, run, executor, progress, "deep pools")
        trained += execute(ladder_jobs, run, executor, progress, "ladders")
        planned = pool_jobs + ladder_jobs
    evidence = gather(run.store, pools, widths, ladders, pool_jobs,
                      single_jobs=None if tuning is None else tuning.single_jobs)
    return CheapRuns(evidence, planned, trained, tuning, widths, pool_jobs, ladders, family_configs, pools)


def _ladder_text(config: RecommendConfig, ladders: LadderPlan) -> str:
    """The ladder budgets, and each family whose rungs differ (a coarse method climbs, `method_ladder_budgets`)."""
    base = ladder_budgets(config)
    rungs: dict[str, list[int]] = {}
    for method, members, budget in ladders:
        rungs.setdefault(f"{method}({members})", []).append(budget)
    own = [f"{family} at {sorted(budgets)}" for family, budgets in rungs.items() if sorted(budgets) != base]
    return f"ladders at {base}" + (f" ({'; '.join(own)})" if own else "")


def refine(config: RecommendConfig, data: Dataset, run: Any, executor: Any, kept: list[Assessed],
           cheap: CheapRuns, progress: bool) -> CheapRuns:
    """Successive refinement (`recommend_refine`): a rung at P/2 for the best predicted sharing families that
    the FLOPs cap still pays for (with --tune, at P/√2 on a local grid, `recommend_tune.local_grid`, with its
    fresh replicates), then the evidence gathered again."""
    _predict_all(kept, cheap.evidence, config)
    ranked = sorted((a for a in kept if a.prediction is not None), key=lambda a: a.prediction.value)
    spent = training_flops(cheap.planned, data)
    cells = grid_cells(config)
    brute = brute_force_flops([a.candidate for a in kept], config, data) * cells
    extra = plan_refinement(config, data, ranked, spent, brute, cheap.family_configs, refinement_cost(config),
                            cheap.ladders)
    if not extra:
        return cheap  # the predictions made above stand
    _log(f"refining {', '.join(f'{m}({n})' for m, n, _ in extra)} with a rung at {next(iter(extra))[2]:,} "
         "parameters", progress)
    if cheap.tuning is not None:
        before = len(cheap.tuning.tried)
        extra = tune_rungs(config, data, run, executor, extra, cheap.tuning, progress)
        jobs, trained = cheap.tuning.tried[before:], cheap.tuning.trained_jobs
    else:
        jobs = [j for rung in extra.values() for j in rung]
        trained = cheap.trained + execute(jobs, run, executor, progress, "refinement")
    ladders = {**cheap.ladders, **extra}
    evidence = gather(run.store, cheap.pools_config, cheap.widths, ladders, cheap.pool_jobs, cheap.evidence)
    _predict_all(kept, evidence, config)  # the ladders' pooled noise and model error moved with the new rungs
    return dataclasses.replace(cheap, evidence=evidence, planned=cheap.planned + jobs, trained=trained,
                               ladders=ladders)


def _predict_all(kept: list[Assessed], evidence: Evidence, config: RecommendConfig) -> None:
    for a in kept:
        a.prediction = predict(a.candidate, evidence, config)


def _rank(kept: list[Assessed], config: RecommendConfig) -> list[Assessed]:
    """The predicted candidates, best first (`refine` has predicted them); notes those left unpredicted."""
    unpredicted = [a.candidate.name for a in kept if a.prediction is None]
    if unpredicted:
        note(f"no prediction for {', '.join(unpredicted)} (too few cheap runs fit the ladder); left out")
    ranked = sorted((a for a in kept if a.prediction is not None), key=lambda a: a.prediction.value)
    if not ranked:
        raise EnsplitError(f"budget = {config.budget:,}: the cheap runs were too few or too poor to predict any "
                           "candidate; raise --budget, --pool or --epochs")
    return ranked


def _assess(config: RecommendConfig, data: Dataset,
            known: dict[str, list[float]] | None = None) -> tuple[list[Assessed], list[Assessed]]:
    """The candidates (sized to a flops_budget) with their costs, and those no size fits; refuses a budget
    that cannot train or predict before anything is trained. Costs in `known` (`stored_costs`: measured by an
    earlier run in the folder, on this machine) are taken, not measured again."""
    sizing = flops_sizing(config, data)  # refuses a flops_budget nothing fits
    device = config.recipe.torch_device()
    for candidate in sizing.kept:
        check_training(candidate.params, config.recipe.train.optimizer, device, f"training {candidate.name}",
                       "lower the budget")
    pools = pool_planning_config(config, sizing.kept)
    try:
        _check_pool_sizes(pools, data)
    except EnsplitError:
        if pools is config:
            raise
        raise EnsplitError(f"flops_budget = {config.flops_budget:,}: the candidates that fit it are too small "
                           f"for the deep pools the prediction needs (planned up to {pools.budget:,} "
                           "parameters); raise --flops-budget") from None
    known = known or {}

    def assess(candidate: Candidate) -> Assessed:
        stored = known.get(cost_key(candidate, config))
        if stored is None:
            return assess_costs(candidate, config, data)
        return Assessed(candidate, int(stored[0]), float(stored[1]), float(stored[2]))

    return [assess(c) for c in sizing.kept], [assess(c) for c in sizing.dropped]  # dropped: above flops_budget


def run_recommend(config: RecommendConfig | None = None, out: str | Path = DEFAULT_OUT, progress: bool = True,
                  repair: bool = False) -> RecommendResult:
    """The whole recommender (see the module docstring); resumable in `out`, which every budget can share.
    `repair` rebuilds a damaged results.sqlite from the stored arrays first (as `ensplit study --repair`).
    The caller writes the page (`ensplit.reports.write(result, out)`)."""
    start = time.perf_counter()
    config = admit(config or RecommendConfig(), out, "recommend")  # a refused folder costs no work
    config.recipe.apply_threads()
    data = load_data(config.recipe.data)
    out = Path(out)
    known = stored_costs(out)
    kept, dropped = _assess(config, data, known)
    with folder_lock(out, "recommend"):
        run = open_folder(config, out, "recommend", repair, data=data)
        keep_costs(run.store, config, [(a.candidate, a.flops, a.seconds_per_epoch, a.inference_ms)
                                       for a in kept + dropped], known)
        executor = make_executor(config.executor, str(config.recipe.torch_device()), config.workers,
                                 config.address, False, config.gpus_per_job)  # one bar per stage, none per run
        cheap = cheap_runs(config, data, run, executor, [a.candidate for a in kept], progress)
        cheap = refine(config, data, run, executor, kept, cheap, progress)
        if cheap.tuning is not None and config.flops_budget is not None:  # to the narrowed candidates, not P
            cheap.tuning.carry_to(carry_targets([a.candidate for a in kept]))
        for a in kept:
            a.settings = cheap.settings.get(family_key(a.candidate))
        result = RecommendResult(config, out, _rank(kept, config), dropped, None, cheap.evidence,
                                 tuning=cheap.tuning)
        trained, verified = cheap.trained, []
        if config.verify:
            single = next((a for a in result.ranked if a.candidate.method == "single"), None)
            single = None if single is result.recommendation else single
            checked = [a for a in (result.recommendation, single) if a is not None]
            verified = [verify_job(tuned(config, cheap.settings, family_key(a.candidate)), a.candidate)
                        for a in checked]
            result.verification, more = _verify(config, run, executor, result.recommendation, single, verified,
                                                progress)
            trained += more
        run.store.checkpoint()
        result.trained_jobs = trained
        result.seconds = time.perf_counter() - start
        result.cost = cost_of(cheap.planned, verified, [a.candidate for a in result.ranked], config, data,
                              result.seconds, trained, run.store, [a.seconds_per_epoch for a in result.ranked])
    return result
