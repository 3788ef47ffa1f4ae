"""Run one training job anywhere (this process, a pool worker, a Ray worker) and return arrays."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ensplit.data.dataset import Dataset
from ensplit.data.spec import DataSpec, load_data
from ensplit.ensembles import build_method, deep_ensemble
from ensplit.models import count_params, with_dropout
from ensplit.runs.plan import TrainJob
from ensplit.train import predict_log_probs, train
from ensplit.train.device import resolve_device
from ensplit.train.stacked import StackedMethod, stackable


@dataclass
class JobResult:
    """What a worker sends back to the driver: predictions and bookkeeping, no weights.

    For a "deep" job each seed is one network; for a sharing method each seed is one ensemble whose
    `members` predictions follow each other. params_per_member: parameters of one network (deep) or of
    one whole ensemble (sharing methods).
    """

    job_id: str
    test_log_probs: np.ndarray  # [outputs, N_test, C] float32
    val_log_probs: np.ndarray | None  # [outputs, N_val, C] or None
    failed: list[bool]
    train_loss: list[float]  # final epoch, per output
    seconds: float
    seconds_per_epoch: list[float]
    params_per_member: int


def load_job_data(spec: DataSpec, device: str | torch.device = "cpu") -> Dataset:
    """The job's data set on `device` (decoded once per process, then cached)."""
    return load_data(spec).to(device)


def _finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else float("nan") for v in values]


def _predict(model: torch.nn.Module, data: Dataset, precision: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    test = predict_log_probs(model, data.x_test, data, precision=precision)
    val = predict_log_probs(model, data.x_val, data, precision=precision) if data.x_val is not None else None
    return test, val


def build_job_model(job: TrainJob, data: Dataset, seeds: list[int]) -> torch.nn.Module:
    """The model `job` trains for `seeds`, on the CPU: the member-batched networks of a deep job, or one ensemble
    of its method (one seed) — what `run_job` trains, and what `recommend`'s cost counts."""
    options = with_dropout(job.family, dict(job.family_options), job.train_config().dropout)
    if job.method == "deep":
        return deep_ensemble(job.family, seeds, width=job.width, depth=job.depth, in_shape=data.in_shape,
                             num_classes=data.num_classes, **options)
    return build_method(job.method, job.family, job.members, job.width, job.depth, data.in_shape,
                        data.num_classes, seeds[0], options, **dict(job.method_options))


def _run_deep(job: TrainJob, data: Dataset, device: torch.device, progress: bool) -> JobResult:
    config = job.train_config()
    options = with_dropout(job.family, dict(job.family_options), config.dropout)
    model = build_job_model(job, data, list(job.seeds)).to(device)
    start = time.perf_counter()
    result = train(model, data, config, list(job.seeds), progress=progress,
                   description=f"{job.kind} w={job.width} n={len(job.seeds)}")
    seconds = time.perf_counter() - start
    test, val = _predict(model, data, config.precision)
    failed = [f or not bool(torch.isfinite(test[i]).all()) for i, f in enumerate(result.failed)]
    params = count_params(job.family, job.width, job.depth, data.in_shape, data.num_classes, **options)
    return JobResult(job.job_id, test.float().cpu().numpy(), None if val is None else val.float().cpu().numpy(),
                     failed, _finite(result.train_loss[-1]), seconds, result.seconds_per_epoch, params)


def _run_method(job: TrainJob, data: Dataset, device: torch.device, progress: bool) -> JobResult:
    """One ensemble of the job's method per seed: stacked into one model when it can be (every seed trained
    at once, `ensplit.train.stacked`), else one after another."""
    config = job.train_config()
    # random draws made per batch row (augmentation) or inside the forward (dropout) would differ in a stack
    if len(job.seeds) > 1 and not (data.kind == "image" and config.augment) and config.dropout == 0:
        models = [build_job_model(job, data, [seed]) for seed in job.seeds]
        if all(stackable(m) for m in models):
            return _run_stacked(job, models, data, device, progress)
    tests, vals, failed, losses, per_epoch = [], [], [], [], []
    seconds, params = 0.0, 0
    for seed in job.seeds:
        model = build_job_model(job, data, [seed])  # built just before training, as it always was
        params = sum(p.numel() for p in model.parameters())
        model = model.to(device)
        start = time.perf_counter()
        result = train(model, data, replace(config, batching=model.batching), [seed + i for i in range(model.members)],
                       progress=progress, index_sampler=model.index_sampler,
                       description=f"{job.method} w={job.width} m={job.members}")
        seconds += time.perf_counter() - start
        test, val = _predict(model, data, config.precision)
        tests.append(test.float().cpu())
        vals.append(None if val is None else val.float().cpu())
        failed += [f or not bool(torch.isfinite(test[i]).all()) for i, f in enumerate(result.failed)]
        losses += _finite(result.train_loss[-1])
        per_epoch.append(result.seconds_per_epoch)
    # a seed whose members all diverged stops early: average over the epochs every seed reached
    mean_epochs = [float(np.mean(column)) for column in zip(*per_epoch)]  # noqa: B905
    return JobResult(job.job_id, torch.cat(tests).numpy(),
                     None if vals[0] is None else torch.cat(vals).numpy(), failed, losses, seconds, mean_epochs,
                     params)


def _run_stacked(job: TrainJob, models: list[torch.nn.Module], data: Dataset, device: torch.device,
                 progress: bool) -> JobResult:
    """Every seed's ensemble in one stacked model; each seed's members get the member seeds (and so the data
    order) of its own run. seconds_per_epoch is the stack's epoch time shared out over its runs."""
    config = job.train_config()
    params = sum(p.numel() for p in models[0].parameters())
    stack = StackedMethod(models).to(device)
    member_seeds = [seed + i for seed in job.seeds for i in range(stack.members)]
    start = time.perf_counter()
    result = train(stack, data, replace(config, batching=stack.batching), member_seeds, progress=progress,
                   index_sampler=stack.index_sampler,
                   description=f"{job.method} w={job.width} m={job.members} ×{len(models)} runs")
    seconds = time.perf_counter() - start
    test, val = _predict(stack, data, config.precision)
    failed = [f or not bool(torch.isfinite(test[i]).all()) for i, f in enumerate(result.failed)]
    runs = len(models)
    return JobResult(job.job_id, test.float().cpu().numpy(), None if val is None else val.float().cpu().numpy(),
                     failed, _finite(result.train_loss[-1]), seconds, [s / runs for s in result.seconds_per_epoch],
                     params)


def run_job(job: TrainJob, device: str = "cpu", progress: bool = False) -> JobResult:
    """Train the job's networks and predict on the test (and validation) split."""
    torch_device = resolve_device(device)
    data = load_job_data(job.data, torch_device)
    if job.method == "deep":
        return _run_deep(job, data, torch_device, progress)
    return _run_method(job, data, torch_device, progress)
