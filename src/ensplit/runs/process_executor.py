"""A local process pool: `workers` spawned processes, one torch thread each, results yielded as they finish.

For machines without Ray. Spawn (not fork) keeps CUDA and torch's thread pools sane in the children. One
thread per worker matters: on a 2-core machine, two workers with two threads each measured 100× slower.
Workers are not daemons, so a job may start processes of its own (designspace measures CPU memory in a fresh
one); the driver stops every worker it started, and a worker whose driver is gone exits at its next read.
Each worker holds one job at a time, so when a worker dies the driver knows which job it was running:
that job is reported, a fresh worker takes the next one, and no other job is lost (unlike
`concurrent.futures.ProcessPoolExecutor`, where one dead worker breaks every job in flight).
"""

from __future__ import annotations

import os
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from ensplit.errors import EnsplitError
from ensplit.runs.executors import JobTask
from ensplit.runs.jobs import JobResult, run_job
from ensplit.runs.plan import TrainJob


def pin_one_thread() -> None:
    """Give this worker process one intra-op and one inter-op torch thread."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass


def describe(job: TrainJob) -> str:
    n = len(job.seeds)
    return f"{job.kind} job {job.job_id} (width {job.width}, {n} network{'' if n == 1 else 's'})"


def failure_message(failures: list[str], total: int, where: str) -> str:
    shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
    return (f"{len(failures)} of {total} jobs failed {where}; finished jobs are stored and a rerun trains "
            f"the rest: {shown}")


def _worker_main(conn: Connection, task: JobTask, device: str) -> None:
    """Receive jobs until None (or until the driver's end closes); send back ("ok", result) or ("error", one
    line). No progress bars: the driver shows one for all jobs."""
    pin_one_thread()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if job is None:
            return
        try:
            conn.send(("ok", task(job, device, False)))
        except Exception as error:  # noqa: BLE001 - reported to the driver, which decides
            where = traceback.extract_tb(error.__traceback__)[-1]
            conn.send(("error", f"{type(error).__name__}: {error} (at {where.filename}:{where.lineno})"))


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    job: TrainJob | None = None


class ProcessPoolJobExecutor:
    """Runs jobs in `workers` spawned processes and yields `(job, result)` in completion order.

    A job that raises, or whose worker dies, does not stop the others: every job that finishes is
    yielded (so the driver stores it), then one `EnsplitError` names the jobs that did not.
    `task(job, device, progress)` is the job function (`run_job`, or an experiment's own; tests inject crashes
    with it); it must be picklable: a module-level function.
    """

    def __init__(self, workers: int = 2, device: str = "cpu", task: JobTask = run_job) -> None:
        if workers < 1:
            raise EnsplitError(f"workers must be >= 1, got {workers}")
        self.workers, self.device, self.task = workers, device, task
        self._context = get_context("spawn")

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self.task, self.device), daemon=False,
                                        name="ensplit-worker")
        process.start()
        child.close()
        return _Worker(process, parent)

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobResult]]:
        queue = deque(jobs)
        failures: list[str] = []
        workers = [self._start() for _ in range(min(self.workers, len(queue)))]
        try:
            for worker in workers:
                worker.job = queue.popleft()
                worker.conn.send(worker.job)
            while busy := [w for w in workers if w.job is not None]:
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
                for index, worker in enumerate(workers):
                    job = worker.job
                    if job is None or not (worker.conn in ready or worker.process.sentinel in ready):
                        continue
                    try:
                        status, payload = worker.conn.recv()
                    except (EOFError, OSError):  # died mid-job: report it and replace the worker
                        worker.process.join(timeout=5)
                        failures.append(f"{describe(job)}: its worker process died "
                                        f"(exit code {worker.process.exitcode})")
                        worker.conn.close()
                        worker = workers[index] = self._start() if queue else _Worker(worker.process, worker.conn)
                        status, payload = "died", None
                    worker.job = None
                    if status == "ok":
                        yield job, payload
                    elif status == "error":
                        failures.append(f"{describe(job)}: {payload}")
                    if queue and worker.conn.closed is False:
                        worker.job = queue.popleft()
                        worker.conn.send(worker.job)
        finally:  # normal end, an error or a closed generator: stop every worker we started
            for worker in workers:
                if worker.job is not None:
                    worker.process.kill()
                elif worker.process.is_alive() and not worker.conn.closed:
                    try:
                        worker.conn.send(None)
                    except OSError:
                        worker.process.kill()
            for worker in workers:
                worker.process.join(timeout=10)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
                worker.conn.close()
        if failures:
            raise EnsplitError(failure_message(failures, len(jobs), "in the process pool"))
