"""Executors run training jobs and hand results back to the driver, which alone writes the store.

Every executor runs one job function, `task(job, device, progress) -> JobResult` (default `run_job`); an
experiment whose jobs need more than `run_job` does (compare predicts corrupted test sets, designspace times
and measures) passes its own. Process and Ray workers import it by name, so it must be a module-level function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from ensplit.errors import EnsplitError
from ensplit.runs.jobs import JobResult, run_job
from ensplit.runs.plan import TrainJob
from ensplit.settings.options import Address, ExecutorName, GpusPerJob, Workers, check_address

JobTask = Callable[[TrainJob, str, bool], JobResult]  # (job, device, progress) -> result

# The runner settings of every experiment that trains are declared once, in `ensplit.settings.options` (and
# bundled as `ensplit.settings.RunnerFields`); re-exported here for the code that imports them from the runs.
__all__ = ["Address", "Executor", "ExecutorName", "GpusPerJob", "JobTask", "LocalExecutor", "Workers",
           "check_address", "make_executor"]


class Executor(Protocol):
    def run(self, jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobResult]]:
        """Yield (job, result) as jobs finish, in any order."""
        ...


class LocalExecutor:
    """Runs jobs one after another in this process (members of a job are trained together)."""

    def __init__(self, device: str = "cpu", progress: bool = True, task: JobTask = run_job) -> None:
        self.device, self.progress, self.task = device, progress, task

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobResult]]:
        for job in jobs:
            yield job, self.task(job, self.device, self.progress)


def make_executor(name: str, device: str = "cpu", workers: int = 2, address: str | None = None,
                  progress: bool = True, gpus_per_job: float | None = None, task: JobTask = run_job) -> Executor:
    """`local`, `process` (a process pool, one thread per worker) or `ray` (each job a task with one CPU and,
    on a GPU, `gpus_per_job` of it), each running `task` (module-level; workers run it without progress bars)."""
    if name == "local":
        return LocalExecutor(device, progress, task)
    if name == "process":
        try:
            from ensplit.runs.process_executor import ProcessPoolJobExecutor
        except ImportError as error:
            raise EnsplitError(f"the process executor is unavailable: {error}") from None
        return ProcessPoolJobExecutor(workers=workers, device=device, task=task)
    if name == "ray":
        try:
            from ensplit.runs.ray_executor import RayExecutor
        except ImportError as error:
            raise EnsplitError(f"the ray executor needs the extra: pip install 'ensplit[ray]' ({error})") from None
        return RayExecutor(address=address, device=device, workers=workers, gpus_per_job=gpus_per_job, task=task)
    raise EnsplitError(f"unknown executor {name!r}: choose local, process or ray")
