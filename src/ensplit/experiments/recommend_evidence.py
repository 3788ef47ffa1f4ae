"""From stored cheap runs to a prediction for every candidate (the middle of `ensplit recommend`).

- Deep pools: per member size, the CNLL_n power law from the pool (seed 000 §7, bootstrap over networks)
  gives the (n, s) plane; a memory split n × s is read from it (`plane_prediction`).
- The single network: each pool network's own CNLL against its size, a ladder extrapolated to P.
- Each sharing method: the CNLL of every seed's ensemble against its exact parameter count, a ladder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ensplit.analysis.extrapolation import Prediction, SizeLaw, ladder_prediction, plane_prediction
from ensplit.analysis.prediction import predict_size
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig
from ensplit.metrics import cnll_ttcv, cnll_ttcv_indexed, validate_predictions
from ensplit.store import ResultStore


@dataclass
class Evidence:
    """What the predictions rest on: per-network CNLL of the pools `{params: [..]}`, the per-size laws, and
    each sharing family's ladder `{(method, members): {params: [CNLL per seed]}}`."""

    singles: dict[int, list[float]] = field(default_factory=dict)
    laws: list[SizeLaw] = field(default_factory=list)
    ladders: dict[tuple[str, int], dict[int, list[float]]] = field(default_factory=dict)


def network_cnll(log_probs: torch.Tensor, labels: torch.Tensor, splits: int) -> list[float]:
    """Each network's own CNLL (temperature fitted by test-time cross-validation)."""
    index = torch.arange(log_probs.shape[0]).view(-1, 1)
    return [float(v) for v in cnll_ttcv_indexed(log_probs, labels, [index], "before", splits)[0][0]]


def gather(store: ResultStore, config: RecommendConfig, widths: dict[int, int],
           ladder_jobs: dict[tuple[str, int, int], list]) -> Evidence:
    """Read every finished cheap run of the plan from the store."""
    labels = torch.as_tensor(store.labels()).long()
    evidence = Evidence()
    for width in widths.values():
        rows = store.networks("pool", width, status="ok")[: config.pool]
        if len(rows) < 3:
            continue
        log_probs, labels = validate_predictions(torch.as_tensor(store.log_probs(rows)).double(), labels)
        params = int(rows[0]["params"])
        own = network_cnll(log_probs, labels, config.cnll_splits)
        evidence.singles[params] = own
        fit_n = min(4, len(rows))
        size = predict_size(log_probs, labels, params, max_n=config.members_max, small_pool=len(rows),
                            fit_max_n=fit_n, repeats=config.bootstrap, splits=config.cnll_splits)
        evidence.laws.append(SizeLaw(params, size.fit, tuple(size.fits), float(np.std(own, ddof=1)), len(own)))
    by_job: dict[str, list[dict]] = {}
    for row in store.networks("ladder"):
        by_job.setdefault(row["job_id"], []).append(row)
    for (method, members, _), jobs in ladder_jobs.items():
        values = []
        params = None
        for job in jobs:
            rows = sorted(by_job.get(job.job_id, []), key=lambda r: r["member"])
            if not rows or any(r["status"] != "ok" for r in rows):
                continue  # not trained, or diverged: left out of the ladder
            params = int(rows[0]["params"])
            log_probs, labels_ok = validate_predictions(torch.as_tensor(store.log_probs(rows)).double(), labels)
            values.append(float(cnll_ttcv(log_probs, labels_ok, splits=config.cnll_splits)))
        if values and params is not None:
            evidence.ladders.setdefault((method, members), {})[params] = values
    return evidence


def predict(candidate: Candidate, evidence: Evidence, config: RecommendConfig) -> Prediction | None:
    """The candidate's predicted CNLL at its own parameter count (None when the evidence is too thin)."""
    try:
        if candidate.method == "single":
            return ladder_prediction(evidence.singles, candidate.params, config.bootstrap, config.recipe.seed)
        if candidate.method == "deep":
            return plane_prediction(evidence.laws, candidate.members, candidate.params // candidate.members)
        ladder = evidence.ladders.get((candidate.method, candidate.members), {})
        return ladder_prediction(ladder, candidate.params, config.bootstrap, config.recipe.seed)
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
