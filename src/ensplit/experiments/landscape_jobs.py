"""One `landscape` job, run by an executor like any `TrainJob`: train one init's trajectory, predict the test set
with its solution, and hand both back; the driver stores the trajectory beside the job's predictions.

In the run folder, init k's trajectory is `trajectories/<job id>.safetensors` (tensor `"{t}/{name}"` is
parameter or buffer `name` of the t-th checkpoint; nothing is pickled) with `trajectories/<job id>.json`
(its checkpoints' epochs and phases and the file's SHA-256). Both are written atomically before the job is
stored, so a stored job always has its trajectory; one that is missing, damaged or not the job's is refused
by name when read, and `verify_trajectories` makes its job unfinished again, so it is trained again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.experiments.landscape_plan import job_schedule
from ensplit.files import atomic_write, atomic_write_text
from ensplit.models import with_dropout
from ensplit.runs.executors import Executor
from ensplit.runs.folder import RunFolder, note
from ensplit.runs.jobs import JobResult, load_job_data
from ensplit.runs.plan import TrainJob
from ensplit.store.trajectories import State, Trajectories
from ensplit.train.device import resolve_device
from ensplit.train.evaluation import evaluate_states
from ensplit.train.trajectories import TimedTrajectories, train_trajectories, trajectory_template

TRAJECTORIES = "trajectories"  # the run folder's sub-folder of trajectory files
FORMAT = 1


@dataclass
class TrajectoryResult(JobResult):
    """A landscape job's result: the solution's test predictions `[1, N, C]` (what the store keeps), and the
    init's trajectory (one init), which the driver writes into the run folder before it stores the job."""

    trajectory: Trajectories | None = None


def job_trajectory(job: TrainJob, dataset: Dataset, epochs: list[int], phases: list[str],
                   states: list[State]) -> Trajectories:
    """The one-init `Trajectories` of a job's checkpoints, described as `train_trajectories` describes them."""
    every, tail_epochs, tail_lr = job_schedule(job)
    config = job.train_config()
    record = {**dataclasses.asdict(config), "every": every, "tail_epochs": tail_epochs, "tail_lr": tail_lr,
              "dataset": dataset.name}
    return Trajectories(family=job.family, width=job.width, depth=job.depth, in_shape=tuple(dataset.in_shape),
                        num_classes=dataset.num_classes, options=with_dropout(job.family, dict(job.family_options),
                                                                              config.dropout),
                        seeds=list(job.seeds), epochs=list(epochs), phases=list(phases), states=[list(states)],
                        config=record)


def trajectory_result(job: TrainJob, trajectory: Trajectories, dataset: Dataset, seconds: float | None = None,
                      trained: TimedTrajectories | None = None) -> TrajectoryResult:
    """What the store keeps of a trajectory: the solution's test predictions, and, for one trained now
    (`trained`, in `seconds`), each training epoch's seconds and the solution's final training loss; an earlier
    run's checkpoints have neither (no epochs, NaN loss)."""
    template = trajectory_template(trajectory)
    log_probs = evaluate_states(template, trajectory.solutions(), dataset.x_test, dataset).float().cpu()
    _, tail_epochs, _ = job_schedule(job)
    planned = job.train_config().epochs + tail_epochs
    stopped = max(trajectory.epochs) < planned  # every member diverged: the loop stopped early
    failed = [stopped or not bool(torch.isfinite(log_probs).all())]
    per_epoch = [] if trained is None else list(trained.seconds_per_epoch)
    loss = [math.nan] if trained is None else [v if math.isfinite(v) else math.nan for v in trained.train_loss]
    params = sum(p.numel() for p in template.parameters())
    return TrajectoryResult(job.job_id, log_probs.numpy(), None, failed, loss, seconds or 0.0, per_epoch, params,
                            trajectory)


def run_landscape_job(job: TrainJob, device: str = "cpu", progress: bool = False) -> TrajectoryResult:
    """Train the job's init (`ensplit.train.trajectories`, one member) on its schedule; see the module docstring."""
    data = load_job_data(job.data, resolve_device(device))
    every, tail_epochs, tail_lr = job_schedule(job)
    config = job.train_config()
    options = with_dropout(job.family, dict(job.family_options), config.dropout)
    start = time.perf_counter()
    trained = train_trajectories(data, job.family, job.width, job.seeds, config, depth=job.depth, every=every,
                                 tail_epochs=tail_epochs, tail_lr=tail_lr, progress=progress, **options)
    seconds = time.perf_counter() - start
    trajectory = job_trajectory(job, data, trained.epochs, trained.phases, trained.states[0])
    return trajectory_result(job, trajectory, data, seconds, trained)


