"""`collegial --train`'s plan: the points of each curve, refusals made before anything trains, and one `TrainJob`
per (path width n, multiplicity m, seed).

For each curve and each path width n (spread in log n around the predicted optimum, which is one of them), the
integer multiplicity m (`curve_members`: ⌊β_s/β(n)⌋ on the primal curve, round(m_d(n)) on the dual) gives a
collegial ensemble, the `grouped` method with collegial aggregation: m mlp paths of width n summed into one
read-out, (1/√m) Σ_j F_j(x), path j initialised from seed + j. Repetition s of a point uses seed
recipe.seed + s·m, so the paths of two repetitions never share a seed. Each (n, m, seed) is one job, run by
`ensplit.runs.jobs.run_job` exactly as `collegial --train` trained it before it stored its runs; a point both
curves share (m = 1 at n = ñ, the baseline itself) is one job and is trained once.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ensplit.analysis.collegial import Cost, MLPBaseline, curve_members, solve, spread_widths
from ensplit.data.dataset import Dataset
from ensplit.ensembles import method_param_count
from ensplit.errors import EnsplitError
from ensplit.recipe import Recipe
from ensplit.runs.plan import TrainJob
from ensplit.runs.resources import check_training

KIND = "collegial"
MAX_PATHS = 20_000  # beyond this a point is a typo or a width far below the optimum, not an experiment
METHOD_OPTIONS = (("aggregation", "collegial"),)  # the grouped method's read-out: one summed output


@dataclass(frozen=True)
class PlannedPoint:
    """One point of a curve: m = `members` paths of width n = `width`, `params` their exact count, trained once
    per seed of `seeds` as the job of the same position in `jobs`."""

    curve: str
    width: int
    members: int
    params: int
    seeds: tuple[int, ...]
    jobs: tuple[TrainJob, ...]


@dataclass(frozen=True)
class PlannedCurve:
    """A curve's points, its predicted optimum (n, m) and the baseline's NTK variance (exp(α Σ_s) − 1)."""

    curve: str
    predicted: tuple[int, int]
    baseline_variance: float
    points: tuple[PlannedPoint, ...]


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


def _family_options(recipe: Recipe, baseline: MLPBaseline) -> dict[str, Any]:
    """The recipe's family options with the baseline's biases (the training dropout is added by the job)."""
    return {**recipe.family_options, "bias": baseline.bias}


def point_params(recipe: Recipe, baseline: MLPBaseline, dataset: Dataset, width: int, members: int) -> int:
    """Exact parameters of the collegial ensemble (closed form); must be m·β(n) of the design."""
    options = {**recipe.options, "bias": baseline.bias}
    count = method_param_count("grouped", "mlp", members, width, baseline.hidden_layers, dataset.in_shape,
                               dataset.num_classes, options, **dict(METHOD_OPTIONS))
    if count != members * float(baseline.path_cost(width, "params")):
        raise EnsplitError(f"the family options {recipe.family_options} change the mlp's parameter count; the "
                           "design counts plain mlp paths (drop the --family-option)")
    return count


def point_job(recipe: Recipe, baseline: MLPBaseline, width: int, members: int, seed: int) -> TrainJob:
    """The job that trains m paths of width n from `seed` (paths seed, seed + 1, ...) and predicts the test set."""
    options = tuple(sorted(_family_options(recipe, baseline).items()))
    train = tuple(sorted(dataclasses.asdict(recipe.train).items()))
    return TrainJob(KIND, "mlp", width, baseline.hidden_layers, options, recipe.data, train, (seed,), 0, "grouped",
                    members, METHOD_OPTIONS)


def training_widths(optimum: int, high: int, points: int, given: Sequence[int] = ()) -> list[int]:
    """The widths trained: `given`, else `points` widths from ⌈n*/4⌉ to `high` spread around the optimum n*."""
    if given:
        return sorted(set(int(n) for n in given))
    return spread_widths(optimum, min(optimum, max(1, math.ceil(optimum / 4))), max(high, optimum), points)


def plan_curves(recipe: Recipe, baseline: MLPBaseline, dataset: Dataset, alpha: float, cost: Cost = "params",
                max_width: int | None = None, curves: Sequence[str] = ("primal", "dual"), widths: Sequence[int] = (),
                points: int = 5, seeds: int = 3, progress: bool = True) -> list[PlannedCurve]:
    """Every curve's points and jobs (see the module docstring); a point that cannot be trained (too many paths,
    family options that change the count, more memory than the device has) is refused before anything trains."""
    check_fits(baseline, recipe, dataset)
    high = baseline.width if max_width is None else max_width
    planned = []
    for curve in curves:
        design = solve(baseline, alpha, curve, cost, max_width)  # type: ignore[arg-type]
        predicted = (design.width, curve_members(baseline, alpha, curve, design.width, cost))  # type: ignore[arg-type]
        curve_points = []
        for n in training_widths(design.width, high, points, widths):
            m = curve_members(baseline, alpha, curve, n, cost)  # type: ignore[arg-type]
            if m < 1:
                if progress:
                    print(f"ensplit collegial: {curve}: skipping n = {n} (one path exceeds the baseline's {cost})",
                          file=sys.stderr, flush=True)
                continue
            if m > MAX_PATHS:
                raise EnsplitError(f"the {curve} curve needs m = {m:,} paths at width {n}; choose --train-widths "
                                   f"nearer the optimum n = {design.width}")
            params = point_params(recipe, baseline, dataset, n, m)
            check_training(params, recipe.train.optimizer, dataset.x_train.device,
                           f"training {m} path{'' if m == 1 else 's'} of width {n}", "choose smaller --train-widths")
            seed_list = tuple(recipe.seed + s * m for s in range(seeds))  # disjoint path seeds across repetitions
            jobs = tuple(point_job(recipe, baseline, n, m, seed) for seed in seed_list)
            curve_points.append(PlannedPoint(curve, n, m, params, seed_list, jobs))
        planned.append(PlannedCurve(curve, predicted, design.baseline_variance, tuple(curve_points)))
    return planned
