"""What `ensplit recommend` cost, in training FLOPs counted from the models, against the brute force it replaces.

A job's training FLOPs = (forward + backward FLOPs of one training step, per data-set example the step draws)
× epochs × training examples × networks: one network per seed for a deep job (its networks are member-batched,
which changes the kernels, not the work), one ensemble per seed for a sharing method. The brute force is one
seed of every listed candidate trained at the budget with the same recipe (`verify_job`); with `--tune`, in
every cell of the grid (`grid_cells`: a brute force that tunes on the same grid, before any extension). The
prediction's
cost is every job the answer rests on, from scratch (trained now or found in the folder); the verification
runs are counted apart, since they check the answer rather than produce it.

FLOPs say what the design saves; the clock says whether it paid on this machine. At small sizes a training
step costs mostly per-step overhead, so cheap runs are not much faster than runs at the budget (on a 2-core
CPU at 23,050 parameters, 0.96 against 1.32 ms). The cost therefore also weighs the cheap runs' recorded
training time (each job's steady seconds per epoch, `ensplit.train.epoch_time`, times its epochs) against the
brute force's, estimated from every candidate's measured seconds per epoch at the budget.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ensplit.data.dataset import Dataset
from ensplit.ensembles.cost import training_flops_per_example
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig, verify_job
from ensplit.runs.jobs import build_job_model
from ensplit.runs.plan import TrainJob
from ensplit.store import ResultStore
from ensplit.train.epoch_time import seconds_per_epoch
from ensplit.train.loop import epoch_indices, member_generators

_PER_EXAMPLE: dict[str, int] = {}  # training FLOPs per example of one network/ensemble, by model shape


@dataclass
class Cost:
    """training_flops: the cheap runs (and tuning) the answer rests on; brute_force_flops: one seed of every
    listed candidate at the budget, in each of `brute_force_cells` grid cells; verification_flops: the
    verification runs; seconds and jobs: this call's wall time and trained jobs (fewer than planned when the
    folder held some)."""

    training_flops: int
    brute_force_flops: int
    seconds: float
    jobs: int
    verification_flops: int = 0
    brute_force_cells: int = 1  # lr × weight-decay cells the brute force trains each candidate in (--tune)
    training_seconds: float = 0.0  # the cheap runs' recorded training time (steady s per epoch × epochs)
    brute_force_seconds: float = 0.0  # the brute force's, from the candidates' measured s per epoch

    @property
    def ratio(self) -> float:
        """The prediction's training FLOPs as a fraction of the brute force's."""
        return self.training_flops / self.brute_force_flops if self.brute_force_flops else float("nan")

    @property
    def time_ratio(self) -> float:
        """The cheap runs' training time as a fraction of the brute force's (estimated) on this machine."""
        return self.training_seconds / self.brute_force_seconds if self.brute_force_seconds else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"training_flops": self.training_flops, "brute_force_flops": self.brute_force_flops,
                "ratio": round(self.ratio, 4), "seconds": round(self.seconds, 1), "jobs": self.jobs,
                "verification_flops": self.verification_flops, "brute_force_cells": self.brute_force_cells,
                "training_seconds": round(self.training_seconds, 3),
                "brute_force_seconds": round(self.brute_force_seconds, 3),
                "time_ratio": None if not self.brute_force_seconds else round(self.time_ratio, 4)}


def _network(job: TrainJob, data: Dataset) -> tuple[torch.nn.Module, int, str]:
    """What one seed of `job` trains, built on the CPU as `ensplit.runs.jobs` builds it: one network (deep) or
    one ensemble of the method; with its members and batching."""
    model = build_job_model(job, data, [job.seeds[0] if job.seeds else 0])
    if job.method == "deep":
        return model, 1, job.train_config().batching
    return model, model.members, model.batching


def _first_step(model: torch.nn.Module, members: int, batching: str, data: Dataset,
                batch_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The first training step's input and labels as `ensplit.train.train` builds them from the model's own
    sampler, and the distinct data-set examples it draws (each epoch draws every example once per order)."""
    n = min(batch_size, data.x_train.shape[0])
    sampler = getattr(model, "index_sampler", None) or (lambda n_, b_, g_: epoch_indices(n_, b_, g_, batching))
    idx = sampler(n, batch_size, member_generators(range(members)))[0].cpu()
    xb = data.prepare(data.x_train.cpu()[idx]).float()
    yb = data.y_train.cpu()[idx]
    if idx.shape[0] == 1:
        xb, yb = xb[0], yb[0].expand(members, -1)
    return xb, yb, int(idx.unique().numel())


