"""`designspace`'s two jobs per network configuration, run by an executor like any `TrainJob` (in this process,
a process-pool worker or a Ray worker).

A training job ("designspace") trains its K networks member-batched and predicts the test set after every
epoch: its stored array is `[K, N · E, C]`, epoch e's predictions in rows e·N ... (e + 1)·N, so one run fills
the whole epochs axis. Its `seconds_per_epoch` are the training loop's own epoch times (predictions excluded).

A cost job ("designspace-cost") measures, on fresh untrained copies (`ensplit.train.measure`), the seconds of
an epoch of the K plain networks trained one after another (the paper's protocol: the median of the timed
runs after the warm-ups, scaled to an epoch), inference milliseconds per example, peak training memory and the
layer count. Its stored array is `[1, 1, len(COST_KEYS)]` float64, in COST_KEYS's order (NaN: not measured).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from ensplit.data.dataset import Dataset
from ensplit.ensembles import build_member, deep_ensemble
from ensplit.models import with_dropout
from ensplit.runs.jobs import JobResult
from ensplit.runs.plan import TrainJob
from ensplit.train import measure, predict_log_probs, train

COST_KEYS = ("seconds_per_epoch", "inference_ms_batch1", "inference_ms_large_batch", "layers", "peak_memory_bytes",
             "peak_memory_bytes_batched")
INTEGER_COSTS = ("layers", "peak_memory_bytes", "peak_memory_bytes_batched")
# Peak memories measured in this process, by (device, id of the cost job cut to the measured members): one
# network's memory is measured once for every K of its width and depth.
MEMORY_CACHE: dict[tuple[str, str], int | None] = {}


def build_network(family: str, seeds: Sequence[int], batched: bool, device: str, **kwargs: Any) -> nn.Module:
    """One plain network (seeds of length 1, not batched) or a member-batched ensemble, on `device`.
    A module-level function so spawned memory workers can unpickle a `partial` of it."""
    if not batched:
        return build_member(family, seeds[0], **kwargs).to(device)
    return deep_ensemble(family, list(seeds), **kwargs).to(device)


def network_kwargs(job: TrainJob, dataset: Dataset) -> dict[str, Any]:
    """The family keyword arguments of the job's networks (the recipe's options with the training dropout)."""
    options = with_dropout(job.family, dict(job.family_options), job.train_config().dropout)
    return dict(width=job.width, depth=job.depth, in_shape=dataset.in_shape, num_classes=dataset.num_classes,
                **options)


def train_design_job(job: TrainJob, dataset: Dataset, progress: bool = False) -> JobResult:
    """Train the job's networks member-batched, predicting the test set after every epoch (module docstring)."""
    config = job.train_config()
    device = str(dataset.x_train.device)
    model = build_network(job.family, job.seeds, True, device, **network_kwargs(job, dataset))
    per_epoch: list[torch.Tensor] = []

    def on_epoch(epoch: int, trained: nn.Module) -> None:
        per_epoch.append(predict_log_probs(trained, dataset.x_test, dataset, precision=config.precision).float().cpu())

    start = time.perf_counter()
    result = train(model, dataset, config, list(job.seeds), progress=progress, on_epoch=on_epoch,
                   description=f"{job.family} width {job.width} depth {job.depth} × {len(job.seeds)}")
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters()) // len(job.seeds)
    losses = [v if math.isfinite(v) else float("nan") for v in result.train_loss[-1]]
    return JobResult(job.job_id, torch.cat(per_epoch, dim=1).numpy(), None, list(result.failed), losses, seconds,
                     list(result.seconds_per_epoch), params)


def measure_cost_job(job: TrainJob, dataset: Dataset,
                     memory_cache: dict[tuple[str, str], int | None] | None = None) -> JobResult:
    """Measure the cost of the job's configuration (module docstring); `memory_cache` keeps peak memories
    between jobs (see MEMORY_CACHE)."""
    settings = dict(job.method_options)
    start = time.perf_counter()
    costs = _timings(job, dataset, settings)
    if settings["measure_memory"]:
        costs.update(_memories(job, dataset, settings, {} if memory_cache is None else memory_cache))
    row = [math.nan if costs.get(key) is None else float(costs[key]) for key in COST_KEYS]
    return JobResult(job.job_id, np.array(row, dtype=np.float64).reshape(1, 1, -1), None, [False], [math.nan],
                     time.perf_counter() - start, [float(costs["seconds_per_epoch"])], costs["params"])


def _timings(job: TrainJob, dataset: Dataset, settings: dict[str, Any]) -> dict[str, Any]:
    """Epoch seconds of the plain networks one after another, inference ms per example, layer count (and the
    parameters of one network)."""
    device, config, k = str(dataset.x_train.device), job.train_config(), len(job.seeds)
    kwargs = network_kwargs(job, dataset)
    steps_per_epoch = measure.steps_in_epoch(dataset.x_train.shape[0], config.batch_size)
    steps = min(steps_per_epoch, settings["timing_steps"] or steps_per_epoch)
    x = dataset.prepare(dataset.x_train[: max(4 * config.batch_size, 1)]).float()
    y = dataset.y_train[: x.shape[0]]
    plains = [build_network(job.family, [s], False, device, **kwargs) for s in job.seeds]
    sequential = measure.epoch_seconds(plains, x, y, config, [None] * k, steps=steps, steps_per_epoch=steps_per_epoch,
                                       warmup=settings["timing_warmup"], repeats=settings["timing_repeats"])
    x_test = dataset.prepare(dataset.x_test[: settings["large_batch"]]).float()
    infer = dict(warmup=settings["timing_warmup"], repeats=settings["inference_repeats"])
    return dict(seconds_per_epoch=sequential.median,
                inference_ms_batch1=measure.inference_ms_per_example(plains, x_test, 1, calls=20, **infer),
                inference_ms_large_batch=measure.inference_ms_per_example(plains, x_test, settings["large_batch"],
                                                                          **infer),
                layers=k * measure.parameterised_layers(plains[0]),
                params=sum(p.numel() for p in plains[0].parameters()))


def _memories(job: TrainJob, dataset: Dataset, settings: dict[str, Any],
              cache: dict[tuple[str, str], int | None]) -> dict[str, int | None]:
    """Peak training memory of one plain network and of the K member-batched (cached: see MEMORY_CACHE)."""
    device, config, k = str(dataset.x_train.device), job.train_config(), len(job.seeds)
    rows = 2 * config.batch_size
    x = dataset.prepare(dataset.x_train[: max(4 * config.batch_size, 1)]).float()[:rows]
    y = dataset.y_train[: x.shape[0]]
    out: dict[str, int | None] = {}
    for members, key in ((1, "peak_memory_bytes"), (k, "peak_memory_bytes_batched")):
        cache_key = (device, dataclasses.replace(job, seeds=job.seeds[:members]).job_id)
        if cache_key not in cache:
            factory = partial(build_network, job.family, list(job.seeds[:members]), members > 1, device,
                              **network_kwargs(job, dataset))
            cache[cache_key] = measure.peak_training_memory(factory, x, y, members if members > 1 else None, config,
                                                            steps=settings["memory_steps"])
        out[key] = cache[cache_key]
    return out


def stored_costs(row: np.ndarray) -> dict[str, Any]:
    """A cost job's stored row `[len(COST_KEYS)]` -> values by key (None where not measured)."""
    values: dict[str, Any] = {}
    for key, value in zip(COST_KEYS, row.tolist(), strict=True):
        values[key] = None if math.isnan(value) else (int(value) if key in INTEGER_COSTS else float(value))
    return values
