"""`recommend --flops-budget F`: every candidate sized to the widest that fits both budgets, and the front.

A candidate found at P parameters (`recommend_plan.candidates`) that needs more than F inference FLOPs per
example is narrowed: its width is bisected between 1 and its width at P on the exact counts (parameters from
the closed forms, FLOPs counted by `forward_flops` on the model itself, as `assess_costs` counts them). Only a
candidate that needs more than F even at width 1 is dropped.

A method sized by a parameter knob rather than by its width (the mixture: its `budget` option sets the template
bank, and its backbone is the single network's width at that budget) is instead moved down its own knob: it
becomes the method's candidate at the largest budget B ≤ P that fits F (`largest_fitting_budget`), the same
architecture its ladder trains at B. Narrowing its backbone while it kept its bank at P built a network the
ladder never measures, and the ladder's law predicted it as the mixture at P: on MNIST-1D at 23,050 parameters
and 30,000 FLOPs a backbone of width 38 with the whole bank was predicted 0.693 and measured 0.863, and it was
the answer (benchmarks/results/recommend_cost_flops.md).

The bisections keep `fits(low)` and `not fits(high)`, so what they return always fits both budgets and the
next width (or budget) does not, even for a method whose FLOPs were not monotone; there it would be the edge of
a fitting run, not necessarily the largest of all. Every method here grows its FLOPs with width and the mixture
with its budget (checked step by step in the tests), so the edge is the largest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ensplit.data.dataset import Dataset
from ensplit.ensembles import build_method, method_param_count
from ensplit.ensembles.cost import forward_flops
from ensplit.errors import EnsplitError
from ensplit.recipe import Recipe

if TYPE_CHECKING:
    from ensplit.experiments.recommend_plan import Candidate, RecommendConfig

FLOPS_ROWS = 64  # inference FLOPs are counted on this many test inputs (as `recommend.assess_costs` does)
_FLOPS: dict[str, int] = {}  # inference FLOPs per example, by everything that decides them


def candidate_model(candidate: Candidate, recipe: Recipe, data: Dataset) -> torch.nn.Module:
    """The candidate's model as it would be trained (on the current default device)."""
    return build_method(candidate.method, recipe.family, candidate.members, candidate.width, recipe.depth,
                        data.in_shape, data.num_classes, recipe.seed, recipe.options, **dict(candidate.options))


def inference_flops(candidate: Candidate, recipe: Recipe, data: Dataset) -> int:
    """Eval-mode FLOPs per example of the candidate (`forward_flops` on FLOPS_ROWS test inputs), cached.
    Counted on the meta device (shapes only, no memory), on the CPU where a method needs real values."""
    shape = (*data.x_test[:FLOPS_ROWS].shape,)
    key = json.dumps([dataclasses.astuple(candidate), recipe.family, recipe.depth, recipe.options,
                      list(data.in_shape), data.num_classes, shape], sort_keys=True, default=repr)
    if key not in _FLOPS:
        try:
            with torch.device("meta"):
                _FLOPS[key] = forward_flops(candidate_model(candidate, recipe, data), torch.empty(shape))
        except (RuntimeError, NotImplementedError):  # e.g. the mixture reads its plan with .item()
            sample = data.prepare(data.x_test[:FLOPS_ROWS].cpu()).float()
            _FLOPS[key] = forward_flops(candidate_model(candidate, recipe, data), sample)
    return _FLOPS[key]


def at_width(candidate: Candidate, width: int, recipe: Recipe, data: Dataset) -> Candidate:
    """The same candidate (method, members, options) at another width, with its exact parameter count."""
    if candidate.method in ("single", "deep"):
        params = candidate.members * recipe.params(width, data)
    else:
        params = method_param_count(candidate.method, recipe.family, candidate.members, width, recipe.depth,
                                    tuple(data.in_shape), data.num_classes, family_options=recipe.options,
                                    **dict(candidate.options))
    return dataclasses.replace(candidate, width=width, params=params)


@dataclass
class Sizing:
    """The candidates sized to both budgets, and those that need more than F FLOPs even at width 1 (shown at
    width 1, with the FLOPs they need there)."""

    kept: list[Candidate] = field(default_factory=list)
    dropped: list[Candidate] = field(default_factory=list)


def _within_flops(candidate: Candidate | None, flops_budget: int, recipe: Recipe, data: Dataset) -> bool:
    """Whether `candidate` exists and needs at most `flops_budget` FLOPs per example (one it cannot build fails)."""
    try:
        return candidate is not None and inference_flops(candidate, recipe, data) <= flops_budget
    except EnsplitError:
        return False


