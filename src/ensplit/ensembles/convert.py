"""Converters that swap layers inside nested models by their qualified names."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def replace_layers(model: nn.Module, replace: Callable[[str, nn.Module], nn.Module | None]) -> list[str]:
    """Replace every submodule for which `replace(qualified_name, module)` returns a module.

    Replaced modules are not descended into. Returns the qualified names replaced, in model order.
    """
    replaced: list[str] = []

    def visit(parent: nn.Module, prefix: str) -> None:
        for child_name, child in list(parent.named_children()):
            name = f"{prefix}{child_name}"
            new = replace(name, child)
            if new is not None:
                setattr(parent, child_name, new)
                replaced.append(name)
            else:
                visit(child, f"{name}.")

    visit(model, "")
    return replaced


def modules_with_own_parameters(model: nn.Module, exclude: tuple[type, ...]) -> list[str]:
    """Qualified names of modules holding parameters directly, other than instances of `exclude`."""
    return [
        name for name, module in model.named_modules()
        if not isinstance(module, exclude) and any(True for _ in module.parameters(recurse=False))
    ]