def per_example_training_flops(job: TrainJob, data: Dataset) -> int:
    """Forward + backward FLOPs per training example of one seed's network or ensemble, cached by shape."""
    config = job.train_config()
    key = json.dumps([job.method, job.family, job.width, job.depth, job.family_options, job.members,
                      job.method_options, config.batch_size, config.batching, list(data.in_shape), data.num_classes,
                      min(config.batch_size, data.x_train.shape[0])], default=repr)
    if key not in _PER_EXAMPLE:
        model, members, batching = _network(job, data)
        xb, yb, examples = _first_step(model, members, batching, data, config.batch_size)
        _PER_EXAMPLE[key] = training_flops_per_example(model, xb, yb, examples)
    return _PER_EXAMPLE[key]


def job_training_flops(job: TrainJob, data: Dataset) -> int:
    """Training FLOPs of the whole job: per example × epochs × training examples × seeds."""
    return (per_example_training_flops(job, data) * job.train_config().epochs * data.x_train.shape[0]
            * len(job.seeds))


def training_flops(jobs: Sequence[TrainJob], data: Dataset) -> int:
    """Training FLOPs of `jobs`, each counted once (by id: a job planned twice trains once)."""
    return sum(job_training_flops(job, data) for job in {job.job_id: job for job in jobs}.values())


def brute_force_flops(candidates: Sequence[Candidate], config: RecommendConfig, data: Dataset) -> int:
    """One seed of every candidate trained at the budget with the recipe (what `compare` would train)."""
    return sum(job_training_flops(verify_job(config, c), data) for c in candidates)


def grid_cells(config: RecommendConfig) -> int:
    """Cells a tuned brute force trains every candidate in: the grid before extensions (1 without --tune)."""
    return len(config.tune_lrs) * len(config.tune_weight_decays) if config.tune else 1


def recorded_seconds(store: ResultStore, jobs: Sequence[TrainJob]) -> float:
    """The training time of `jobs` (each once, by id) as the folder recorded it: each job's steady seconds per
    epoch times its epochs, by the rule every command reports (`ensplit.train.epoch_time`); a job the folder
    does not hold counts 0."""
    recorded = store.epoch_seconds({job.job_id for job in jobs})
    return sum(seconds_per_epoch(epochs) * len(epochs) for epochs in recorded.values() if epochs)


def cost_of(plan_jobs: list[TrainJob], verify_jobs: list[TrainJob], candidates: Sequence[Candidate],
            config: RecommendConfig, data: Dataset, seconds: float, trained: int, store: ResultStore | None = None,
            per_epoch: Sequence[float] = ()) -> Cost:
    """The `cost` of a recommend call: `plan_jobs` every job the prediction rests on (each counted once, by id),
    `verify_jobs` the verification runs, `candidates` the listed ones the brute force would train; `store` the
    folder that records the jobs' epoch times, `per_epoch` each candidate's measured seconds per epoch at the
    budget (without them the time fields stay 0)."""
    cells = grid_cells(config)
    brute_seconds = sum(per_epoch) * config.recipe.train.epochs * cells
    return Cost(training_flops(plan_jobs, data), brute_force_flops(candidates, config, data) * cells,
                seconds, trained, training_flops(verify_jobs, data), cells,
                0.0 if store is None else recorded_seconds(store, plan_jobs), brute_seconds)
