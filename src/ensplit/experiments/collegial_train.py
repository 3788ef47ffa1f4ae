"""Training the designed networks along the primal and dual curves (Littwin et al. 2020, Figs. 4 and 6).

For each curve and each path width n (spread in log n around the predicted optimum, which is one of
them), the integer multiplicity m (`curve_members`: ⌊β_s/β(n)⌋ on the primal curve, round(m_d(n)) on
the dual) gives a collegial ensemble, the `grouped` method with collegial aggregation: m mlp paths of
width n summed into one read-out, (1/√m) Σ_j F_j(x). Each is trained with the recipe `seeds` times and
scored on the test set (accuracy, NLL, CNLL by test-time cross-validation); rows give the mean, the
sample standard deviation over seeds and the per-seed values. A point both curves share (m = 1 at n = ñ,
the baseline itself) is trained once per seed.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ensplit.analysis.collegial import Cost, MLPBaseline, curve_members, solve, spread_widths
from ensplit.analysis.ensemble_scores import score
from ensplit.data.dataset import Dataset
from ensplit.ensembles import build_method, method_param_count
from ensplit.errors import EnsplitError
from ensplit.recipe import Recipe
from ensplit.runs.resources import check_training
from ensplit.train import predict_log_probs, train

MAX_PATHS = 20_000  # beyond this a point is a typo or a width far below the optimum, not an experiment
METRICS = ("accuracy", "nll", "cnll")
Key = tuple[int, int, int]  # (width n, members m, seed)


@dataclass
class CurveTraining:
    """Rows (one per curve and width), predicted against measured optima, and the test predictions."""

    rows: list[dict[str, Any]]
    optimum: dict[str, dict[str, Any]]
    log_probs: dict[Key, torch.Tensor]   # (n, m, seed) -> test log-probabilities [1, N, C] (float64, CPU)
    labels: torch.Tensor                 # test labels [N]


def check_fits(baseline: MLPBaseline, recipe: Recipe, dataset: Dataset) -> None:
    """The baseline must be an mlp of the recipe's data: input features and classes (one-line errors)."""
    features = math.prod(dataset.in_shape)
    if baseline.input_dim != features or baseline.outputs != dataset.num_classes:
        raise EnsplitError(f"--train: the mlp baseline ({baseline.input_dim} inputs, {baseline.outputs} outputs) "
                           f"does not fit the recipe's data ({recipe.dataset}: {features} features, "
                           f"{dataset.num_classes} classes); use --input-dim {features} --outputs "
                           f"{dataset.num_classes}")
    if recipe.family != "mlp":
        raise EnsplitError(f"--train trains mlp paths; the recipe's family is {recipe.family!r} (use --family mlp)")


def _options(recipe: Recipe, baseline: MLPBaseline) -> dict[str, Any]:
    return {**recipe.options, "bias": baseline.bias}


def point_params(recipe: Recipe, baseline: MLPBaseline, dataset: Dataset, width: int, members: int) -> int:
    """Exact parameters of the collegial ensemble (closed form); must be m·β(n) of the design."""
    count = method_param_count("grouped", "mlp", members, width, baseline.hidden_layers, dataset.in_shape,
                               dataset.num_classes, _options(recipe, baseline), aggregation="collegial")
    if count != members * float(baseline.path_cost(width, "params")):
        raise EnsplitError(f"the family options {recipe.family_options} change the mlp's parameter count; the "
                           "design counts plain mlp paths (drop the --family-option)")
    return count


def train_point(recipe: Recipe, baseline: MLPBaseline, dataset: Dataset, width: int, members: int, seed: int,
                progress: bool = False) -> torch.Tensor:
    """Build, train and predict one collegial ensemble: m paths of width n, path j initialised from seed + j.
    -> test log-probabilities [1, N, C]."""
    params = point_params(recipe, baseline, dataset, width, members)
    check_training(params, recipe.train.optimizer, dataset.x_train.device,
                   f"training {members} path{'' if members == 1 else 's'} of width {width}",
                   "choose smaller --train-widths")
    model = build_method("grouped", "mlp", members, width, baseline.hidden_layers, dataset.in_shape,
                         dataset.num_classes, seed, _options(recipe, baseline), aggregation="collegial")
    model = model.to(dataset.x_train.device)
    config = dataclasses.replace(recipe.train, batching=model.batching)
    train(model, dataset, config, [seed], progress=progress, index_sampler=model.index_sampler,
          description=f"collegial m={members} n={width}")
    return predict_log_probs(model, dataset.x_test, dataset, precision=config.precision).double().cpu()


def training_widths(optimum: int, high: int, points: int, given: Sequence[int] = ()) -> list[int]:
    """The widths trained: `given`, else `points` widths from ⌈n*/4⌉ to `high` spread around the optimum n*."""
    if given:
        return sorted(set(int(n) for n in given))
    return spread_widths(optimum, min(optimum, max(1, math.ceil(optimum / 4))), max(high, optimum), points)


