"""Every executor runs the job function it is given (`make_executor(..., task=)`): the local one in this process
with the caller's progress flag, process-pool and Ray workers without progress bars, each on the given device."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from ensplit.experiments.compare_jobs import TaskExecutor
from ensplit.experiments.study_config import StudyConfig, plan_pool_jobs
from ensplit.runs.executors import Executor, LocalExecutor, make_executor
from ensplit.runs.jobs import JobResult, run_job
from ensplit.runs.plan import TrainJob

SMALL = {"widths": "8,16", "pool_min": 2, "pool_max": 3, "members_per_run": 2, "epochs": 1}


def tagged(job: TrainJob, device: str, progress: bool) -> JobResult:
    """A job function that trains nothing: its result says which job, device and progress flag it was given."""
    return JobResult(job.job_id, np.full((1, 1, 1), job.width, dtype=np.float32), None, [progress], [0.0], 0.0,
                     [1.0], len(device))


def _exit_quietly() -> None:
    pass


def tagged_with_a_child(job: TrainJob, device: str, progress: bool) -> JobResult:
    """`tagged`, after starting a process of its own (as designspace's CPU memory measurement does): a daemonic
    worker could not."""
    child = multiprocessing.get_context("fork").Process(target=_exit_quietly)
    child.start()
    child.join()
    assert child.exitcode == 0
    return tagged(job, device, progress)


def ran_tagged(executor: Executor, progress: bool, device: str = "cpu") -> None:
    """Run the four jobs of a small study plan and check each result came from `tagged` with these arguments."""
    jobs = plan_pool_jobs(StudyConfig.from_mapping(SMALL))
    results = {job.job_id: result for job, result in executor.run(jobs)}
    assert set(results) == {job.job_id for job in jobs} and len(jobs) == 4
    for job in jobs:
        result = results[job.job_id]
        assert result.test_log_probs[0, 0, 0] == job.width
        assert result.failed == [progress] and result.params_per_member == len(device)


def test_the_local_executor_runs_the_given_task_with_the_callers_progress_flag() -> None:
    ran_tagged(make_executor("local", "cpu", progress=True, task=tagged), progress=True)
    ran_tagged(make_executor("local", "meta", progress=False, task=tagged), progress=False, device="meta")
    assert make_executor("local").task is run_job  # the default: study's and recommend's jobs
    old = TaskExecutor(tagged, "cpu", progress=True)  # the name compare's helpers used, still importable
    assert isinstance(old, LocalExecutor)
    ran_tagged(old, progress=True)


@pytest.mark.slow  # two spawned workers import torch
def test_process_pool_workers_run_the_given_task_without_progress_bars() -> None:
    executor = make_executor("process", "cpu", workers=2, progress=True, task=tagged_with_a_child)
    assert executor.task is tagged_with_a_child
    ran_tagged(executor, progress=False)


@pytest.mark.slow  # a local Ray instance starts
@pytest.mark.ray
def test_ray_workers_run_the_given_task_without_progress_bars() -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ensplit[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_task = task_by_value()
        executor = make_executor("ray", "cpu", workers=2, progress=True, task=ray_task)
        assert executor.task is ray_task
        ran_tagged(executor, progress=False)
    finally:
        ray.shutdown()


def task_by_value():
    """`tagged` as a nested function: Ray workers cannot import this test module, so Ray ships it by value
    (an experiment's job function lives in ensplit, which they import)."""

    def task(job: TrainJob, device: str, progress: bool) -> JobResult:
        return JobResult(job.job_id, np.full((1, 1, 1), job.width, dtype=np.float32), None, [progress], [0.0], 0.0,
                         [1.0], len(device))

    return task
