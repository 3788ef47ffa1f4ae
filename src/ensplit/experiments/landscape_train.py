"""`landscape`'s training, through `ensplit.runs`: one planned job per init (`landscape_plan`), run by an
executor (`landscape_jobs`; local, process pool or Ray, as compare's jobs are) and stored in a resumable run
folder with its trajectory beside its predictions. A killed landscape rerun with the same command trains only
the inits the folder lacks; a finished one trains nothing; another recipe is refused with the fields that differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.experiments import landscape_jobs
from ensplit.experiments.landscape_config import LandscapeConfig
from ensplit.experiments.landscape_jobs import (
    TRAJECTORIES,
    TrajectoryWriter,
    load_job_trajectory,
    save_job_trajectory,
    verify_trajectories,
)
from ensplit.experiments.landscape_legacy import legacy_results
from ensplit.experiments.landscape_plan import KIND, check_landscape_fits, plan_landscape
from ensplit.runs.executors import make_executor
from ensplit.runs.folder import RunFolder, execute, open_folder, stored_job
from ensplit.runs.jobs import JobResult
from ensplit.runs.plan import TrainJob
from ensplit.store.trajectories import Trajectories
from ensplit.train.epoch_time import seconds_per_epoch


@dataclass
class TrainedTrajectories:
    """Every init's trajectory, how many jobs this run trained (0 for a finished folder), and the mean seconds
    of a training epoch of one init over the inits that were timed (None when none was)."""

    trajectories: Trajectories
    trained_jobs: int
    seconds_per_epoch: float | None


def _task(job: TrainJob, device: str, progress: bool) -> JobResult:
    """The job function of landscape's executor: module-level, so process and Ray workers import it by name."""
    return landscape_jobs.run_landscape_job(job, device, progress)  # looked up when called: a test may spy on it


def combine(per_init: Sequence[Trajectories]) -> Trajectories:
    """The inits' one-init trajectories as one `Trajectories` (init k = job k); refused when an init stopped
    early (every member diverged), since checkpoints are compared epoch by epoch across inits."""
    first = max(per_init, key=lambda t: len(t.epochs))
    for trajectory in per_init:
        if (trajectory.epochs, trajectory.phases) != (first.epochs, first.phases):
            raise EnsplitError(f"the init of seed {trajectory.seeds[0]} diverged: its training stopped at epoch "
                               f"{max(trajectory.epochs)} of {max(first.epochs)}; lower --lr (or --tail-lr)")
    return Trajectories(family=first.family, width=first.width, depth=first.depth, in_shape=first.in_shape,
                        num_classes=first.num_classes, options=first.options,
                        seeds=[t.seeds[0] for t in per_init], epochs=first.epochs, phases=first.phases,
                        states=[t.states[0] for t in per_init], config=first.config)


def _seconds_per_epoch(folder: RunFolder, jobs: Sequence[TrainJob]) -> float | None:
    """The mean over the inits of each one's seconds per epoch (`ensplit.train.epoch_time`) from its stored
    epoch times; inits taken from an older folder's checkpoints have none (None when no init has any)."""
    stored = [json.loads(stored_job(folder, job.job_id)["seconds_per_epoch"]) for job in jobs]
    figures = [seconds_per_epoch(epochs) for epochs in stored if epochs]
    return sum(figures) / len(figures) if figures else None


def _reuse_old_checkpoints(folder: RunFolder, out: Path, config: LandscapeConfig, jobs: Sequence[TrainJob],
                           dataset: Dataset, log: Callable[[str], None]) -> None:
    """Store the unfinished jobs that an old landscape folder's checkpoints hold (`landscape_legacy`)."""
    finished = folder.store.finished_jobs()
    pending = [job for job in jobs if job.job_id not in finished]
    found = legacy_results(out, config.recipe, pending, dataset) if pending else {}
    for job in pending:
        if job.job_id in found:
            save_job_trajectory(out, job.job_id, found[job.job_id].trajectory)
            folder.save(job, found[job.job_id])
    if found:
        log(f"took {len(found)} init(s) from the checkpoints an earlier ensplit saved in {out / 'checkpoints'}")


def train_landscape(config: LandscapeConfig, out: Path, dataset: Dataset, progress: bool,
                    log: Callable[[str], None]) -> TrainedTrajectories:
    """Train what `out` lacks and read every init's trajectory back (the caller holds `out`'s lock). Everything
    is planned and checked before the run folder is opened, so a refused run leaves nothing behind."""
    check_landscape_fits(config, dataset)
    jobs = plan_landscape(config)
    folder = open_folder(config, out, KIND, data=dataset)
    try:
        for stale in (out / TRAJECTORIES).glob(".*.tmp"):  # a killed run's half-written trajectory
            stale.unlink(missing_ok=True)
        verify_trajectories(folder, out, jobs, dataset)
        _reuse_old_checkpoints(folder, out, config, jobs, dataset, log)
        pending = len({job.job_id for job in jobs} - folder.store.finished_jobs())
        if pending:
            r = config.recipe
            log(f"training {pending} of {config.inits} inits of {r.family} width {config.width} for "
                f"{r.train.epochs}+{config.tail_epochs} epochs")
        runner = make_executor(config.executor, str(dataset.x_train.device), config.workers, config.address,
                               progress, config.gpus_per_job, task=_task)
        executor = TrajectoryWriter(runner, out)
        trained = execute(jobs, folder, executor, progress, "inits")
        per_init = [load_job_trajectory(out, job, dataset) for job in jobs]
        seconds = _seconds_per_epoch(folder, jobs)
        folder.store.checkpoint()
    finally:
        folder.store.close()
    return TrainedTrajectories(combine(per_init), trained, seconds)
