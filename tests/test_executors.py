"""Executors: the process pool stores exactly what the in-process executor stores, and a crashed worker
is reported while every finished job stays stored (a rerun completes the study)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ensplit.errors import EnsplitError
from ensplit.experiments.study_config import StudyConfig, plan_pool_jobs
from ensplit.runs.executors import LocalExecutor, make_executor
from ensplit.runs.jobs import JobResult, run_job
from ensplit.runs.plan import TrainJob
from ensplit.runs.process_executor import ProcessPoolJobExecutor
from ensplit.store import ResultStore
from studies import train_study

# 2 widths, pools of 3 packed as 2 + 1 networks: four jobs of different sizes
SMALL = {"widths": "8,16", "pool_min": 2, "pool_max": 3, "members_per_run": 2, "epochs": 2,
         "train_subset": 512, "test_subset": 256}


def small_config(**changes):
    return StudyConfig.from_mapping({**SMALL, **changes})


def stored_pools(store, widths=(8, 16)) -> dict[int, np.ndarray]:
    return {w: store.pool(w)[0] for w in widths}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, np.ndarray]:
    store = train_study(small_config(), tmp_path_factory.mktemp("local"), progress=False, executor=LocalExecutor())
    pools = stored_pools(store)
    assert all(p.shape == (3, 256, 10) for p in pools.values())
    return pools


def crash_on_first_job(job: TrainJob, device: str, progress: bool = False) -> JobResult:
    """A task whose worker process dies (no exception, no cleanup) on the first width-8 job."""
    if job.width == 8 and job.first_index == 0:
        os._exit(3)
    return run_job(job, device, progress)


def test_process_pool_stores_identical_predictions(reference, tmp_path):
    store = train_study(small_config(executor="process", workers=2), tmp_path, progress=False)
    for width, pool in stored_pools(store).items():
        assert np.array_equal(pool, reference[width])  # bit for bit: same seeds, one thread everywhere


def test_crashed_worker_is_reported_and_a_rerun_completes(reference, tmp_path):
    config = small_config()
    jobs = plan_pool_jobs(config)
    crashed = jobs[0]
    with pytest.raises(EnsplitError, match="1 of 4 jobs failed") as caught:
        train_study(config, tmp_path, progress=False, executor=ProcessPoolJobExecutor(2, task=crash_on_first_job))
    assert f"{crashed.job_id} (width 8, 2 networks): its worker process died (exit code 3)" in str(caught.value)
    store = ResultStore(tmp_path)
    # a fresh worker replaced the dead one: every other job finished and was stored
    assert store.finished_jobs() == {j.job_id for j in jobs[1:]}
    train_study(config, tmp_path, progress=False, executor=LocalExecutor())  # the rerun trains only that job
    assert store.finished_jobs() == {j.job_id for j in jobs}
    for width, pool in stored_pools(store).items():
        assert np.array_equal(pool, reference[width])


def test_make_executor_names():
    assert isinstance(make_executor("process", workers=3), ProcessPoolJobExecutor)
    with pytest.raises(EnsplitError, match="workers must be >= 1"):
        ProcessPoolJobExecutor(0)
    with pytest.raises(EnsplitError, match="unknown executor"):
        make_executor("dask")


def test_gpus_per_job_reaches_the_ray_executor_and_is_checked():
    pytest.importorskip("ray")
    from ensplit.experiments.study_config import StudyConfig

    config = StudyConfig.from_mapping({"executor": "ray", "device": "cuda", "gpus_per_job": "0.5"})
    executor = make_executor(config.executor, config.recipe.device, config.workers, config.address, False,
                             config.gpus_per_job)
    assert executor.gpus_per_job == 0.5  # built without connecting to Ray
    assert make_executor("ray", device="cpu", gpus_per_job=0.5).gpus_per_job == 0.0  # CPU tasks ask for no GPU
    assert "gpus_per_job" not in config.identity()  # a folder may be rerun with another share
    with pytest.raises(EnsplitError, match="gpus_per_job = 0: must be > 0"):
        StudyConfig.from_mapping({"gpus_per_job": 0})
