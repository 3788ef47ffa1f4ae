"""A Ray executor: one Ray task per training job, results returned to the driver as they complete.

Only the driver writes the store. A worker that dies mid-task is retried by Ray (`max_retries`); a job
that still fails is reported after every other job has been yielded, so no finished run is lost and a
rerun of the study trains only what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from ensplit.errors import EnsplitError
from ensplit.runs.executors import JobTask
from ensplit.runs.jobs import JobResult, run_job
from ensplit.runs.plan import TrainJob
from ensplit.runs.process_executor import describe, failure_message, pin_one_thread

# Ray sets OMP_NUM_THREADS from a task's num_cpus, but only when it is unset; say it outright.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _train_remote(task: JobTask, job: TrainJob, device: str) -> JobResult:
    """The body of one Ray task: one torch thread, the GPU Ray assigned (it sets CUDA_VISIBLE_DEVICES), no
    progress bar."""
    pin_one_thread()
    if device.startswith("cuda"):
        device = "cuda"  # Ray renumbers the visible GPUs; the task's share is always device 0
    return task(job, device, False)


def connect(address: str | None = None, workers: int | None = None) -> None:
    """Join the cluster at `address` ("auto" finds a local `ray start --head`), or start a local instance
    with `workers` CPUs. Does nothing when Ray is already initialised in this process."""
    if ray.is_initialized():
        return
    runtime_env: dict[str, Any] = {"env_vars": dict(WORKER_ENV)}
    if address:
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        except (ConnectionError, ValueError) as error:  # no cluster there, or not an address
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise EnsplitError(f"address = {address!r}: cannot join a Ray cluster there ({first})") from None
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, runtime_env=runtime_env,
                 log_to_driver=False)


class RayExecutor:
    """Schedules one Ray task per job (`num_cpus=1`, plus `gpus_per_job` of a GPU when `device` is cuda).

    gpus_per_job: fraction of a GPU per task (default 0.25: four small jobs share a GPU; use 1.0 for
    CIFAR-scale networks). max_retries: how often Ray reruns a task whose worker died (application
    errors are not retried: they would fail again). `task(job, device, progress)` is the job function
    (`run_job`, or an experiment's own: a module-level function, which Ray workers import by name).
    """

    def __init__(self, address: str | None = None, device: str = "cpu", workers: int | None = None,
                 gpus_per_job: float | None = None, max_retries: int = 3, task: JobTask = run_job) -> None:
        self.address, self.device, self.workers = address, device, workers
        cuda = device.startswith("cuda")
        self.gpus_per_job = (0.25 if gpus_per_job is None else gpus_per_job) if cuda else 0.0
        if cuda and not 0 < self.gpus_per_job <= 1:
            raise EnsplitError(f"gpus_per_job must be in (0, 1], got {self.gpus_per_job}")
        self.max_retries = max_retries
        self.task = task

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobResult]]:
        if not jobs:
            return
        connect(self.address, self.workers)
        remote = ray.remote(_train_remote).options(
            num_cpus=1, num_gpus=self.gpus_per_job, max_retries=self.max_retries, retry_exceptions=False)
        task_ref = ray.put(self.task)
        pending: dict[ray.ObjectRef, TrainJob] = {remote.remote(task_ref, job, self.device): job for job in jobs}
        failures: list[str] = []
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        failures.append(f"{describe(job)}: {_short(error)}")
                        continue
                    yield job, result
        finally:  # the driver stopped early: do not leave orphaned training on the cluster
            for ref in pending:
                ray.cancel(ref, force=True)
        if failures:
            raise EnsplitError(failure_message(failures, len(jobs), "on Ray"))


def _short(error: BaseException) -> str:
    """The first line of a Ray error (their messages carry whole remote tracebacks)."""
    if isinstance(error, ray.exceptions.RayTaskError) and error.cause is not None:
        return f"{type(error.cause).__name__}: {str(error.cause).splitlines()[0] if str(error.cause) else ''}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
