"""`recommend_evidence.gather`: the ladders read back from a store are keyed by exact parameter count, so two rungs
that trained the same network (a refinement at a size the ladder already holds) are replicates of one point."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ensplit.data.spec import load_data
from ensplit.experiments.recommend_evidence import gather
from ensplit.experiments.recommend_plan import RecommendConfig, ladder_job
from ensplit.metrics import cnll_ttcv
from ensplit.recipe import Recipe
from ensplit.runs.jobs import JobResult
from ensplit.store import ResultStore

CLASSES, EXAMPLES, MEMBERS = 10, 60, 4


def stored_rung(store: ResultStore, job, params: int, rng: np.random.Generator) -> np.ndarray:
    """Store `job` as if trained: one ensemble of MEMBERS members with random predictions of `params` params."""
    logits = torch.as_tensor(rng.normal(size=(MEMBERS, EXAMPLES, CLASSES)))
    log_probs = torch.log_softmax(logits, -1).float().numpy()
    store.save_job(job, JobResult(job.job_id, log_probs, None, [False] * MEMBERS, [0.1] * MEMBERS, 1.0, [1.0],
                                  params))
    return log_probs


def test_two_rungs_of_one_network_are_replicates_not_an_overwrite(tmp_path: Path) -> None:
    config = RecommendConfig(recipe=Recipe(threads=1), budget=23_050, methods=("batchensemble",))
    data = load_data(config.recipe.data)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, EXAMPLES)
    store = ResultStore(tmp_path)
    store.save_labels("test", labels)
    plan, expected = {}, {}
    for budget, params in ((512, 1000), (1024, 1000), (2048, 2000), (4096, 4000)):  # 512 and 1024: one network
        jobs = ladder_job(dataclasses.replace(config, seeds=1), data, "batchensemble", 4, budget)
        plan[("batchensemble", 4, budget)] = jobs
        log_probs = stored_rung(store, jobs[0], params, rng)
        value = float(cnll_ttcv(torch.as_tensor(log_probs).double(), torch.as_tensor(labels).long(),
                                splits=config.cnll_splits))
        expected.setdefault(params, []).append(value)
    ladder = gather(store, config, {}, plan).ladders[("batchensemble", 4)]
    assert sorted(ladder) == [1000, 2000, 4000]
    assert len(ladder[1000]) == 2  # both rungs, in plan order
    for params, values in expected.items():
        np.testing.assert_allclose(ladder[params], values, rtol=1e-12)
