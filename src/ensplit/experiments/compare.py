"""Parameter-sharing ensembles side by side at one width or one parameter budget (the MixtureEnsembles paper).

For each method: build it (at the width, or the widest that fits the budget), train it with the recipe,
predict member log-probabilities `[M, N, C]` and score the ensemble (probabilities averaged, science.md §1;
CNLL by test-time cross-validation). Optional sweeps re-run every method over budgets and member counts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import Field

from ensplit._version import provenance
from ensplit.analysis.ensemble_scores import score
from ensplit.data.corruptions import corrupted_test_sets
from ensplit.data.dataset import Dataset
from ensplit.ensembles import build_method, method_names, method_param_count, solve_method_width
from ensplit.ensembles.cost import forward_flops
from ensplit.ensembles.methods import METHOD_OPTIONS, MethodModel
from ensplit.errors import EnsplitError
from ensplit.files import atomic_write_text
from ensplit.jsonable import to_jsonable
from ensplit.metrics import classification_metrics, ensemble_log_probs
from ensplit.parsing import COUNT, require_distinct, typed_options
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.resources import check_training
from ensplit.store import folder_lock
from ensplit.store.ownership import claim_folder, json_with, report_and
from ensplit.train import predict_log_probs, train
from ensplit.train.config import config_class

Method = Literal["single", "deep", "batchensemble", "mimo", "mixture", "grouped", "multihead"]
RESULT_KEYS = ("method", "width", "members", "params", "flops_per_example", "seconds_per_epoch", "accuracy",
               "member_accuracy", "nll", "cnll", "ece", "brier", "disagreement", "diversity",
               "corrupted_accuracy", "corrupted_nll", "corrupted_ece")
FLOPS_BATCH = 128  # FLOPs per object are measured on a batch of this size (see forward_flops)


@config_class
class CompareConfig:
    """Which methods to compare, how many members, and at which width or parameter budget."""

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


def method_width(method: str, config: CompareConfig, members: int, budget: int | None, dataset: Dataset) -> int:
    """The width `method` runs at: the configured width, or the widest within `budget`."""
    if budget is None or method == "mixture":
        return config.width
    r = config.recipe
    return solve_method_width(method, budget, r.family, 1 if method == "single" else members, r.depth,
                              dataset.in_shape, dataset.num_classes, r.options,
                              **config.method_options.get(method, {}))


def _options(method: str, config: CompareConfig, budget: int | None, dataset: Dataset) -> dict[str, Any]:
    options = dict(config.method_options.get(method, {}))
    if method == "mixture" and options.get("budget") is None:
        options["budget"] = budget or config.recipe.params(config.width, dataset)
    return options


def corrupted_scores(model: MethodModel, dataset: Dataset, precision: str = "fp32") -> dict[str, float | None]:
    """Mean ensemble accuracy, NLL and ECE over every corruption and severity of the test set (None if none)."""
    values: dict[str, list[float]] = {"accuracy": [], "nll": [], "ece": []}
    for _, _, x in corrupted_test_sets(dataset):
        log_probs = predict_log_probs(model, x, dataset, precision=precision).double()
        metrics = classification_metrics(ensemble_log_probs(log_probs), dataset.y_test)
        for key in values:
            values[key].append(float(metrics[key]))
    return {f"corrupted_{k}": (sum(v) / len(v) if v else None) for k, v in values.items()}


def run_method(method: str, config: CompareConfig, dataset: Dataset, members: int | None = None,
               budget: int | None = None, epochs: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Build, train and score one method; returns one row with RESULT_KEYS and the method's `info`."""
    recipe = config.recipe
    members = config.members if members is None else members
    width = method_width(method, config, members, budget, dataset)
    options = _options(method, config, budget, dataset)
    closed_form = method_param_count(method, recipe.family, members, width, recipe.depth, dataset.in_shape,
                                     dataset.num_classes, recipe.options, **options)
    check_training(closed_form, recipe.train.optimizer, dataset.x_train.device, f"training {method} at width {width}",
                   "lower --width or --budget")
    model = build_method(method, recipe.family, members, width, recipe.depth, dataset.in_shape, dataset.num_classes,
                         recipe.seed, recipe.options, **options)
    params = sum(p.numel() for p in model.parameters())
    if params != closed_form:  # a bug, never a user error
        raise RuntimeError(f"{method}: built {params} parameters, closed form says {closed_form}")
    model = model.to(dataset.x_train.device)
    train_config = dataclasses.replace(recipe.train, batching=model.batching, epochs=epochs or recipe.train.epochs)
    seeds = [recipe.seed + i for i in range(model.members)]
    result = train(model, dataset, train_config, seeds, progress=progress, index_sampler=model.index_sampler,
                   description=f"{method} (w={width})")
    log_probs = predict_log_probs(model, dataset.x_test, dataset, precision=train_config.precision)
    epoch_seconds = result.seconds_per_epoch[1:] or result.seconds_per_epoch  # the first epoch carries warm-up
    sample = dataset.prepare(dataset.x_test[:FLOPS_BATCH]).to(next(model.parameters()).dtype)
    row = {"method": method, "width": width, "members": 1 if method == "single" else members, "params": params,
           "flops_per_example": forward_flops(model, sample),
           "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds),
           **score(log_probs.cpu(), dataset.y_test.cpu()),
           **corrupted_scores(model, dataset, train_config.precision)}
    row = {k: (None if isinstance(row[k], float) and not math.isfinite(row[k]) else row[k]) for k in RESULT_KEYS}
    if any(result.failed):
        print(f"ensplit compare: {method}: {sum(result.failed)} member(s) diverged", file=sys.stderr)
    return {**row, "info": dict(model.info)}