def _paths(directory: Path, job_id: str) -> tuple[Path, Path]:
    folder = Path(directory) / TRAJECTORIES
    return folder / f"{job_id}.safetensors", folder / f"{job_id}.json"


def save_job_trajectory(directory: Path, job_id: str, trajectory: Trajectories) -> None:
    """Write a one-init trajectory as the job's files (see the module docstring), each atomically, the weights
    first: a run killed in between leaves no record naming a missing or half-written file."""
    weights, record = _paths(directory, job_id)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{t}/{name}": tensor.contiguous() for t, state in enumerate(trajectory.states[0])
               for name, tensor in state.items()}
    content = save(tensors, metadata={"job_id": job_id, "format": str(FORMAT)})
    atomic_write(weights, lambda f: f.write(content))
    manifest = {"format": FORMAT, "job_id": job_id, "epochs": trajectory.epochs, "phases": trajectory.phases,
                "sha256": hashlib.sha256(content).hexdigest()}
    atomic_write_text(record, json.dumps(manifest))


def _read_record(record: Path, job_id: str) -> dict[str, Any]:
    """The job's trajectory record, checked field by field (a damaged one is named, never half-used)."""
    try:
        manifest = json.loads(record.read_text(encoding="utf-8"))
        epochs, phases, checksum = manifest["epochs"], manifest["phases"], manifest["sha256"]
        valid = (manifest["job_id"] == job_id and isinstance(checksum, str) and isinstance(epochs, list)
                 and isinstance(phases, list) and len(epochs) == len(phases) > 0 and "train" in phases
                 and all(isinstance(e, int) for e in epochs) and set(phases) <= {"train", "tail"})
    except FileNotFoundError:
        raise EnsplitError(f"trajectory record {record} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise EnsplitError(f"trajectory record {record} is damaged or unreadable ({error})") from None
    if not valid:
        raise EnsplitError(f"trajectory record {record} is damaged: not the record of job {job_id}")
    return manifest


def load_job_trajectory(directory: Path, job: TrainJob, dataset: Dataset) -> Trajectories:
    """A stored job's one-init trajectory, checked against its record's SHA-256; a missing, damaged or foreign
    file is a one-line error naming it."""
    weights, record = _paths(directory, job.job_id)
    manifest = _read_record(record, job.job_id)
    try:
        content = weights.read_bytes()
    except OSError as error:
        raise EnsplitError(f"trajectory {weights} is missing or unreadable ({error.strerror})") from None
    if hashlib.sha256(content).hexdigest() != manifest["sha256"]:
        raise EnsplitError(f"trajectory {weights} is damaged: its SHA-256 differs from the one in {record}")
    try:
        tensors = load(content)
    except SafetensorError as error:
        raise EnsplitError(f"trajectory {weights} is damaged: not a readable safetensors file ({error})") from None
    states: list[State] = [{} for _ in manifest["epochs"]]
    for key, tensor in tensors.items():
        index, _, name = key.partition("/")
        states[int(index)][name] = tensor
    return job_trajectory(job, dataset, manifest["epochs"], manifest["phases"], states)


def verify_trajectories(folder: RunFolder, directory: Path, jobs: Sequence[TrainJob], dataset: Dataset) -> None:
    """Make every stored job among `jobs` whose trajectory is missing or damaged unfinished again (one line
    each on stderr), so that it is trained again rather than analysed."""
    finished = folder.store.finished_jobs()
    for job in jobs:
        if job.job_id not in finished:
            continue
        try:
            load_job_trajectory(directory, job, dataset)
        except EnsplitError as error:
            note(f"{error}; init {job.first_index} (seed {job.seeds[0]}) will be trained again")
            folder.store.forget_job(job.job_id)


class TrajectoryWriter:
    """An executor around another: writes each job's trajectory into the run folder as its result arrives,
    before `ensplit.runs.folder.execute` stores the job (the driver alone writes the folder)."""

    def __init__(self, executor: Executor, directory: Path) -> None:
        self.executor, self.directory = executor, Path(directory)

    def run(self, jobs: Sequence[TrainJob]) -> Iterator[tuple[TrainJob, JobResult]]:
        for job, result in self.executor.run(jobs):
            trajectory = getattr(result, "trajectory", None)
            if trajectory is None:
                raise EnsplitError(f"landscape job {job.job_id} came back without its trajectory")
            save_job_trajectory(self.directory, job.job_id, trajectory)
            yield job, result
