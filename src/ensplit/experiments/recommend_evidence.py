"""From stored cheap runs to a prediction for every candidate (the middle of `ensplit recommend`).

- Deep pools: per member size, the CNLL_n power law from the pool (Lobacheva et al. §7, bootstrap over networks;
  a 3-network pool, which a bootstrap cannot resample, takes its law's variance from 3-network subsets of the
  largest pool, `_with_fit_variance`) gives the (n, s) plane; a memory split n × s is read from it
  (`plane_prediction`).
- The single network: each pool network's own CNLL against its size, a ladder extrapolated to P.
- Each sharing method: the CNLL of every seed's ensemble against its exact parameter count, a ladder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ensplit.analysis.extrapolation import (
    Noise,
    Prediction,
    SizeLaw,
    ladder_prediction,
    plane_prediction,
    pooled_single_noise,
)
from ensplit.analysis.ladder_error import model_error, pooled_noise
from ensplit.analysis.prediction import predict_size, subset_fit_variance
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig, pool_networks
from ensplit.metrics import cnll_ttcv, cnll_ttcv_indexed, validate_predictions
from ensplit.store import ResultStore

SMALL_POOL = 4  # fewer networks than this: every bootstrap resample of distinct networks is the pool itself


@dataclass
class Evidence:
    """What the predictions rest on: per-network CNLL of the pools `{params: [..]}`, the per-size laws, and
    each sharing family's ladder `{(method, members): {params: [CNLL per seed]}}`."""

    singles: dict[int, list[float]] = field(default_factory=dict)
    laws: list[SizeLaw] = field(default_factory=list)
    ladders: dict[tuple[str, int], dict[int, list[float]]] = field(default_factory=dict)
    noise: Noise | None = None  # one run's σ pooled over the sharing ladders, with its degrees of freedom
    plane_noise: Noise | None = None  # one network's σ pooled over the deep pools, with its degrees of freedom
    kappa: float = 0.0  # the power law's own extrapolation error, CNLL per octave (backtested on the ladders)

    def settle(self, repeats: int, seed: int) -> Evidence:
        """Pool the ladders' noise and backtest their model error (`ensplit.analysis.ladder_error`)."""
        self.noise = pooled_noise(self.ladders.values())
        self.kappa = model_error(self.ladders.values(), self.noise, min(repeats, 50), seed)
        return self


def network_cnll(log_probs: torch.Tensor, labels: torch.Tensor, splits: int) -> list[float]:
    """Each network's own CNLL (temperature fitted by test-time cross-validation)."""
    index = torch.arange(log_probs.shape[0]).view(-1, 1)
    return [float(v) for v in cnll_ttcv_indexed(log_probs, labels, [index], "before", splits)[0][0]]


def gather(store: ResultStore, config: RecommendConfig, widths: dict[int, int],
           ladder_jobs: dict[tuple[str, int, int], list], pool_jobs: list | None = None,
           pools: Evidence | None = None, single_jobs: list | None = None) -> Evidence:
    """Read every finished cheap run of the plan from the store (the deep pools' networks from `pool_jobs` only,
    when given: a folder may hold networks of the same width trained with other settings, e.g. tuned; the single
    network's ladder from `single_jobs` when given, the pools' otherwise: --tune tunes them apart,
    `recommend_tune`). With `pools`, its deep-pool evidence is reused (the pools are the same; their bootstrap
    is the slow part)."""
    labels = torch.as_tensor(store.labels()).long()
    evidence = Evidence() if pools is None else Evidence(dict(pools.singles), list(pools.laws),
                                                         plane_noise=pools.plane_noise)
    planned = None if pool_jobs is None else {job.job_id for job in pool_jobs}
    pools_read: dict[int, torch.Tensor] = {}
    for size, width in widths.items() if pools is None else ():
        rows = _pool_rows(store, width, planned)[: pool_networks(config, size)]
        if len(rows) < 3:
            continue
        log_probs, labels = validate_predictions(torch.as_tensor(store.log_probs(rows)).double(), labels)
        params = int(rows[0]["params"])
        own = network_cnll(log_probs, labels, config.cnll_splits)
        evidence.singles[params] = own if single_jobs is None else _single_cnll(store, width, single_jobs, labels,
                                                                                config.cnll_splits)
        fit_n = min(4, len(rows))
        size = predict_size(log_probs, labels, params, max_n=config.members_max, small_pool=len(rows),
                            fit_max_n=fit_n, repeats=config.bootstrap, splits=config.cnll_splits)
        refits = tuple(size.fits) if len(rows) >= SMALL_POOL else ()  # a 3-network pool's refits are itself
        evidence.laws.append(SizeLaw(params, size.fit, refits, float(np.std(own, ddof=1)), len(own)))
        pools_read[params] = log_probs
    if pools_read:
        evidence.plane_noise = pooled_single_noise(evidence.laws)
        subsets: dict[tuple[int, int], np.ndarray] = {}  # one subset variance per (reference, networks)
        evidence.laws = [_with_fit_variance(law, pools_read, evidence.laws, labels, config, evidence.plane_noise,
                                            subsets) for law in evidence.laws]
    by_job: dict[str, list[dict]] = {}
    for row in store.networks("ladder"):
        by_job.setdefault(row["job_id"], []).append(row)
    for (method, members, _), jobs in ladder_jobs.items():
        values, params = [], None
        for job in jobs:
            rows = sorted(by_job.get(job.job_id, []), key=lambda r: r["member"])
            for run in _runs(rows, len(job.seeds)):
                if any(r["status"] != "ok" for r in run):
                    continue  # diverged: left out of the ladder
                params = int(run[0]["params"])
                log_probs, labels_ok = validate_predictions(torch.as_tensor(store.log_probs(run)).double(), labels)
                values.append(float(cnll_ttcv(log_probs, labels_ok, splits=config.cnll_splits)))
        if values and params is not None:  # two rungs of one network (e.g. a refinement) are replicates
            evidence.ladders.setdefault((method, members), {}).setdefault(params, []).extend(values)
    return evidence.settle(config.bootstrap, config.recipe.seed)


