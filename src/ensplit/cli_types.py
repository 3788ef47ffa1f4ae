"""Argument types shared by the subcommands: parameter counts and a family's KEY=VALUE options."""

from __future__ import annotations

import argparse
import re
from typing import Any

from ensplit.errors import EnsplitError
from ensplit.models import get_family

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


def parse_count(text: str) -> int:
    """A positive parameter count: `269722`, `269_722`, `1e6`, `36.5M`, `15k`."""
    match = re.fullmatch(r"\s*([0-9_]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgb]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a parameter count: {text!r} (e.g. 269722, 1e6, 36.5M)")
    value = float(match.group(1).replace("_", "")) * _SUFFIX[match.group(2)]
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"not a positive whole parameter count: {text!r}")
    return int(value)


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"options are KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def family_options(family: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Convert `--option` values to the type of the family's default (bool, int, float or str)."""
    defaults = get_family(family).options
    options: dict[str, Any] = {}
    for key, value in pairs:
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise EnsplitError(f"unknown option {key!r} for family {family!r} (known: {known})")
        default = defaults[key]
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                options[key] = value.lower() in ("true", "1", "yes")
            elif isinstance(default, (int, float, str)):
                options[key] = type(default)(value)
            else:
                options[key] = value
        except ValueError:
            raise EnsplitError(f"option {key} needs a {type(default).__name__}, got {value!r}") from None
    return options
