"""Scaling at a parameter budget: width solving, memory splits, width/depth-equivalent ensembles, FLOPs.

Every search relies on a family's count growing with width and with depth, so it is an exponential
bracket followed by bisection over exact closed-form counts: a 100M-parameter budget takes a few dozen
count evaluations. Definitions follow Wasay & Idreos (science.md §3): for an ensemble of K members,
the width-equivalent ensemble keeps the width and takes the largest valid depth d' with
K·|E(w, d')| ≤ |S(w, d)|; the depth-equivalent one keeps the depth and takes the largest width w' with
K·|E(w', d)| ≤ |S(w, d)|.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ensplit.errors import EnsplitError, warn_renamed
from ensplit.models.registry import count_params, create, get_family


@dataclass(frozen=True)
class Split:
    """`members` networks of `width` fit the budget; `params` is their total, `slack` = budget − params."""

    members: int
    width: int
    params: int
    slack: int


@dataclass(frozen=True)
class Single:
    params: int


@dataclass(frozen=True)
class WidthEquivalent:
    """Depth of each member and the ensemble's total parameters (None when no valid depth fits)."""

    depth: int | None
    params: int | None


@dataclass(frozen=True)
class DepthEquivalent:
    """Width of each member and the ensemble's total parameters (None when width 1 does not fit)."""

    width: int | None
    params: int | None


@dataclass(frozen=True)
class Equivalents:
    single: Single
    width_equivalent: WidthEquivalent
    depth_equivalent: DepthEquivalent


def _positive(name: str, value: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EnsplitError(f"{name} must be a positive integer, got {value!r}")
    return value


def _largest(fits: Callable[[int], bool], lo: int = 1) -> int | None:
    """Largest integer n >= lo with fits(n), for a predicate true up to some point and false after it."""
    if not fits(lo):
        return None
    hi = lo + 1
    while fits(hi):  # exponential bracket: fits(lo) and not fits(hi) when the loop ends
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _too_small(family: str, budget: int, depth: int | None, **kw: Any) -> EnsplitError:
    depth = get_family(family).default_depth if depth is None else depth
    smallest = count_params(family, 1, depth, **kw)
    return EnsplitError(f"budget {budget:,} is smaller than the smallest member: {family} at width 1, "
                        f"depth {depth} has {smallest:,} parameters")


def solve_width(family: str, budget: int | None = None, depth: int | None = None, *,
                in_shape: tuple[int, ...] | None = None, num_classes: int | None = None, **options: Any) -> int:
    """Largest width whose network has at most `budget` parameters (EnsplitError if width 1 is too big).
    The keyword `params=` is the budget's deprecated name."""
    if "params" in options:  # the budget's name before docs/glossary.md
        warn_renamed("params", "budget")
        budget = options.pop("params") if budget is None else budget
    budget = _positive("budget", budget)
    kw = dict(in_shape=in_shape, num_classes=num_classes, **options)
    width = _largest(lambda w: count_params(family, w, depth, **kw) <= budget)
    if width is None:
        raise _too_small(family, budget, depth, **kw)
    return width


def memory_splits(family: str, budget: int, depth: int | None = None, members_max: int = 8, *,
                  in_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                  **options: Any) -> list[Split]:
    """For n = 1..members_max, the widest n-member ensemble within `budget` (stops when width 1 no longer fits).
    The keyword `max_members=` is `members_max`'s deprecated name."""
    if "max_members" in options:  # the name before docs/glossary.md
        warn_renamed("max_members", "members_max")
        members_max = options.pop("max_members")
    _positive("budget", budget)
    _positive("members_max", members_max)
    kw = dict(in_shape=in_shape, num_classes=num_classes, **options)
    splits = []
    for n in range(1, members_max + 1):
        if count_params(family, 1, depth, **kw) * n > budget:
            break
        width = solve_width(family, budget // n, depth, **kw)
        total = n * count_params(family, width, depth, **kw)
        splits.append(Split(n, width, total, budget - total))
    if not splits:
        raise _too_small(family, budget, depth, **kw)
    return splits


def width_equivalent_depth(family: str, width: int, depth: int, members: int, *,
                           in_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                           **options: Any) -> int | None:
    """Largest valid depth d' with members·|E(width, d')| ≤ |S(width, depth)|; None if none fits."""
    _positive("members", members)
    kw = dict(in_shape=in_shape, num_classes=num_classes, **options)
    target = count_params(family, width, depth, **kw)
    valid = get_family(family).valid_depths(depth)  # members >= 1 and counts grow with depth: d' <= depth
    index = _largest(lambda i: i < len(valid) and members * count_params(family, width, valid[i], **kw) <= target,
                     lo=0)
    return None if index is None else valid[index]


def depth_equivalent_width(family: str, width: int, depth: int, members: int, *,
                           in_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                           **options: Any) -> int | None:
    """Largest width w' with members·|E(w', depth)| ≤ |S(width, depth)|; None if width 1 does not fit."""
    _positive("members", members)
    kw = dict(in_shape=in_shape, num_classes=num_classes, **options)
    share = count_params(family, width, depth, **kw) // members
    return _largest(lambda w: count_params(family, w, depth, **kw) <= share)


def equivalents(family: str, depth: int, width: int, members: int, *, in_shape: tuple[int, ...] | None = None,
                num_classes: int | None = None, **options: Any) -> Equivalents:
    """The single network S(width, depth) and its width- and depth-equivalent ensembles of `members`
    (depth None: the family's default depth)."""
    _positive("members", members)
    depth = get_family(family).default_depth if depth is None else depth
    kw = dict(in_shape=in_shape, num_classes=num_classes, **options)
    single = count_params(family, width, depth, **kw)
    d = width_equivalent_depth(family, width, depth, members, **kw)
    w = depth_equivalent_width(family, width, depth, members, **kw)
    return Equivalents(
        Single(single),
        WidthEquivalent(d, None if d is None else members * count_params(family, width, d, **kw)),
        DepthEquivalent(w, None if w is None else members * count_params(family, w, depth, **kw)),
    )


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """`value` rounded to the nearest multiple of `divisor` (at least `min_value`, default `divisor`),
    never more than (1 − round_limit) below `value` (timm's rule for scaled channel counts)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def flops_per_example(family: str, width: int, depth: int | None = None, *, in_shape: tuple[int, ...] | None = None,
                      num_classes: int | None = None, **options: Any) -> int:
    """Forward FLOPs for one example in eval mode, counted by torch's FlopCounterMode on the meta device.

    FlopCounterMode counts matrix multiplications and convolutions at 2 FLOPs per multiply-add; norms,
    activations and pooling are not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    in_shape = tuple(get_family(family).default_in_shape if in_shape is None else in_shape)
    try:
        with torch.device("meta"):
            model = create(family, width, depth, in_shape, num_classes, **options).eval()
            x = torch.zeros(1, *in_shape)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
    except (RuntimeError, ValueError) as error:  # e.g. an input shape the family's layers cannot take
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EnsplitError(f"family {family!r} at width {width} cannot run on inputs of shape {list(in_shape)}: "
                           f"{first}") from None
    return int(counter.get_total_flops())
