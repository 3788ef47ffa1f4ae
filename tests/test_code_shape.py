"""The shape the style guide asks of `src/` (issue 24): small modules, short functions.

A module over `MAX_MODULE_LINES` lines or a function over `MAX_FUNCTION_LINES` (decorators and docstring
included) is a sign it does more than one job; split it rather than raise the bound.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ensplit"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MODULES = sorted(SRC.rglob("*.py"))


def long_functions(source: str, limit: int) -> list[tuple[str, int]]:
    """Every function (methods and nested ones too) longer than `limit` lines, with its length."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > limit:
                found.append((node.name, length))
    return found


def test_the_package_is_found() -> None:
    assert len(MODULES) > 50, SRC


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_is_small(module: Path) -> None:
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module.relative_to(SRC)}: {lines} lines"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_functions_are_short(module: Path) -> None:
    assert long_functions(module.read_text(), MAX_FUNCTION_LINES) == []


def test_the_function_check_sees_a_long_method_with_its_decorator() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(59))
    source = f"class A:\n    @staticmethod\n    def f():\n{body}\n"  # 61 lines with the decorator
    assert long_functions(source, 60) == [("f", 61)]
    assert long_functions(source, 61) == []
