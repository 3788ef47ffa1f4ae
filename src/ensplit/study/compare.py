"""Train ensemble methods side by side and measure them on one table (the engine of `ensplit compare`).

For each method: build it (at a width, or the widest that fits a parameter budget), train it with
`ensplit.train.train`, predict member log-probabilities `[M, N, C]` and score them with `ensplit.metrics`.
Metrics are of the ensemble (probabilities averaged, science.md §1); CNLL is test-time cross-validated.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ensplit.data.corruptions import corrupted_test_sets
from ensplit.data.dataset import Dataset
from ensplit.ensembles.methods import MethodModel, build_method, method_param_count, solve_method_width
from ensplit.metrics import (
    classification_metrics,
    cnll_ttcv,
    disagreement_matrix,
    ensemble_log_probs,
    normalized_diversity,
)
from ensplit.models import count_params
from ensplit.train import TrainConfig, predict_log_probs, train

RESULT_KEYS = ("method", "params", "flops", "train_seconds_per_epoch", "accuracy", "nll", "cnll", "ece", "brier",
               "disagreement", "diversity", "corrupted_accuracy", "corrupted_nll")

FLOPS_BATCH = 128  # FLOPs per object are measured on a batch of this size (see forward_flops)


@dataclass(frozen=True)
class CompareSpec:
    """One comparison: the family at `width`; with `budget`, every method is sized to it (the widest
    network that fits; MixtureEnsembles keep `width` and take the budget as their knob)."""

    family: str
    width: int
    members: int
    depth: int | None = None
    budget: int | None = None
    family_options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0


def _off_diagonal_mean(matrix: torch.Tensor) -> float | None:
    m = matrix.shape[0]
    if m < 2:
        return None
    return float((matrix.sum() - matrix.diagonal().sum()) / (m * (m - 1)))


def method_width(method: str, spec: CompareSpec, members: int, dataset: Dataset) -> int:
    """The width `method` runs at: `spec.width`, or the widest within `spec.budget`."""
    if spec.budget is None or method == "mixture":
        return spec.width
    return solve_method_width(method, spec.budget, spec.family, 1 if method == "single" else members, spec.depth,
                              dataset.in_shape, dataset.num_classes, spec.family_options,
                              **spec.method_options.get(method, {}))


def _options(method: str, spec: CompareSpec, dataset: Dataset) -> dict[str, Any]:
    options = dict(spec.method_options.get(method, {}))
    if method == "mixture" and options.get("budget") is None:
        options["budget"] = spec.budget or count_params(spec.family, spec.width, spec.depth, dataset.in_shape,
                                                        dataset.num_classes, **spec.family_options)
    return options


def forward_flops(model: torch.nn.Module, batch: torch.Tensor) -> int:
    """Eval-mode forward FLOPs per object, counted by FlopCounterMode on `batch` and divided by its size:
    every member's work, 2 FLOPs per multiply-add, matmuls and convolutions only. Work done once per batch
    (MixtureEnsembles building member weights from templates) is shared by the batch's objects."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(batch)
    model.train(was_training)
    return round(counter.get_total_flops() / batch.shape[0])


def score(log_probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """Ensemble metrics of member log-probabilities `[M, N, C]`."""
    lp = log_probs.double()
    metrics = {k: float(v) for k, v in classification_metrics(ensemble_log_probs(lp), labels).items()}
    metrics["cnll"] = float(cnll_ttcv(lp, labels))
    metrics["disagreement"] = _off_diagonal_mean(disagreement_matrix(lp))
    metrics["diversity"] = _off_diagonal_mean(normalized_diversity(lp, labels)) if lp.shape[0] > 1 else None
    return metrics


def corrupted_scores(model: MethodModel, dataset: Dataset,
                     precision: str = "fp32") -> tuple[float | None, float | None]:
    """Mean ensemble accuracy and NLL over every corruption and severity of the test set (None if none)."""
    accs, nlls = [], []
    for _, _, x in corrupted_test_sets(dataset):
        log_probs = predict_log_probs(model, x, dataset, precision=precision).double()
        m = classification_metrics(ensemble_log_probs(log_probs), dataset.y_test)
        accs.append(float(m["accuracy"]))
        nlls.append(float(m["nll"]))
    return (sum(accs) / len(accs), sum(nlls) / len(nlls)) if accs else (None, None)


def run_method(method: str, spec: CompareSpec, dataset: Dataset, config: TrainConfig, members: int | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Build, train and score one method; returns the RESULT_KEYS plus `width`, `members` and `info`."""
    members = spec.members if members is None else members
    width = method_width(method, spec, members, dataset)
    options = _options(method, spec, dataset)
    model = build_method(method, spec.family, members, width, spec.depth, dataset.in_shape, dataset.num_classes,
                         spec.seed, spec.family_options, **options)
    params = sum(p.numel() for p in model.parameters())
    closed_form = method_param_count(method, spec.family, members, width, spec.depth, dataset.in_shape,
                                     dataset.num_classes, spec.family_options, **options)
    if params != closed_form:  # a bug, never a user error
        raise RuntimeError(f"{method}: built {params} parameters, closed form says {closed_form}")
    device = dataset.x_train.device
    model = model.to(device)
    seeds = [spec.seed + i for i in range(model.members)]
    result = train(model, dataset, replace(config, batching=model.batching), seeds, progress=progress,
                   index_sampler=model.index_sampler, description=f"{method} (w={width})")
    log_probs = predict_log_probs(model, dataset.x_test, dataset, precision=config.precision)
    scores = score(log_probs.cpu(), dataset.y_test.cpu())
    corrupted_accuracy, corrupted_nll = corrupted_scores(model, dataset, config.precision)
    epochs = result.seconds_per_epoch[1:] or result.seconds_per_epoch  # the first epoch carries warm-up
    row = {
        "method": method, "params": params,
        "flops": forward_flops(model, dataset.prepare(dataset.x_test[:FLOPS_BATCH]).to(next(model.parameters()).dtype)),
        "train_seconds_per_epoch": sum(epochs) / len(epochs),
        **scores, "corrupted_accuracy": corrupted_accuracy, "corrupted_nll": corrupted_nll,
    }
    row = {k: (None if isinstance(row[k], float) and not math.isfinite(row[k]) else row[k]) for k in RESULT_KEYS}
    if any(result.failed):
        print(f"ensplit compare: {method}: {sum(result.failed)} member(s) diverged", file=sys.stderr)
    return {**row, "width": width, "members": 1 if method == "single" else members, "info": dict(model.info)}
