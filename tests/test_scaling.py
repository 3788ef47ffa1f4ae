"""Scaling at a budget vs brute-force searches over built models (small sizes), FLOPs, make_divisible."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
import torch

from ensplit.errors import EnsplitError
from ensplit.models import count_params, create, get_family, scaling
from ensplit.models.scaling import (
    depth_equivalent_width,
    equivalents,
    flops_per_example,
    make_divisible,
    memory_splits,
    solve_width,
    width_equivalent_depth,
)

CASES: list[tuple[str, dict[str, Any]]] = [
    ("resnet", {}),
    ("resnet", {"shortcut": "B", "num_classes": 100}),
    ("wrn-pl", {}),
    ("densenet-bc", {}),
    ("resnext", {"cardinality": 2, "base_width": 4}),
    ("mlp", {}),
]


def built(name: str, width: int, depth: int, **kw: Any) -> int:
    return _built(name, width, depth, tuple(sorted(kw.items())))


@functools.cache
def _built(name: str, width: int, depth: int, kw: tuple) -> int:
    """sum(p.numel()) of the built module (meta device), cached across the brute-force searches."""
    with torch.device("meta"):
        return sum(p.numel() for p in create(name, width, depth, **dict(kw)).parameters())


def brute_width(name: str, budget: int, depth: int, **kw: Any) -> int | None:
    """Largest width in 1..16 whose built model fits `budget` (None if none does)."""
    fitting = [w for w in range(1, 17) if built(name, w, depth, **kw) <= budget]
    assert not fitting or fitting[-1] < 16, "widen the brute-force range"
    return fitting[-1] if fitting else None


@pytest.mark.parametrize("name, kw", CASES)
def test_memory_splits_match_brute_force(name: str, kw: dict) -> None:
    depth = get_family(name).valid_depths(100)[1]
    budget = built(name, 9, depth, **kw) + 7
    splits = memory_splits(name, budget, depth, members_max=5, **kw)
    assert [s.members for s in splits] == list(range(1, len(splits) + 1))
    for s in splits:
        width = brute_width(name, budget // s.members, depth, **kw)
        assert s.width == width
        assert s.params == s.members * built(name, width, depth, **kw)
        assert s.slack == budget - s.params >= 0
    if len(splits) < 5:  # the list stops only where width 1 no longer fits
        assert (len(splits) + 1) * built(name, 1, depth, **kw) > budget


@pytest.mark.parametrize("name, kw", CASES)
@pytest.mark.parametrize("members", [1, 2, 3, 5])
def test_equivalents_match_brute_force(name: str, kw: dict, members: int) -> None:
    family = get_family(name)
    depth, width = family.valid_depths(100)[2], 6
    single = built(name, width, depth, **kw)
    depths = [d for d in family.valid_depths(2 * depth) if members * built(name, width, d, **kw) <= single]
    widths = [w for w in range(1, 2 * width + 1) if members * built(name, w, depth, **kw) <= single]
    result = equivalents(name, depth, width, members, **kw)
    assert result.single.params == single
    assert result.width_equivalent.depth == (depths[-1] if depths else None)
    assert result.depth_equivalent.width == (widths[-1] if widths else None)
    if depths:
        assert result.width_equivalent.params == members * built(name, width, depths[-1], **kw)
    if widths:
        assert result.depth_equivalent.params == members * built(name, widths[-1], depth, **kw)
    assert width_equivalent_depth(name, width, depth, members, **kw) == result.width_equivalent.depth
    assert depth_equivalent_width(name, width, depth, members, **kw) == result.depth_equivalent.width


def test_single_member_equivalents_are_the_network_itself() -> None:
    result = equivalents("resnet", 20, 16, 1)
    assert (result.width_equivalent.depth, result.depth_equivalent.width) == (20, 16)
    assert result.single.params == result.width_equivalent.params == result.depth_equivalent.params == 269_722


def test_no_equivalent_gives_none() -> None:
    result = equivalents("vgg16", 16, 64, 4)  # vgg16 has one valid depth
    assert result.width_equivalent.depth is None and result.width_equivalent.params is None
    assert result.depth_equivalent.width == solve_width("vgg16", 15_245_130 // 4)


@pytest.mark.parametrize("name, budget", [("resnet", 269_722), ("resnet", 269_721), ("wrn", 36_479_194)])
def test_solve_width_boundaries(name: str, budget: int) -> None:
    width = solve_width(name, budget)
    assert count_params(name, width) <= budget < count_params(name, width + 1)


def test_solve_width_is_fast_for_large_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bracket and a bisection: a few dozen closed-form counts for 1e10 parameters, not one per width
    (counted, not timed, so a busy machine cannot fail it)."""
    calls = []

    def counted(*args: object, **kwargs: object) -> int:
        calls.append(args)
        return count_params(*args, **kwargs)

    monkeypatch.setattr(scaling, "count_params", counted)
    width = solve_width("wrn", 10**10)
    assert count_params("wrn", width) <= 10**10 < count_params("wrn", width + 1)
    assert len(calls) <= 2 * math.ceil(math.log2(width + 1)) + 2


def test_budget_below_the_smallest_member() -> None:
    with pytest.raises(EnsplitError, match="smaller than the smallest member"):
        solve_width("resnet", 100)
    with pytest.raises(EnsplitError, match="smaller than the smallest member"):
        memory_splits("wrn", 1000, members_max=3)


def test_flops_match_a_hand_count() -> None:
    """FlopCounterMode counts 2 FLOPs per multiply-add of matmuls and convolutions."""
    assert flops_per_example("mlp", 100, 2) == 2 * (40 * 100 + 100 * 100 + 100 * 10)
    w, spatial, channels, macs = 2, 32, 3, 0
    for multiple, convs in ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3)):
        for _ in range(convs):
            macs += 9 * channels * multiple * w * spatial * spatial
            channels = multiple * w
        spatial //= 2
    macs += 2 * (8 * w) ** 2 + 8 * w * 10
    assert flops_per_example("vgg16", w) == 2 * macs


@pytest.mark.parametrize("value, divisor, expected", [(37, 8, 40), (10, 8, 16), (64, 8, 64), (3, 8, 8), (99.5, 4, 100)])
def test_make_divisible(value: float, divisor: int, expected: int) -> None:
    assert make_divisible(value, divisor) == expected
