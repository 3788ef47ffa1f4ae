"""The family registry: `create(name, width=..., depth=...)` and exact, cheap parameter counts."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ensplit.errors import EnsplitError
from ensplit.layers import PLAIN, LayerSet
from ensplit.parsing import check_option


@dataclass(frozen=True)
class Family:
    """A model family scaled by a width knob and a depth knob.

    build(width, depth, in_shape, num_classes, layers, **options) -> nn.Module
    count(width, depth, in_shape, num_classes, **options) -> exact parameter count (closed form)
    """

    name: str
    build: Callable[..., nn.Module]
    count: Callable[..., int]
    default_depth: int
    default_in_shape: tuple[int, ...]
    default_num_classes: int
    valid_depth: Callable[[int], bool]
    depth_rule: str
    description: str = ""
    width_meaning: str = "width"
    options: dict[str, Any] = field(default_factory=dict)

    def valid_depths(self, up_to: int) -> list[int]:
        return [d for d in range(1, up_to + 1) if self.valid_depth(d)]


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def family_names() -> list[str]:
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise EnsplitError(f"unknown family {name!r}; known families: {', '.join(family_names())}") from None


def _resolve(name: str, width: int, depth: int | None, in_shape, num_classes, options: dict[str, Any]):
    family = get_family(name)
    if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
        raise EnsplitError(f"width must be a positive integer, got {width!r}")
    depth = family.default_depth if depth is None else depth
    if isinstance(depth, bool) or not isinstance(depth, int) or not family.valid_depth(depth):
        raise EnsplitError(
            f"invalid depth {depth!r} for family {name!r}: valid depths are {family.depth_rule}"
        )
    unknown = set(options) - set(family.options)
    if unknown:
        known = ", ".join(sorted(family.options)) or "none"
        raise EnsplitError(f"unknown option(s) {', '.join(sorted(unknown))} for family {name!r} (known: {known})")
    for key, value in options.items():
        check_option(f"family {name!r}", key, value, family.options[key])
    in_shape = family.default_in_shape if in_shape is None else in_shape
    if not (isinstance(in_shape, (tuple, list)) and in_shape and all(_positive_int(d) for d in in_shape)):
        raise EnsplitError(f"in_shape must be a tuple of positive integers, got {in_shape!r}")
    num_classes = family.default_num_classes if num_classes is None else num_classes
    if not _positive_int(num_classes):
        raise EnsplitError(f"num_classes must be a positive integer, got {num_classes!r}")
    return family, depth, tuple(int(d) for d in in_shape), int(num_classes), {**family.options, **options}


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def create(
    name: str,
    width: int,
    depth: int | None = None,
    in_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    layers: LayerSet = PLAIN,
    **options: Any,
) -> nn.Module:
    """Build family `name` at `width` and `depth` with the given layer set."""
    family, depth, in_shape, num_classes, options = _resolve(name, width, depth, in_shape, num_classes, options)
    return family.build(width=width, depth=depth, in_shape=in_shape, num_classes=num_classes, layers=layers,
                        **options)


def count_params(
    name: str,
    width: int,
    depth: int | None = None,
    in_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    **options: Any,
) -> int:
    """Exact parameter count of `create(...)` with plain layers, from a closed form (no build)."""
    family, depth, in_shape, num_classes, options = _resolve(name, width, depth, in_shape, num_classes, options)
    return int(family.count(width=width, depth=depth, in_shape=in_shape, num_classes=num_classes, **options))


def with_dropout(name: str, options: dict[str, Any], dropout: float) -> dict[str, Any]:
    """Family options with the training recipe's dropout rate: a rate > 0 sets the family's `dropout`
    option (a family without dropout layers refuses it); 0 leaves the family's own default."""
    if dropout <= 0:
        return dict(options)
    if "dropout" not in get_family(name).options:
        raise EnsplitError(f"dropout = {dropout}: family {name!r} has no dropout layers")
    return {**options, "dropout": dropout}
