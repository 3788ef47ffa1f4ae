"""Executors run training jobs and hand results back to the driver, which alone writes the store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from ensplit.errors import EnsplitError
from ensplit.runs.jobs import JobResult, run_job
from ensplit.runs.plan import TrainJob


class Executor(Protocol):
    def run(self, jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobResult]]:
        """Yield (job, result) as jobs finish, in any order."""
        ...


class LocalExecutor:
    """Runs jobs one after another in this process (members of a job are trained together)."""

    def __init__(self, device: str = "cpu", progress: bool = True) -> None:
        self.device, self.progress = device, progress

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobResult]]:
        for job in jobs:
            yield job, run_job(job, self.device, self.progress)


def check_address(executor: str, address: str | None) -> None:
    """A Ray address only means something to the Ray executor: given with another, it is a mistake."""
    if address is not None and executor != "ray":
        raise EnsplitError(f"address = {address!r}: applies to executor ray only, not {executor} (add --executor ray)")


def make_executor(name: str, device: str = "cpu", workers: int = 2, address: str | None = None,
                  progress: bool = True, gpus_per_job: float | None = None) -> Executor:
    """`local`, `process` (a process pool, one thread per worker) or `ray` (each job a task with one CPU and,
    on a GPU, `gpus_per_job` of it)."""
    if name == "local":
        return LocalExecutor(device, progress)
    if name == "process":
        try:
            from ensplit.runs.process_executor import ProcessPoolJobExecutor
        except ImportError as error:
            raise EnsplitError(f"the process executor is unavailable: {error}") from None
        return ProcessPoolJobExecutor(workers=workers, device=device)
    if name == "ray":
        try:
            from ensplit.runs.ray_executor import RayExecutor
        except ImportError as error:
            raise EnsplitError(f"the ray executor needs the extra: pip install 'ensplit[ray]' ({error})") from None
        return RayExecutor(address=address, device=device, workers=workers, gpus_per_job=gpus_per_job)
    raise EnsplitError(f"unknown executor {name!r}: choose local, process or ray")
