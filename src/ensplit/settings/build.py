"""A config from text or config-file values: each value converted to its field's type, every failure one line.

`build(cls, values)` is how every mapping (a TOML table, the command-line options, Python keywords) becomes a
validated config: strings are parsed like flags (`ensplit.parsing`), a misspelt name gets the closest known
one, and a deprecated name (the class's `RENAMED`, old -> new) is accepted for one release with a warning.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from ensplit.errors import EnsplitError, renamed
from ensplit.parsing import from_config
from ensplit.settings.factory import is_config_class
from ensplit.settings.fields import field_annotations


def closest(name: str, candidates: Sequence[str]) -> str:
    """' (did you mean 'family'?)' for the known name closest to a misspelt one, else ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def own_fields(cls: type) -> list[str]:
    """The fields of `cls` given as plain values: all but nested configs (a recipe, a `[train]` table)."""
    return [name for name, (annotation, _) in field_annotations(cls).items() if not is_config_class(annotation)]


def unknown_field(cls: type, name: str, also: Sequence[str] = (), also_words: str = "") -> str:
    """One line for a misspelt setting: the closest of its own fields and `also` (names given elsewhere, e.g.
    the recipe's), then the fields of `cls` and `also_words` ("; and the recipe's fields (see --help)")."""
    own = own_fields(cls)
    return (f"unknown field {name!r}{closest(name.rsplit('.', 1)[-1], [*own, *also])}; known: {', '.join(own)}"
            f"{also_words}")


def build(cls: type, values: Mapping[str, Any], where: str = "", also: Sequence[str] = (),
          also_words: str = "") -> Any:
    """`cls(**values)` with config-file or command-line values converted to each field's type and every
    failure turned into one line naming the field (prefixed by `where`, e.g. `train.`), the value and what is
    allowed. `also` and `also_words` extend the unknown-field line (see `unknown_field`)."""
    annotations = field_annotations(cls)
    kwargs: dict[str, Any] = {}
    values = renamed(values, getattr(cls, "RENAMED", {}), where)  # old spellings, for one release
    for name, value in values.items():
        if name not in annotations:
            raise EnsplitError(unknown_field(cls, where + name, also, also_words))
        try:
            kwargs[name] = from_config(value, *annotations[name])
        except (ValueError, TypeError) as error:
            raise EnsplitError(f"{where}{name} = {value!r}: {error}") from None
    return cls(**kwargs)
