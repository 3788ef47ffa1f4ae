"""Run one training job anywhere (this process, a pool worker, a Ray worker) and return arrays."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ensplit.data import Dataset, load_dataset
from ensplit.ensembles import deep_ensemble
from ensplit.models import count_params
from ensplit.study.plan import DataSpec, TrainJob
from ensplit.train import TrainConfig, predict_log_probs, train


@dataclass
class JobResult:
    """What a worker sends back to the driver: predictions and bookkeeping, no weights."""

    job_id: str
    test_log_probs: np.ndarray  # [M, N_test, C] float32
    val_log_probs: np.ndarray | None  # [M, N_val, C] or None
    failed: list[bool]
    train_loss: list[float]  # final epoch, per member
    seconds: float
    seconds_per_epoch: list[float]
    params_per_member: int


@functools.lru_cache(maxsize=4)
def _load(spec: DataSpec) -> Dataset:
    if spec.dataset == "mnist1d":
        data = load_dataset(spec.dataset, num_samples=spec.num_samples, seed=spec.data_seed)
        data = data.subset(train=spec.train_subset, test=spec.test_subset, seed=spec.data_seed)
    else:  # image readers draw the seeded subsets themselves and decode only what they keep
        data = load_dataset(spec.dataset, train_subset=spec.train_subset, test_subset=spec.test_subset,
                            seed=spec.data_seed)
    if spec.validation_fraction > 0:
        data = data.with_validation(spec.validation_fraction, seed=spec.data_seed)
    return data


def load_job_data(spec: DataSpec, device: str = "cpu") -> Dataset:
    """The job's data set on `device` (decoded once per process, then cached)."""
    return _load(spec).to(device)


def run_job(job: TrainJob, device: str = "cpu", progress: bool = False) -> JobResult:
    """Train the job's networks together and predict on the test (and validation) split."""
    data = load_job_data(job.data, device)
    train_options = job.train_dict
    config = TrainConfig(**{**train_options, "step_milestones": tuple(train_options["step_milestones"])})
    options = dict(job.family_options)
    if config.dropout > 0:
        options["dropout"] = config.dropout
    model = deep_ensemble(job.family, list(job.seeds), width=job.width, depth=job.depth, in_shape=data.in_shape,
                          num_classes=data.num_classes, **options).to(device)
    start = time.perf_counter()
    result = train(model, data, config, list(job.seeds), progress=progress,
                   description=f"{job.kind} w={job.width} n={len(job.seeds)}")
    seconds = time.perf_counter() - start
    test = predict_log_probs(model, data.x_test, data, precision=config.precision)
    val = predict_log_probs(model, data.x_val, data, precision=config.precision) if data.x_val is not None else None
    failed = [f or not bool(torch.isfinite(test[i]).all()) for i, f in enumerate(result.failed)]
    params = count_params(job.family, job.width, job.depth, data.in_shape, data.num_classes, **options)
    return JobResult(
        job_id=job.job_id,
        test_log_probs=test.float().cpu().numpy(),
        val_log_probs=None if val is None else val.float().cpu().numpy(),
        failed=failed,
        train_loss=[v if math.isfinite(v) else float("nan") for v in result.train_loss[-1]],
        seconds=seconds,
        seconds_per_epoch=result.seconds_per_epoch,
        params_per_member=params,
    )