def _with_fit_variance(law: SizeLaw, pools: dict[int, torch.Tensor], laws: list[SizeLaw], labels: torch.Tensor,
                       config: RecommendConfig, noise: Noise | None = None,
                       subsets: dict[tuple[int, int], np.ndarray] | None = None) -> SizeLaw:
    """A pool of fewer than `SMALL_POOL` networks with the variance of its law's prediction that its bootstrap
    cannot give: a law fitted on that many networks varies, over subsets of the largest pool with two networks
    more at least, by `subset_fit_variance`, scaled by one network's variance (σ², pooled over the pools when
    `noise` is given, else this pool's own) over the reference pool's; with no such pool, the variance of the
    pool's mean CNLL, σ²/networks (the level of the curve only). `subsets` keeps the subset variances across
    calls (the pools above P/8 share their reference and size)."""
    if law.networks >= SMALL_POOL:
        return law
    sigma = law.single_std if noise is None else noise[0]
    candidates = [other for other in laws if other.networks >= law.networks + 2 and other.single_std > 0]
    if not candidates:
        return replace(law, fit_variance=(sigma ** 2 / law.networks,))
    reference = max(candidates, key=lambda other: (other.networks, other.params))
    subsets = {} if subsets is None else subsets
    key = (reference.params, law.networks)
    if key not in subsets:
        subsets[key] = subset_fit_variance(pools[reference.params], labels, law.networks, config.members_max,
                                           config.bootstrap, splits=config.cnll_splits, seed=config.recipe.seed)
    variance = subsets[key]
    scale = (sigma / reference.single_std) ** 2
    return replace(law, fit_variance=tuple(float(v) * scale for v in variance))


def _pool_rows(store: ResultStore, width: int, job_ids: set[str] | None) -> list[dict]:
    """The finished pool networks of `width` (those of `job_ids` only, when given)."""
    return [r for r in store.networks("pool", width, status="ok") if job_ids is None or r["job_id"] in job_ids]


def _single_cnll(store: ResultStore, width: int, jobs: list, labels: torch.Tensor, splits: int) -> list[float]:
    """Each network's own CNLL, over the finished networks of `width` that `jobs` trained."""
    rows = _pool_rows(store, width, {job.job_id for job in jobs})
    if not rows:
        return []
    log_probs, labels = validate_predictions(torch.as_tensor(store.log_probs(rows)).double(), labels)
    return network_cnll(log_probs, labels, splits)


def _runs(rows: list[dict], seeds: int) -> list[list[dict]]:
    """A ladder job's stored outputs split into its seeds' runs (each run's outputs follow each other); none
    when the job is not stored."""
    if not rows or len(rows) % seeds:
        return []
    per = len(rows) // seeds
    return [rows[i * per:(i + 1) * per] for i in range(seeds)]


def predict(candidate: Candidate, evidence: Evidence, config: RecommendConfig) -> Prediction | None:
    """The candidate's predicted CNLL at its own parameter count (None when the evidence is too thin)."""
    try:
        if candidate.method == "single":  # many networks per size: its own noise, the ladders' model error
            return ladder_prediction(evidence.singles, candidate.params, config.bootstrap, config.recipe.seed,
                                     model_error=evidence.kappa)
        if candidate.method == "deep":
            return plane_prediction(evidence.laws, candidate.members, candidate.params // candidate.members,
                                    evidence.plane_noise)
        ladder = evidence.ladders.get((candidate.method, candidate.members), {})
        return ladder_prediction(ladder, candidate.params, config.bootstrap, config.recipe.seed, evidence.noise,
                                 evidence.kappa)
    except EnsplitError:
        return None


def stored_cnll(store: ResultStore, job_id: str, splits: int) -> float | None:
    """The CNLL of one stored job's ensemble (None when it is missing or diverged)."""
    rows = sorted((r for r in store.networks("verify") if r["job_id"] == job_id), key=lambda r: r["member"])
    if not rows or any(r["status"] != "ok" for r in rows):
        return None
    labels = torch.as_tensor(store.labels()).long()
    log_probs, labels = validate_predictions(torch.as_tensor(store.log_probs(rows)).double(), labels)
    return float(cnll_ttcv(log_probs, labels, splits=splits))