def summarise(values: dict[str, list[float]]) -> dict[str, Any]:
    """Mean and sample standard deviation (None for one seed) of each metric over seeds."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        v = np.asarray(values[metric], dtype=float)
        out[metric] = float(v.mean())
        out[f"{metric}_std"] = float(v.std(ddof=1)) if len(v) > 1 else None
    return out


def _optimum(rows: list[dict[str, Any]], predicted: tuple[int, int]) -> dict[str, Any]:
    """The predicted optimum (n, m) next to the measured best point by accuracy and by CNLL."""
    def brief(row: dict[str, Any], metric: str) -> dict[str, Any]:
        return {"width": row["width"], "members": row["members"], "params": row["params"], metric: row[metric],
                f"{metric}_std": row[f"{metric}_std"]}

    by_acc = sorted(rows, key=lambda r: -r["accuracy"])
    by_cnll = sorted(rows, key=lambda r: r["cnll"])
    rank = {name: next((i + 1 for i, r in enumerate(order) if (r["width"], r["members"]) == predicted), None)
            for name, order in (("accuracy", by_acc), ("cnll", by_cnll))}
    return {"predicted": {"width": predicted[0], "members": predicted[1]},
            "best_accuracy": brief(by_acc[0], "accuracy"), "best_cnll": brief(by_cnll[0], "cnll"),
            "predicted_rank": rank, "points": len(rows)}


def train_curves(recipe: Recipe, baseline: MLPBaseline, alpha: float, cost: Cost = "params",
                 max_width: int | None = None, curves: Sequence[str] = ("primal", "dual"), widths: Sequence[int] = (),
                 points: int = 5, seeds: int = 3, progress: bool = True) -> CurveTraining:
    """Train the collegial ensembles along each curve on the recipe's data (see the module docstring)."""
    dataset = recipe.load_data()
    check_fits(baseline, recipe, dataset)
    high = baseline.width if max_width is None else max_width
    cache: dict[Key, tuple[dict[str, float], torch.Tensor]] = {}
    rows: list[dict[str, Any]] = []
    optimum: dict[str, dict[str, Any]] = {}
    labels = dataset.y_test.cpu()
    for curve in curves:
        design = solve(baseline, alpha, curve, cost, max_width)  # type: ignore[arg-type]
        predicted = (design.width, curve_members(baseline, alpha, curve, design.width, cost))
        var_s = design.baseline_variance
        curve_rows = []
        for n in training_widths(design.width, high, points, widths):
            m = curve_members(baseline, alpha, curve, n, cost)  # type: ignore[arg-type]
            if m < 1:
                _log(f"{curve}: skipping n = {n} (one path exceeds the baseline's {cost})", progress)
                continue
            if m > MAX_PATHS:
                raise EnsplitError(f"the {curve} curve needs m = {m:,} paths at width {n}; choose --train-widths "
                                   f"nearer the optimum n = {design.width}")
            params = point_params(recipe, baseline, dataset, n, m)
            per_seed: dict[str, list[float]] = {k: [] for k in METRICS}
            seed_list = [recipe.seed + s * m for s in range(seeds)]  # disjoint path seeds across repetitions
            for seed in seed_list:
                if (n, m, seed) not in cache:
                    start = time.perf_counter()
                    log_probs = train_point(recipe, baseline, dataset, n, m, seed)
                    cache[(n, m, seed)] = (score(log_probs, labels), log_probs)
                    s = cache[(n, m, seed)][0]
                    _log(f"{curve}: n = {n}, m = {m} ({params:,} params), seed {seed}: accuracy "
                         f"{s['accuracy']:.4f}, CNLL {s['cnll']:.4f} ({time.perf_counter() - start:.1f} s)", progress)
                for k in METRICS:
                    per_seed[k].append(float(cache[(n, m, seed)][0][k]))
            variance = math.expm1(alpha * float(baseline.variance_sum(n))) / m
            row = {"curve": curve, "width": n, "members": m, "params": params,
                   **({"flops_per_example": m * float(baseline.path_cost(n, "flops"))} if cost == "flops" else {}),
                   "variance": variance, "variance_ratio": variance / var_s, "predicted_optimum": (n, m) == predicted,
                   **summarise(per_seed), "seeds": seed_list, "per_seed": per_seed}
            curve_rows.append(row)
        if curve_rows:
            optimum[curve] = _optimum(curve_rows, predicted)
        rows += curve_rows
    return CurveTraining(rows, optimum, {k: v[1] for k, v in cache.items()}, labels)


def _log(message: str, progress: bool) -> None:
    if progress:
        print(f"ensplit collegial: {message}", file=sys.stderr, flush=True)
