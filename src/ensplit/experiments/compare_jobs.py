"""One `compare` job, run by an executor like any `TrainJob`: build the method, train it, predict the test set
and every corrupted test set (the corrupted scores need the trained model, which a job never sends back).

The stored array of a compare job is `[members, N · (1 + K), C]`: the test set's predictions, then those of its
K corrupted copies (`ensplit.data.corruptions.corrupted_test_sets`, in its order), each N rows long.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import torch

from ensplit.data.corruptions import corrupted_test_sets
from ensplit.data.dataset import Dataset
from ensplit.ensembles import build_method
from ensplit.ensembles.methods import MethodModel
from ensplit.metrics import classification_metrics, ensemble_log_probs
from ensplit.models import with_dropout
from ensplit.runs.executors import JobTask, LocalExecutor
from ensplit.runs.jobs import JobResult, load_job_data
from ensplit.runs.plan import TrainJob
from ensplit.train import predict_log_probs, train
from ensplit.train.device import resolve_device


def build_job_model(job: TrainJob, data: Dataset) -> MethodModel:
    """The job's ensemble, on the CPU, as it is trained: built with the job's (one) seed."""
    options = with_dropout(job.family, dict(job.family_options), job.train_config().dropout)
    return build_method(job.method, job.family, job.members, job.width, job.depth, data.in_shape, data.num_classes,
                        job.seeds[0], options, **dict(job.method_options))


def corrupted_log_probs(model: torch.nn.Module, dataset: Dataset, precision: str = "fp32") -> list[torch.Tensor]:
    """Member log-probabilities `[M, N, C]` on every corruption and severity of the test set (none: empty)."""
    return [predict_log_probs(model, x, dataset, precision=precision) for _, _, x in corrupted_test_sets(dataset)]


def corrupted_metrics(log_probs: Sequence[torch.Tensor], labels: torch.Tensor) -> dict[str, float | None]:
    """Mean ensemble accuracy, NLL and ECE over the corrupted sets' predictions (None if there are none)."""
    values: dict[str, list[float]] = {"accuracy": [], "nll": [], "ece": []}
    for member_log_probs in log_probs:
        metrics = classification_metrics(ensemble_log_probs(member_log_probs.double()), labels)
        for key in values:
            values[key].append(float(metrics[key]))
    return {f"corrupted_{k}": (sum(v) / len(v) if v else None) for k, v in values.items()}


def corrupted_scores(model: MethodModel, dataset: Dataset, precision: str = "fp32") -> dict[str, float | None]:
    """Mean ensemble accuracy, NLL and ECE over every corruption and severity of the test set (None if none)."""
    return corrupted_metrics(corrupted_log_probs(model, dataset, precision), dataset.y_test)


def run_compare_job(job: TrainJob, device: str = "cpu", progress: bool = False) -> JobResult:
    """Train the job's ensemble with member seeds seed, seed + 1, ... and predict the test set and its corrupted
    copies (see the module docstring). seconds_per_epoch: every epoch's seconds, as the training loop timed them
    (`ensplit.train.epoch_time.seconds_per_epoch` makes the reported figure of them)."""
    torch_device = resolve_device(device)
    data = load_job_data(job.data, torch_device)
    config = job.train_config()
    model = build_job_model(job, data)
    params = sum(p.numel() for p in model.parameters())
    model = model.to(torch_device)
    seed = job.seeds[0]
    start = time.perf_counter()
    result = train(model, data, dataclasses.replace(config, batching=model.batching),
                   [seed + i for i in range(model.members)], progress=progress, index_sampler=model.index_sampler,
                   description=f"{job.method} (w={job.width})")
    seconds = time.perf_counter() - start
    test = predict_log_probs(model, data.x_test, data, precision=config.precision)
    outputs = torch.cat([test, *corrupted_log_probs(model, data, config.precision)], dim=1)
    losses = [v if math.isfinite(v) else float("nan") for v in result.train_loss[-1]]
    return JobResult(job.job_id, outputs.float().cpu().numpy(), None, list(result.failed), losses, seconds,
                     list(result.seconds_per_epoch), params)


class TaskExecutor(LocalExecutor):
    """The local executor with another job function (kept for callers that used it; new code calls
    `ensplit.runs.executors.make_executor(name, ..., task=task)`, which runs any job function on any executor)."""

    def __init__(self, task: JobTask, device: str = "cpu", progress: bool = True) -> None:
        super().__init__(device, progress, task)
