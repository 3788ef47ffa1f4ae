"""`ensplit compare`: train ensemble methods side by side at a width or a parameter budget, one table."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ensplit.cli_types import family_options, parse_count
from ensplit.errors import EnsplitError
from ensplit.models import count_params

NAME = "compare"
HELP = "train deep, BatchEnsemble, MIMO, MixtureEnsemble, grouped and multihead ensembles; compare them"
DEFAULT_METHODS = "single,deep,batchensemble,mimo,mixture,grouped"


def _csv(kind: type):
    def parse(text: str) -> list:
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            message = f"expected a comma-separated list of {kind.__name__}, got {text!r}"
            raise argparse.ArgumentTypeError(message) from None
        if not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected positive values, got {text!r}")
        return values
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", default="mlp", help="model family (default mlp)")
    p.add_argument("--width", type=int, default=128, help="width of the single network / the mixture backbone")
    p.add_argument("--depth", type=int, default=None, help="family depth (default: the family's)")
    p.add_argument("--members", type=int, default=4, help="ensemble members (default 4)")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS}; "
                   "also: multihead)")
    p.add_argument("--param-budget", type=parse_count, default=None, metavar="P",
                   help="size every method to P parameters (widest that fits; mixture: its bank knob)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="adam", choices=("sgd", "adam", "adamw"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="bf16: autocast in training and "
                   "evaluation")
    p.add_argument("--dataset", default="mnist1d", help="'mnist1d' or a path to image data")
    p.add_argument("--train-subset", type=int, default=None, help="use N training objects (quick runs)")
    p.add_argument("--test-subset", type=int, default=None, help="use N test objects (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="family option")
    p.add_argument("--method-option", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="method option, e.g. mimo.batch_repetitions=2, mixture.grouping=single")
    p.add_argument("--report", default=None, metavar="DIR", help="write DIR/report.html (table and sweeps)")
    p.add_argument("--sweep-budgets", type=_csv(float), default=None, metavar="F1,F2,...",
                   help="report: re-run every method at these multiples of the budget (mixture: its knob)")
    p.add_argument("--sweep-members", type=_csv(int), default=None, metavar="M1,M2,...",
                   help="report: re-run every method with these numbers of members")
    p.add_argument("--sweep-epochs", type=int, default=None, help="epochs for sweep runs (default --epochs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _method_options(pairs: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    from ensplit.ensembles.methods import METHOD_OPTIONS

    options: dict[str, dict[str, Any]] = {}
    for text in pairs:
        key, sep, value = text.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or method not in METHOD_OPTIONS or name not in METHOD_OPTIONS[method]:
            raise EnsplitError(f"--method-option needs METHOD.KEY=VALUE with a known key, got {text!r}")
        default = METHOD_OPTIONS[method][name]
        try:
            if isinstance(default, bool):
                typed: Any = value.lower() in ("1", "true", "yes")
            elif name == "budget":
                typed = parse_count(value)
            elif default is None:
                typed = value
            else:
                typed = type(default)(value)
        except (ValueError, argparse.ArgumentTypeError):
            raise EnsplitError(f"--method-option {key} got a bad value {value!r}") from None
        options.setdefault(method, {})[name] = typed
    return options


def _setup(args: argparse.Namespace):
    from ensplit.data import load_dataset
    from ensplit.ensembles.methods import method_names
    from ensplit.study.compare import CompareSpec
    from ensplit.train import TrainConfig

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in method_names()]
    if unknown or not methods:
        raise EnsplitError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; known: "
                           f"{', '.join(method_names())}")
    if args.members < 1 or args.width < 1 or args.epochs < 1:
        raise EnsplitError("--members, --width and --epochs must be positive")
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    dataset = load_dataset(args.dataset).subset(args.train_subset, args.test_subset, seed=args.seed).to(device)
    spec = CompareSpec(args.family, args.width, args.members, args.depth, args.param_budget,
                       family_options(args.family, [tuple(o.partition("=")[::2]) for o in args.option]),
                       _method_options(args.method_option, methods), args.seed)
    count_params(spec.family, spec.width, spec.depth, dataset.in_shape, dataset.num_classes, **spec.family_options)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                         weight_decay=args.weight_decay, precision=args.precision)
    return methods, dataset, spec, config


def _runs(methods, spec, dataset, config, progress: bool) -> list[dict[str, Any]]:
    from ensplit.study.compare import run_method

    rows = []
    for method in methods:
        try:
            row = run_method(method, spec, dataset, config, progress=progress)
        except EnsplitError as error:
            if spec.budget is None:
                raise
            print(f"ensplit compare: skipping {method}: {error}", file=sys.stderr)
            continue
        print(f"ensplit compare: {method}: width {row['width']}, {row['members']} member(s), "
              f"{row['params']:,} parameters, accuracy {row['accuracy']:.4f}", file=sys.stderr)
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from ensplit.study.compare import RESULT_KEYS

    methods, dataset, spec, config = _setup(args)
    progress = not args.no_progress
    rows = _runs(methods, spec, dataset, config, progress)
    if args.report:
        sweep_config = replace(config, epochs=args.sweep_epochs or config.epochs)
        budget_rows, member_rows = [], []
        if args.sweep_budgets:
            reference = spec.budget or count_params(spec.family, spec.width, spec.depth, dataset.in_shape,
                                                    dataset.num_classes, **spec.family_options)
            for factor in args.sweep_budgets:
                budget_rows += _runs(methods, replace(spec, budget=int(factor * reference)), dataset, sweep_config,
                                     progress)
        for m in args.sweep_members or []:
            member_rows += _runs([x for x in methods if x != "single"], replace(spec, members=m), dataset,
                                 sweep_config, progress)
        path = write_compare_report(Path(args.report), args, rows, budget_rows, member_rows)
        print(f"ensplit compare: report written to {path}", file=sys.stderr)
    return [{k: row[k] for k in RESULT_KEYS} for row in rows]


def _table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"method": r["method"], "width": r["width"], "members": r["members"],
             **{k: r[k] for k in r if k not in ("method", "width", "members", "info")}} for r in rows]


def write_compare_report(directory: Path, args: argparse.Namespace, rows, budget_rows, member_rows) -> Path:
    from ensplit.report.compare_figures import metric_vs
    from ensplit.report.html import Section, write_report

    budget = f"{args.param_budget:,} parameters" if args.param_budget else f"width {args.width}"
    sections = [Section(f"Methods at {budget}, {args.members} members",
                        f"{args.family} on {args.dataset}, {args.epochs} epochs, {args.optimizer} lr {args.lr}. "
                        "Metrics of the ensemble (probabilities averaged); CNLL by test-time cross-validation; "
                        "FLOPs per test example (all members); corrupted: mean over corruptions and severities.",
                        table=_table(rows))]
    if budget_rows:
        sections.append(Section(
            "Accuracy and CNLL against parameters",
            "Every method sized to each budget (widest network that fits); MixtureEnsembles keep the backbone "
            "width and take the budget as their template-bank knob (seed 003, Figure 3 left).",
            figures=[(metric_vs(budget_rows, "params", "accuracy", "accuracy vs parameters", True), "accuracy"),
                     (metric_vs(budget_rows, "params", "cnll", "CNLL vs parameters", True), "CNLL")],
            table=_table(budget_rows)))
    if member_rows:
        sections.append(Section(
            "Accuracy and CNLL against the number of members",
            "The same budget (or width) with more or fewer members (seed 003, Figure 3 right).",
            figures=[(metric_vs(member_rows, "members", "accuracy", "accuracy vs members"), "accuracy"),
                     (metric_vs(member_rows, "members", "cnll", "CNLL vs members"), "CNLL")],
            table=_table(member_rows)))
    return write_report(directory / "report.html", "ensplit compare", sections,
                        subtitle=" ".join(sys.argv[1:]) if sys.argv else "")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(result: list[dict[str, Any]]) -> str:
    columns = [("method", "method"), ("params", "params"), ("flops", "FLOPs/ex"),
               ("train_seconds_per_epoch", "s/epoch"),
               ("accuracy", "acc"), ("nll", "NLL"), ("cnll", "CNLL"), ("ece", "ECE%"), ("brier", "Brier"),
               ("disagreement", "disagr"), ("diversity", "divers"), ("corrupted_accuracy", "c-acc"),
               ("corrupted_nll", "c-NLL")]
    cells = [[h for _, h in columns]] + [[_fmt(r[k], 2 if k in ("ece", "train_seconds_per_epoch") else 4)
                                          for k, _ in columns] for r in result]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])
