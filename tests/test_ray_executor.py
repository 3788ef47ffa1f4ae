"""The Ray executor (one local Ray instance for the module): identical stored predictions, and a worker
killed mid-task is retried by Ray or reported, with no finished run lost and a rerun completing the study."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from ensplit.errors import EnsplitError
from ensplit.experiments.study_config import StudyConfig, plan_pool_jobs
from ensplit.runs.executors import LocalExecutor
from ensplit.runs.jobs import JobResult, run_job
from ensplit.runs.plan import TrainJob
from ensplit.store import ResultStore
from studies import train_study

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

SMALL = {"widths": "8,16", "pool_min": 2, "pool_max": 3, "members_per_run": 2, "epochs": 2,
         "train_subset": 512, "test_subset": 256}


def stored_pools(store: ResultStore) -> dict[int, np.ndarray]:
    return {w: store.pool(w)[0] for w in (8, 16)}


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance for the whole module (start-up costs seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, np.ndarray]:
    store = train_study(StudyConfig.from_mapping(SMALL), tmp_path_factory.mktemp("local"), progress=False,
                      executor=LocalExecutor())
    return stored_pools(store)


def killing_task(marker: Path):
    """A task that SIGKILLs its own Ray worker once (on the first width-16 job), then behaves."""

    def task(job: TrainJob, device: str, progress: bool) -> JobResult:  # nested: Ray ships it by value
        if job.width == 16 and job.first_index == 0 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return run_job(job, device, progress)

    return task


def test_ray_stores_identical_predictions(reference, tmp_path):
    store = train_study(StudyConfig.from_mapping({**SMALL, "executor": "ray"}), tmp_path, progress=False)
    for width, pool in stored_pools(store).items():
        assert np.array_equal(pool, reference[width])


def test_killed_worker_is_retried_by_ray(reference, tmp_path):
    from ensplit.runs.ray_executor import RayExecutor

    executor = RayExecutor(max_retries=2, task=killing_task(tmp_path / "killed"))
    store = train_study(StudyConfig.from_mapping(SMALL), tmp_path / "study", progress=False, executor=executor)
    assert (tmp_path / "killed").exists()  # the worker really died once
    for width, pool in stored_pools(store).items():
        assert np.array_equal(pool, reference[width])


def test_killed_worker_without_retries_is_reported_and_a_rerun_completes(reference, tmp_path):
    from ensplit.runs.ray_executor import RayExecutor

    config = StudyConfig.from_mapping(SMALL)
    jobs = plan_pool_jobs(config)
    killed = next(j for j in jobs if j.width == 16 and j.first_index == 0)
    executor = RayExecutor(max_retries=0, task=killing_task(tmp_path / "killed"))
    with pytest.raises(EnsplitError, match="1 of 4 jobs failed on Ray") as caught:
        train_study(config, tmp_path / "study", progress=False, executor=executor)
    assert killed.job_id in str(caught.value)
    store = ResultStore(tmp_path / "study")
    assert store.finished_jobs() == {j.job_id for j in jobs} - {killed.job_id}  # no finished run lost
    train_study(config, tmp_path / "study", progress=False, executor=RayExecutor())  # the rerun completes it
    assert store.finished_jobs() == {j.job_id for j in jobs}
    for width, pool in stored_pools(store).items():
        assert np.array_equal(pool, reference[width])
