"""`compare`'s settings: which methods, how many members, at which width or parameter budget, and the sweeps.

A compare folder's identity is its recipe alone (as recommend's): the methods, members, budget and sweeps only
choose which jobs are planned, so a rerun asking for one more method trains that method and reuses the rest; the
executor (local, process, ray) only says where the jobs run.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ensplit.ensembles import method_names
from ensplit.ensembles.methods import METHOD_OPTIONS
from ensplit.errors import EnsplitError
from ensplit.parsing import COUNT, require_distinct, typed_options
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.identity import RecipeIdentified
from ensplit.settings import RunnerFields, config_class

Method = Literal["single", "deep", "batchensemble", "mimo", "mixture", "grouped", "multihead"]


@config_class(groups=(RunnerFields,))
class CompareConfig(RecipeIdentified):
    """Which methods to compare, how many members, and at which width or parameter budget."""

    EXPERIMENT: ClassVar[str] = "compare"  # named in the folder's identity

    recipe: Recipe = field(default_factory=Recipe)
    methods: Annotated[tuple[Method, ...], Field(min_length=1, description="methods, comma-separated (single, "
                                                 "deep, batchensemble, mimo, mixture, grouped, multihead)")] = (
        "single", "deep", "batchensemble", "mimo", "mixture", "grouped")
    members: Annotated[int, Field(ge=1, le=1024, description="ensemble members")] = 4
    width: Annotated[int, Field(ge=1, le=1_000_000, description="width of every method without a budget (the "
                                                                 "mixture's backbone with one)")] = 128
    budget: Annotated[int, Field(ge=1, le=10**12, description="parameter budget P: size every method to P "
                                                              "parameters (widest that fits; mixture: its bank knob)"),
                      COUNT] | None = None
    method_options: Annotated[dict[str, Any], Field(description="METHOD.KEY=VALUE, e.g. mimo.batch_repetitions=2 "
                                                                "(repeatable)")] = field(default_factory=dict)
    sweep_budgets: Annotated[tuple[Annotated[float, Field(gt=0, le=1000)], ...], Field(
        description="report: re-run every method at these multiples of the budget")] = ()
    sweep_members: Annotated[tuple[Annotated[int, Field(ge=1, le=1024)], ...], Field(
        description="report: re-run every method with these numbers of members")] = ()
    sweep_epochs: Annotated[int, Field(ge=1, le=100_000, description="epochs of sweep runs (default: the "
                                                                      "recipe's)")] | None = None

    RENAMED: ClassVar[dict[str, str]] = {"param_budget": "budget"}  # deprecated spellings (docs/glossary.md)

    def __post_init__(self) -> None:
        for name in ("methods", "sweep_budgets", "sweep_members"):
            require_distinct(name, getattr(self, name))
        object.__setattr__(self, "method_options", nested_method_options(self.method_options))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CompareConfig:
        return build_settings(cls, "compare", values)


def nested_method_options(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{"mimo.batch_repetitions": "2"}` or `{"mimo": {"batch_repetitions": 2}}` -> typed nested options."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            method, given = key, value
        else:
            method, dot, name = key.partition(".")
            if not dot:
                raise EnsplitError(f"method_options: {key!r} must be METHOD.KEY (e.g. mimo.batch_repetitions)")
            given = {name: value}
        if method not in METHOD_OPTIONS:
            raise EnsplitError(f"method_options: unknown method {method!r}; known: {', '.join(method_names())}")
        defaults = {k: (1 if k == "budget" else v) for k, v in METHOD_OPTIONS[method].items()}
        nested.setdefault(method, {}).update(typed_options(defaults, given, f"method {method!r}"))
    return nested
