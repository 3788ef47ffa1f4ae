"""`compare`'s plan: each method's width at a width or a budget, refusals made before anything trains, and one
`TrainJob` per (method, members, budget, epochs) of the comparison and its sweeps.

Every job is one ensemble of its method, built with the recipe's seed and trained with member seeds
seed, seed + 1, ... (exactly what `compare` trained before it stored its runs), so a job of the table and the
same job of a sweep have one id and are trained once. A "deep" job lists those member seeds (the store's
convention: one seed per independent network); any other method's lists the recipe's seed alone.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import torch

from ensplit.data.dataset import Dataset
from ensplit.ensembles import build_method, method_param_count, solve_method_width
from ensplit.errors import EnsplitError
from ensplit.experiments.compare_config import CompareConfig
from ensplit.runs.plan import TrainJob
from ensplit.runs.resources import check_training

KIND = "compare"


@dataclass(frozen=True)
class PlannedRow:
    """One row of a table: `method` with `members` at `width`, trained as `job`; `params` its exact count."""

    method: str
    width: int
    members: int
    params: int
    job: TrainJob


def method_width(method: str, config: CompareConfig, members: int, budget: int | None, dataset: Dataset) -> int:
    """The width `method` runs at: the configured width, or the widest within `budget`."""
    if budget is None or method == "mixture":
        return config.width
    r = config.recipe
    return solve_method_width(method, budget, r.family, 1 if method == "single" else members, r.depth,
                              dataset.in_shape, dataset.num_classes, r.options,
                              **config.method_options.get(method, {}))


def method_options(method: str, config: CompareConfig, budget: int | None, dataset: Dataset) -> dict[str, Any]:
    """The method's options; a mixture without a bank budget of its own gets `budget` (or the single network's
    parameters at the width)."""
    options = dict(config.method_options.get(method, {}))
    if method == "mixture" and options.get("budget") is None:
        options["budget"] = budget or config.recipe.params(config.width, dataset)
    return options


def check_method_options(config: CompareConfig, dataset: Dataset) -> None:
    """Build every method once on the meta device (no memory, no training), so that a method option out of range
    (e.g. mimo.batch_repetitions=0) is refused before the first method trains; the mixture's options are
    checked by its closed-form plan."""
    r = config.recipe
    for method in config.methods:
        options = method_options(method, config, None, dataset)
        try:
            if method == "mixture":
                method_param_count(method, r.family, config.members, config.width, r.depth, dataset.in_shape,
                                   dataset.num_classes, r.options, **options)
                continue
            with torch.device("meta"):
                build_method(method, r.family, config.members, config.width, r.depth, dataset.in_shape,
                             dataset.num_classes, family_options=r.options, **options)
        except (ValueError, TypeError) as error:
            raise EnsplitError(f"method {method!r}: {error} (see its --method-option values)") from None


def fitting_methods(config: CompareConfig, dataset: Dataset, methods: tuple[str, ...], members: int,
                    budget: int | None) -> tuple[list[str], dict[str, str]]:
    """The methods that fit `budget` (all of them without one), and why each of the others does not; planned
    from closed-form counts, before anything is built or trained."""
    fitting, reasons = [], {}
    for method in methods:
        try:
            width = method_width(method, config, members, budget, dataset)
            options = method_options(method, config, budget, dataset)
            if method == "mixture" and budget is not None:  # the bank knob, not the width, must fit
                r = config.recipe
                method_param_count(method, r.family, members, width, r.depth, dataset.in_shape, dataset.num_classes,
                                   r.options, **options)
            fitting.append(method)
        except EnsplitError as error:
            if budget is None:
                raise
            reasons[method] = str(error)
    return fitting, reasons


def plan_row(method: str, config: CompareConfig, dataset: Dataset, members: int, budget: int | None,
             epochs: int | None) -> PlannedRow:
    """One method's job (refused up front when its training cannot fit the device's memory)."""
    r = config.recipe
    members = 1 if method == "single" else members
    width = method_width(method, config, members, budget, dataset)
    options = method_options(method, config, budget, dataset)
    params = method_param_count(method, r.family, members, width, r.depth, dataset.in_shape, dataset.num_classes,
                                r.options, **options)
    check_training(params, r.train.optimizer, dataset.x_train.device, f"training {method} at width {width}",
                   "lower --width or --budget")
    train = dataclasses.replace(r.train, epochs=epochs or r.train.epochs)
    seeds = tuple(r.seed + i for i in range(members)) if method == "deep" else (r.seed,)  # a seed per output
    job = TrainJob(KIND, r.family, width, r.depth, tuple(sorted(r.family_options.items())), r.data,
                   tuple(sorted(dataclasses.asdict(train).items())), seeds, 0, method, members,
                   tuple(sorted(options.items())))
    return PlannedRow(method, width, members, params, job)


def plan_rows(config: CompareConfig, dataset: Dataset, methods: tuple[str, ...], members: int, budget: int | None,
              epochs: int | None, required: bool = False) -> list[PlannedRow]:
    """Every method that fits once; at a budget, the others are skipped with one line on stderr. With
    `required`, a budget that fits no method is refused before anything is trained."""
    fitting, reasons = fitting_methods(config, dataset, methods, members, budget)
    if required and not fitting:
        raise EnsplitError(f"no method fits budget = {budget:,} with {members} members; raise the budget or "
                           "lower the members")
    if reasons:
        print(f"ensplit compare: skipping {', '.join(reasons)} (they do not fit {budget:,} parameters with "
              f"{members} members)", file=sys.stderr)
    return [plan_row(method, config, dataset, members, budget, epochs) for method in fitting]


def plan_compare(config: CompareConfig, dataset: Dataset) -> tuple[list[PlannedRow], list[PlannedRow],
                                                                   list[PlannedRow]]:
    """The rows of the table, of the budget sweep and of the member sweep."""
    rows = plan_rows(config, dataset, config.methods, config.members, config.budget, None, required=True)
    reference = config.budget or config.recipe.params(config.width, dataset)
    budget_rows = [row for factor in config.sweep_budgets
                   for row in plan_rows(config, dataset, config.methods, config.members, int(factor * reference),
                                        config.sweep_epochs)]
    sharing = tuple(x for x in config.methods if x != "single")
    member_rows = [row for m in config.sweep_members
                   for row in plan_rows(config, dataset, sharing, m, config.budget, config.sweep_epochs)]
    return rows, budget_rows, member_rows