def _fits(candidate: Candidate, width: int, budget: int, flops_budget: int, recipe: Recipe,
          data: Dataset) -> Candidate | None:
    """The candidate at `width` when it fits both budgets, else None (a width the method cannot build fails)."""
    try:
        sized = at_width(candidate, width, recipe, data)
    except EnsplitError:
        return None
    return sized if sized.params <= budget and _within_flops(sized, flops_budget, recipe, data) else None


def widest_fitting(candidate: Candidate, budget: int, flops_budget: int, recipe: Recipe,
                   data: Dataset) -> Candidate | None:
    """The widest width in [1, candidate.width] that fits `budget` parameters and `flops_budget` FLOPs per
    example (bisection, see the module docstring); None when width 1 does not fit."""
    best = _fits(candidate, candidate.width, budget, flops_budget, recipe, data)
    if best is not None:
        return best
    best = _fits(candidate, 1, budget, flops_budget, recipe, data)
    if best is None:
        return None
    low, high = 1, candidate.width  # fits(low), not fits(high)
    while high - low > 1:
        mid = (low + high) // 2
        sized = _fits(candidate, mid, budget, flops_budget, recipe, data)
        if sized is None:
            high = mid
        else:
            low, best = mid, sized
    return best


AtBudget = Callable[["Candidate", int], "Candidate | None"]  # a knob-sized method's candidate at another budget


def sized_by_knob(candidate: Candidate) -> bool:
    """Whether the candidate's parameters are set by a `budget` option rather than by its width (the mixture)."""
    return "budget" in dict(candidate.options)


def smallest_budget(candidate: Candidate, budget: int, at_budget: AtBudget) -> Candidate | None:
    """The knob-sized method at the smallest budget in [1, `budget`] at which it can be built (bisection: below
    that budget it cannot, above it it can); None when it cannot be built even at `budget`."""
    if at_budget(candidate, budget) is None:
        return None
    low, high = 0, budget  # cannot be built at low (0: by definition), can at high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if at_budget(candidate, mid) is not None else (mid, high)
    return at_budget(candidate, high)


def largest_fitting_budget(candidate: Candidate, budget: int, flops_budget: int, recipe: Recipe, data: Dataset,
                           at_budget: AtBudget) -> Candidate | None:
    """The knob-sized method at the largest budget B ≤ `budget` whose candidate (`at_budget`) fits
    `flops_budget` FLOPs per example (bisection between its smallest buildable budget and `budget`); None when
    even the smallest does not fit."""
    best = at_budget(candidate, budget)
    if _within_flops(best, flops_budget, recipe, data):
        return best
    smallest = smallest_budget(candidate, budget, at_budget)
    if not _within_flops(smallest, flops_budget, recipe, data):
        return None
    low, high, best = dict(smallest.options)["budget"], budget, smallest  # fits(low), not fits(high)
    while high - low > 1:
        mid = (low + high) // 2
        sized = at_budget(candidate, mid)
        if _within_flops(sized, flops_budget, recipe, data):
            low, best = mid, sized
        else:
            high = mid
    return best


def fit_flops(found: list[Candidate], config: RecommendConfig, data: Dataset, at_budget: AtBudget,
              budget: int | None = None) -> Sizing:
    """Every candidate of `found` (sized to `budget`, default config.budget) narrowed to fit config.flops_budget:
    by width, or down its knob with `at_budget` when it is `sized_by_knob`; refuses, before any training, a
    FLOPs budget that not one candidate fits even at its smallest."""
    if config.flops_budget is None:
        return Sizing(list(found))
    budget = config.budget if budget is None else budget
    sizing = Sizing()
    for candidate in found:
        if sized_by_knob(candidate):
            sized = largest_fitting_budget(candidate, budget, config.flops_budget, config.recipe, data, at_budget)
            smallest = None if sized else smallest_budget(candidate, budget, at_budget)
            dropped = smallest or at_width(candidate, 1, config.recipe, data)
        else:
            sized = widest_fitting(candidate, budget, config.flops_budget, config.recipe, data)
            dropped = at_width(candidate, 1, config.recipe, data)
        if sized is None:
            sizing.dropped.append(dropped)
        else:
            sizing.kept.append(sized)
    if not sizing.kept:
        cheapest = min(sizing.dropped, key=lambda c: _flops_or_inf(c, config.recipe, data))
        raise EnsplitError(f"flops_budget = {config.flops_budget:,}: every candidate needs more inference FLOPs per "
                           f"example, even at width 1 (the cheapest, {cheapest.name}, needs "
                           f"{_flops_or_inf(cheapest, config.recipe, data):,.0f}); raise --flops-budget")
    return sizing


def _flops_or_inf(candidate: Candidate, recipe: Recipe, data: Dataset) -> float:
    try:
        return inference_flops(candidate, recipe, data)
    except EnsplitError:
        return float("inf")
