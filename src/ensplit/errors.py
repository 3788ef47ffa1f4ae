"""The one exception type that reaches users (the CLI prints it as one line and exits 2), and the one warning
for an old spelling of a name (docs/glossary.md), which the CLI prints as one line on stderr."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any


class EnsplitError(Exception):
    """Bad input or an impossible request, explained in one line (no traceback)."""


class EnsplitDeprecationWarning(DeprecationWarning):
    """An old spelling of an option, keyword or config key: still accepted for one release."""


def warn_renamed(old: str, new: str, stacklevel: int = 2) -> None:
    """Warn once that `old` is deprecated in favour of `new` ("param_budget is deprecated; use budget")."""
    warnings.warn(f"{old} is deprecated; use {new}", EnsplitDeprecationWarning, stacklevel=stacklevel + 1)


def renamed(values: Mapping[str, Any], renames: Mapping[str, str], where: str = "") -> dict[str, Any]:
    """`values` with each deprecated key of `renames` (old -> new) under its new name, warning for each; an old
    and a new spelling given together are refused."""
    result = dict(values)
    for old, new in renames.items():
        if old not in result:
            continue
        if new in result:
            raise EnsplitError(f"{where}{old} and {where}{new} are one setting ({old} is its deprecated name); "
                               "give only " + new)
        warn_renamed(f"{where}{old}", f"{where}{new}", stacklevel=3)
        result[new] = result.pop(old)
    return result
