"""Config files: TOML read with one-line errors, and settings written back as the TOML they were read from.

The layout (`ensplit.recipe`): the recipe's fields at the top, each nested config (`[train]`) as a table, then
the experiment's own fields in a table named after it (`[study]`, ...). A file written here reads back into
equal settings.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ensplit.errors import EnsplitError
from ensplit.settings.factory import is_config_class

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BASE_FIELD = "recipe"  # an experiment's settings hold the recipe, whose fields sit at the top of the file


def load_toml(path: str | Path) -> dict[str, Any]:
    """A TOML config file as a mapping; a missing, unreadable or malformed file is a one-line error."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise EnsplitError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise EnsplitError(f"config file {path} is a folder, not a TOML file") from None
    except UnicodeDecodeError:
        raise EnsplitError(f"config file {path} is not UTF-8 text") from None
    except OSError as error:
        raise EnsplitError(f"config file {path} cannot be read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise EnsplitError(f"config file {path} is not valid TOML: {error}") from None


def loads_toml(text: str, what: str = "config") -> dict[str, Any]:
    """TOML text as a mapping; malformed text is a one-line error naming `what`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise EnsplitError(f"{what} is not valid TOML: {error}") from None


def toml_value(value: Any) -> str:
    """One value as TOML: booleans, numbers, arrays (lists, tuples), inline tables, else a quoted string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in value.items()) + "}"
    return json.dumps(str(value))


def _lines(values: dict[str, Any]) -> list[str]:
    return [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]


def settings_to_toml(settings: Any, table: str) -> str:
    """A config file for `settings` (recipe at the top, its nested configs such as `[train]`, then `[table]`);
    None values are left out."""
    base = getattr(settings, BASE_FIELD) if hasattr(settings, BASE_FIELD) else settings
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for found in dataclasses.fields(base):
        value = getattr(base, found.name)
        if is_config_class(type(value)):
            nested[found.name] = dataclasses.asdict(value)
        else:
            top[found.name] = value
    lines = _lines(top)
    for name, values in nested.items():
        lines += ["", f"[{name}]", *_lines(values)]
    if settings is not base:
        own = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != BASE_FIELD}
        lines += ["", f"[{table}]", *_lines(own)]
    return "\n".join(lines) + "\n"