def _log(message: str, progress: bool) -> None:
    if progress:
        print(f"ensplit compare: {message}", file=sys.stderr, flush=True)


def check_method_options(config: CompareConfig, dataset: Dataset) -> None:
    """Build every method once on the meta device (no memory, no training), so that a method option out of range
    (e.g. mimo.batch_repetitions=0) is refused before the first method trains; the mixture's options are
    checked by its closed-form plan."""
    r = config.recipe
    for method in config.methods:
        options = _options(method, config, None, dataset)
        try:
            if method == "mixture":
                method_param_count(method, r.family, config.members, config.width, r.depth, dataset.in_shape,
                                   dataset.num_classes, r.options, **options)
                continue
            with torch.device("meta"):
                build_method(method, r.family, config.members, config.width, r.depth, dataset.in_shape,
                             dataset.num_classes, family_options=r.options, **options)
        except (ValueError, TypeError) as error:
            raise EnsplitError(f"method {method!r}: {error} (see its --method-option values)") from None


def fitting_methods(config: CompareConfig, dataset: Dataset, methods: tuple[str, ...], members: int,
                    budget: int | None) -> tuple[list[str], dict[str, str]]:
    """The methods that fit `budget` (all of them without one), and why each of the others does not; planned
    from closed-form counts, before anything is built or trained."""
    fitting, reasons = [], {}
    for method in methods:
        try:
            width = method_width(method, config, members, budget, dataset)
            options = _options(method, config, budget, dataset)
            if method == "mixture" and budget is not None:  # the bank knob, not the width, must fit
                r = config.recipe
                method_param_count(method, r.family, members, width, r.depth, dataset.in_shape, dataset.num_classes,
                                   r.options, **options)
            fitting.append(method)
        except EnsplitError as error:
            if budget is None:
                raise
            reasons[method] = str(error)
    return fitting, reasons


def run_methods(config: CompareConfig, dataset: Dataset, methods: tuple[str, ...], members: int, budget: int | None,
                epochs: int | None, progress: bool, required: bool = False) -> list[dict[str, Any]]:
    """Every method that fits once; at a budget, the others are skipped with one line on stderr. With
    `required`, a budget that fits no method is refused before anything is trained."""
    fitting, reasons = fitting_methods(config, dataset, methods, members, budget)
    if required and not fitting:
        raise EnsplitError(f"no method fits budget = {budget:,} with {members} members; raise the budget or "
                           "lower the members")
    if reasons:
        print(f"ensplit compare: skipping {', '.join(reasons)} (they do not fit {budget:,} parameters with "
              f"{members} members)", file=sys.stderr)
    rows = []
    for method in fitting:
        row = run_method(method, config, dataset, members, budget, epochs, progress)
        _log(f"{method}: width {row['width']}, {row['members']} member(s), {row['params']:,} parameters, "
             f"accuracy {row['accuracy']:.4f}, CNLL {row['cnll']:.4f}", progress)
        rows.append(row)
    return rows


@dataclass
class CompareResult:
    """Rows of the comparison (and of the sweeps). `to_json()` is what `ensplit compare --json` prints."""

    config: CompareConfig
    rows: list[dict[str, Any]]
    budget_rows: list[dict[str, Any]] = field(default_factory=list)
    member_rows: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({"recipe": self.config.recipe.to_json(), "members": self.config.members,
                            "budget": self.config.budget, "width": self.config.width,
                            "methods": self.rows, "budget_sweep": self.budget_rows, "member_sweep": self.member_rows,
                            "report": None if self.report is None else str(self.report), **provenance()})


def run_compare(config: CompareConfig | None = None, out: str | Path | None = None,
                progress: bool = True) -> CompareResult:
    """Train and score every method (and the sweeps); with `out`, write `out/report.html`."""
    config = config or CompareConfig()
    if out is None:
        return _compare(config, None, progress)
    with folder_lock(out, "compare"):  # an unusable --out is refused before any training
        results = json_with(("ensplit_version", "ensplit"), "methods")  # "ensplit": a folder of an older release
        claim_folder(Path(out), "compare", report_and({"results.json": results}))
        return _compare(config, Path(out), progress)


def _compare(config: CompareConfig, out: Path | None, progress: bool) -> CompareResult:
    """The comparison itself; the caller holds `out`'s lock."""
    dataset = config.recipe.load_data()
    config.recipe.params(config.width, dataset)  # family, width, depth and options fit the data
    check_method_options(config, dataset)
    rows = run_methods(config, dataset, config.methods, config.members, config.budget, None, progress,
                       required=True)
    budget_rows: list[dict[str, Any]] = []
    member_rows: list[dict[str, Any]] = []
    reference = config.budget or config.recipe.params(config.width, dataset)
    for factor in config.sweep_budgets:
        budget_rows += run_methods(config, dataset, config.methods, config.members, int(factor * reference),
                                   config.sweep_epochs, progress)
    for m in config.sweep_members:
        member_rows += run_methods(config, dataset, tuple(x for x in config.methods if x != "single"), m,
                                   config.budget, config.sweep_epochs, progress)
    result = CompareResult(config, rows, budget_rows, member_rows)
    if out is not None:
        from ensplit.reports.compare_report import write_compare_report

        result.report = write_compare_report(out, result)
        atomic_write_text(out / "results.json", json.dumps(result.to_json(), indent=1))
        _log(f"report written to {result.report} (and results.json beside it)", True)
    return result

