"""The settings class factory: frozen, strictly validated dataclasses with one-line errors, and field groups.

`config_class` turns a class of annotated fields into a frozen pydantic dataclass whose bad values raise one
`EnsplitError` line (`field = value: what is allowed`). A `FieldGroup` declares fields that several configs
share (the runner's executor and workers, the analysis's bootstrap and splits, ...) once, with their types,
bounds, help and defaults; `config_class(groups=(RunnerFields,))` appends them to a config, so each bound is
declared in one place and every config that takes the field enforces the same one.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from ensplit.errors import EnsplitError
from ensplit.parsing import describe_validation_error

STRICT = ConfigDict(strict=True, extra="forbid")
T = TypeVar("T")


class FieldGroup:
    """Fields shared by several configs, declared once: subclass it with annotated fields and defaults (typed
    options from `ensplit.settings.options`), and optionally a `check(config)` run on every config built
    with the group. A config may give a group field its own default by a plain assignment in its class body
    (`bootstrap = 100`, no annotation): the type, bounds and help stay the group's."""

    title: typing.ClassVar[str] = ""  # the heading of the group's command-line options

    @classmethod
    def declared(cls) -> dict[str, tuple[Any, Any]]:
        """Field name -> (resolved annotation, default or `dataclasses.MISSING`), in declaration order."""
        hints = typing.get_type_hints(cls, include_extras=True)
        names = [n for n in cls.__dict__.get("__annotations__", {}) if n in hints and n != "title"]
        return {name: (hints[name], cls.__dict__.get(name, dataclasses.MISSING)) for name in names}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The group's field names, in order."""
        return tuple(cls.declared())

    @staticmethod
    def check(config: Any) -> None:
        """Checks across the group's fields of a built config (none by default)."""


def _splice(cls: type, groups: Sequence[type[FieldGroup]]) -> None:
    """Append each group's fields to `cls` (after its own, in group order), with the class's own default for a
    group field where its body assigns one."""
    annotations = dict(cls.__dict__.get("__annotations__", {}))
    for group in groups:
        for name, (annotation, default) in group.declared().items():
            if name in annotations:
                raise TypeError(f"{cls.__name__}.{name} is declared by {group.__name__}: drop it from the class "
                                "(assign a value without an annotation to change its default)")
            annotations[name] = annotation
            if name in cls.__dict__:
                continue
            if default is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}: {group.__name__}.{name} has no default; assign one in the class")
            setattr(cls, name, copy.copy(default) if isinstance(default, dataclasses.Field) else default)
    cls.__annotations__ = annotations


def _with_checks(cls: type, groups: Sequence[type[FieldGroup]]) -> None:
    """Run the groups' checks after validation, before the class's own `__post_init__`."""
    checks = [g.check for g in groups if g.check is not FieldGroup.check]
    if not checks:
        return
    own: Callable[[Any], None] | None = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:
        for check in checks:
            check(self)
        if own is not None:
            own(self)

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]


def _make(cls: type[T], groups: tuple[type[FieldGroup], ...]) -> type[T]:
    _splice(cls, groups)
    _with_checks(cls, groups)
    validated = dataclass(frozen=True, config=STRICT)(cls)
    init = validated.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as error:
            raise EnsplitError(describe_validation_error(error)) from None

    validated.__init__ = __init__  # type: ignore[method-assign]
    validated.__field_groups__ = groups  # type: ignore[attr-defined]
    return validated


@overload
def config_class(cls: type[T], *, groups: Sequence[type[FieldGroup]] = ()) -> type[T]: ...
@overload
def config_class(cls: None = None, *, groups: Sequence[type[FieldGroup]] = ()) -> Callable[[type[T]], type[T]]: ...


def config_class(cls: type[T] | None = None, *, groups: Sequence[type[FieldGroup]] = ()) -> Any:
    """A frozen, strictly validated dataclass (pydantic) whose bad values raise one-line EnsplitErrors:
    `field = value: what is allowed`. Every recipe and experiment config is declared with it: `@config_class`,
    or `@config_class(groups=(RunnerFields,))` to append shared field groups."""
    if cls is None:
        return lambda target: _make(target, tuple(groups))
    return _make(cls, tuple(groups))


def field_groups(cls: type) -> tuple[type[FieldGroup], ...]:
    """The field groups a config class was built with."""
    return getattr(cls, "__field_groups__", ())


def is_config_class(value: Any) -> bool:
    """Whether `value` is a validated settings class (a pydantic dataclass)."""
    return isinstance(value, type) and hasattr(value, "__pydantic_fields__")
