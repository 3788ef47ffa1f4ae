"""What a config's fields declare, read back: types and constraints, defaults, and one-line help text.

The command-line options, their `--help` lines and the config-file checks are all generated from these, so
a field's help is written once, beside its bounds.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from pydantic.fields import FieldInfo


def field_annotations(cls: type) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    """Field name -> (resolved annotation, constraint metadata) of a validated config dataclass."""
    return {name: (info.annotation, tuple(info.metadata)) for name, info in cls.__pydantic_fields__.items()}


def _description(annotation: Any) -> str | None:
    """The description of a `Field` inside an annotation (`Annotated[X, Field(...)] | None` keeps it there)."""
    for arg in typing.get_args(annotation):
        if isinstance(arg, FieldInfo) and arg.description:
            return arg.description
        found = _description(arg)
        if found:
            return found
    return None


def field_default(cls: type, name: str) -> Any:
    """A settings field's default value (its factory's product), or `dataclasses.MISSING` when it has none."""
    found = next(f for f in dataclasses.fields(cls) if f.name == name)
    if found.default is not dataclasses.MISSING:
        return found.default
    return found.default_factory() if found.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def field_help(cls: type) -> dict[str, str]:
    """Field name -> its one-line help (the Field description, wherever the annotation holds it)."""
    return {name: info.description or _description(info.annotation) or name.replace("_", " ")
            for name, info in cls.__pydantic_fields__.items()}


def default_text(cls: type, name: str) -> str:
    """"; default 40" for a field's help ("" when it has none, or it is None or empty)."""
    value = field_default(cls, name)
    if value is dataclasses.MISSING or value in (None, {}, ()):
        return ""
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    if isinstance(value, bool):
        value = str(value).lower()
    return f"; default {value}"


def range_text(metadata: Iterable[Any]) -> str:
    """The bounds a field's validation enforces, for its help ("; 3 to 100", "; > 0, <= 1"), so a user reads
    them before an error tells them."""
    bounds = {kind: getattr(item, kind) for item in metadata for kind in ("ge", "gt", "le", "lt")
              if hasattr(item, kind)}
    if "ge" in bounds and "le" in bounds:
        return f"; {bounds['ge']:,} to {bounds['le']:,}"
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return ("; " + ", ".join(f"{symbols[k]} {v:,}" for k, v in bounds.items())) if bounds else ""


def option_help(cls: type, names: Iterable[str] | None = None) -> dict[str, str]:
    """Field name -> its command-line help (the help line, its default and its range), for `names` (default:
    every field)."""
    helps, annotations = field_help(cls), field_annotations(cls)
    return {name: helps[name] + default_text(cls, name) + range_text(annotations[name][1])
            for name in (annotations if names is None else names)}
