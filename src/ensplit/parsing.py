"""Text to typed values, in one place: counts, booleans, comma lists, KEY=VALUE pairs, and config fields.

Every command-line value and every config-file value passes through here before validation, so `on`
means true for every option of every command, and a list is written the same way everywhere
(`16,32,64`). Validation of ranges and choices happens once, in the typed configs (`ensplit.settings`);
`describe_validation_error` turns its failures into one line naming the field, the value and what is
allowed. Family and method options, whose types come from their defaults, are typed and checked here too
(`typed_options`, `check_option`).
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import re
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, Union, get_args, get_origin

from ensplit.errors import EnsplitError

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
NONE = ("none", "null", "")


def parse_count(text: str) -> int:
    """A positive parameter count: `269722`, `269_722`, `1e6`, `36.5M`, `15k`."""
    match = re.fullmatch(r"\s*([0-9_]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgb]?)\s*", str(text).lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (e.g. 269722, 1e6, 36.5M)")
    value = float(match.group(1).replace("_", "")) * _SUFFIX[match.group(2)]
    if value < 1 or value != int(value) or value > 1e15:
        raise argparse.ArgumentTypeError(f"not a positive whole count up to 1e15: {text!r}")
    return int(value)


def parse_bool(text: str) -> bool:
    """`true/false`, `yes/no`, `on/off`, `1/0` (any case)."""
    lowered = str(text).strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def key_value(text: str) -> tuple[str, str]:
    """`KEY=VALUE` -> (key, value), for repeatable option flags."""
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"options are KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def split_list(text: str) -> list[str]:
    """A comma-separated list (`16,32,64`); blanks are dropped."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def require_distinct(name: str, values: Sequence[Any]) -> None:
    """Refuse a list setting that names one value twice (it would train or count the same thing twice)."""
    if len(set(values)) != len(values):
        raise EnsplitError(f"{name} = {list(values)}: must be distinct")


def _scalar(text: str, kind: type) -> Any:
    if kind is bool:
        return parse_bool(text)
    try:
        if kind is int:
            if re.fullmatch(r"[-+]?[0-9_.]+e[0-9]+", text.lower()):
                value = float(text.replace("_", ""))
                if value.is_integer():
                    return int(value)
            return int(text.replace("_", ""))
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
    return text


class CountText:
    """Marks an integer field whose text may be a parameter count with a suffix (`23k`, `1.5M`)."""

    def __repr__(self) -> str:
        return "COUNT"


COUNT = CountText()


def _has_count(annotation: Any, metadata: tuple[Any, ...]) -> bool:
    return COUNT in metadata or (get_origin(annotation) is typing.Annotated and COUNT in get_args(annotation)[1:])


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]` -> X."""
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def from_text(text: str, annotation: Any, metadata: tuple[Any, ...] = ()) -> Any:
    """Convert one command-line string to a value of a config field's type annotation.

    Handles int, float, bool, str, Literal[...], `X | None` (`none` -> None), `tuple[X, ...]` (comma list)
    and `dict[str, Any]` (comma-separated KEY=VALUE pairs, values kept as text for the owner to type).
    A field marked with COUNT takes parameter counts (`23k`). Raises ValueError with the reason; the
    caller names the field.
    """
    if _has_count(annotation, metadata) and str(text).strip().lower() not in NONE:
        try:
            return parse_count(text)
        except argparse.ArgumentTypeError as error:
            raise ValueError(str(error)) from None
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if type(None) in get_args(annotation) and str(text).strip().lower() in NONE:
            return None
        return from_text(text, options[0])
    if origin is Literal:
        return str(text).strip()
    if origin is tuple:
        item = _unwrap(get_args(annotation)[0])
        return tuple(_scalar(part, item) for part in split_list(text))
    if origin is dict or annotation is dict:
        if str(text).strip().startswith("{"):  # a JSON object, as older configs wrote it
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"not a JSON object: {error.msg}") from None
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            return value
        try:
            return dict(key_value(part) for part in split_list(text))
        except argparse.ArgumentTypeError as error:
            raise ValueError(str(error)) from None
    if annotation in (int, float, bool, str):
        return _scalar(str(text).strip(), annotation)
    return text


def from_config(value: Any, annotation: Any, metadata: tuple[Any, ...] = ()) -> Any:
    """A config-file (TOML) or Python value for a field: strings are converted like command-line text,
    lists become tuples; anything else is left to the validation (which refuses wrong types)."""
    plain = _unwrap(annotation)
    origin = get_origin(plain)
    if isinstance(value, str) and not (plain is str or origin is Literal or _is_optional_str(plain)):
        return from_text(value, annotation, metadata)
    if isinstance(value, list):
        return tuple(value)
    return value


def _is_optional_str(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType) and str in get_args(annotation)


def typed_like(default: Any, text: str) -> Any:
    """`text` as the type of `default` (for family and method options, whose defaults carry the type)."""
    if isinstance(default, bool):
        return parse_bool(text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if default is None and str(text).lower() in NONE:
        return None
    if default is None:
        try:
            return int(text)
        except ValueError:
            return text
    return text


def check_option(owner: str, key: str, value: Any, default: Any) -> None:
    """A family or method option of its default's kind (a string is not a bool, a bool is not a number, a float
    is finite), and a dropout rate in [0, 1); `owner` names it in the one-line error (`family 'mlp'`). The one
    check of option values: `typed_options` applies it to configs, `ensplit.models.registry` to Python calls."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(value, bool):  # a bool is no int, float or string option's value
        ok = default is None
    elif isinstance(default, int):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = True
    if not ok:
        raise EnsplitError(f"option {key} of {owner} needs a {type(default).__name__}, got {value!r}")
    if key == "dropout" and value is not None and not 0 <= value < 1:
        raise EnsplitError(f"option dropout of {owner} must lie in [0, 1), got {value!r}")


def typed_options(defaults: dict[str, Any], given: dict[str, Any], owner: str) -> dict[str, Any]:
    """Options checked against `defaults` (known keys) and typed like them (text is parsed, other values are
    checked by `check_option`); `owner` names them in errors."""
    options: dict[str, Any] = {}
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise EnsplitError(f"unknown option {key!r} for {owner} (known: {known})")
        default = defaults[key]
        if isinstance(value, str):
            try:
                value = typed_like(default, value)
            except ValueError:
                kind = "value" if default is None else type(default).__name__
                raise EnsplitError(f"option {key} of {owner} needs a {kind}, got {value!r}") from None
        check_option(owner, key, value, default)
        options[key] = value
    return options


def describe_validation_error(error: Any, prefix: str = "") -> str:
    """One line from a pydantic ValidationError: `field = value: what is allowed` (the first problem)."""
    problem = error.errors()[0]
    name = prefix + ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
    ctx = problem.get("ctx") or {}
    message = problem["msg"]
    allowed = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}", "expected": "{}"}
    for key, text in allowed.items():
        if key in ctx:
            message = "must be " + text.format(ctx[key])
            break
    if problem["type"] == "unexpected_keyword_argument":
        return f"unknown field {name!r}"
    if problem["type"] in ("too_short", "too_long"):  # a list setting: "methods = []: must name at least 1"
        bound = ctx.get("min_length") if problem["type"] == "too_short" else ctx.get("max_length")
        given = list(problem["input"]) if isinstance(problem.get("input"), (tuple, list)) else problem.get("input")
        return f"{name} = {given!r}: must name at {'least' if problem['type'] == 'too_short' else 'most'} {bound}"
    return f"{name} = {problem.get('input')!r}: {message[0].lower() + message[1:]}"
