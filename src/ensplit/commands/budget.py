"""`ensplit budget count|solve|splits|equivalents`: exact parameter counts and designs at a budget."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ensplit._version import provenance
from ensplit.commands._options import add_deprecated_flag
from ensplit.errors import EnsplitError
from ensplit.models import count_params, get_family, scaling
from ensplit.parsing import key_value, parse_count, typed_options
from ensplit.settings import check_int
from ensplit.settings.options import BudgetKnob

NAME = "budget"
HELP = "parameter counts, FLOPs, widths at a budget, memory splits and width/depth-equivalent ensembles"

def _common(p: argparse.ArgumentParser, depth_required: bool = False) -> None:
    p.add_argument("--family", required=True, help="model family (see the registry)")
    p.add_argument("--depth", type=int, required=depth_required,
                   help="depth of the single network (required)" if depth_required else "depth (default: the family's)")
    p.add_argument("--num-classes", type=int, help="number of classes (default: the family's)")
    add_deprecated_flag(p, "--classes", "--num-classes", "num_classes", type=int)
    p.add_argument("--in-shape", type=int, nargs="+", metavar="N", help="input shape, e.g. 3 32 32")
    p.add_argument("--family-option", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="family option, e.g. shortcut=B, norm=true, cardinality=16 (repeatable)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the machine-readable result to stdout")


def _budget(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--budget", type=parse_count, help=text + " (required)")
    add_deprecated_flag(p, "--params", "--budget", "budget", type=parse_count)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the machine-readable result to stdout")
    sub = parser.add_subparsers(dest="budget_command", metavar="ACTION", required=True,
                                parser_class=type(parser))
    p = sub.add_parser("count", help="exact parameter count and FLOPs per example")
    p.add_argument("--width", type=int, required=True, help="the family's width knob")
    _common(p)
    p = sub.add_parser("solve", help="largest width within a parameter budget")
    _budget(p, "parameter budget P, e.g. 1e6 or 36.5M")
    _common(p)
    p = sub.add_parser("splits", help="n = 1..K members: each member's width within a budget, and the slack")
    _budget(p, "parameter budget P of the whole ensemble, e.g. 1e6 or 36.5M")
    p.add_argument("--members-max", type=int, default=8, help="largest ensemble size (default 8)")
    add_deprecated_flag(p, "--max-members", "--members-max", "members_max", type=int)
    _common(p)
    p = sub.add_parser("equivalents", help="width- and depth-equivalent ensembles of a single network")
    p.add_argument("--width", type=int, required=True, help="the single network's width knob")
    p.add_argument("--members", type=int, required=True, help="ensemble size K")
    _common(p, depth_required=True)


def _check(args: argparse.Namespace) -> None:
    if getattr(args, "budget", 0) is None:  # required, under its new name or its old one
        raise EnsplitError("--budget is required (a parameter budget, e.g. 1e6 or 36.5M)")
    for name in ("width", "depth", "num_classes", "members", "members_max"):
        if getattr(args, name, None) is not None:
            check_int(name, getattr(args, name), BudgetKnob)
    if args.in_shape and (len(args.in_shape) > 4 or any(not 1 <= n <= 10**6 for n in args.in_shape)):
        raise EnsplitError(f"in_shape = {args.in_shape}: must be 1 to 4 sizes, each in [1, 1e6]")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The action's answer, with the provenance keys every results JSON carries."""
    return {**_answer(args), **provenance()}


def _answer(args: argparse.Namespace) -> dict[str, Any]:
    _check(args)
    options = typed_options(get_family(args.family).options, dict(args.family_option), f"family {args.family!r}")
    kw: dict[str, Any] = dict(in_shape=tuple(args.in_shape) if args.in_shape else None, num_classes=args.num_classes,
                              **options)
    if args.budget_command == "count":
        return {"params": count_params(args.family, args.width, args.depth, **kw),
                "flops_per_example": scaling.flops_per_example(args.family, args.width, args.depth, **kw)}
    if args.budget_command == "solve":
        width = scaling.solve_width(args.family, args.budget, args.depth, **kw)
        return {"width": width, "params": count_params(args.family, width, args.depth, **kw), "budget": args.budget}
    if args.budget_command == "splits":
        splits = scaling.memory_splits(args.family, args.budget, args.depth, args.members_max, **kw)
        return {"budget": args.budget, "splits": [dataclasses.asdict(s) for s in splits]}
    count_params(args.family, args.width, args.depth, **kw)  # validates family, width and depth first
    return dataclasses.asdict(scaling.equivalents(args.family, args.depth, args.width, args.members, **kw))


def render(result: dict[str, Any]) -> str:
    if "splits" in result:
        rows = [f"memory splits of {result['budget']:,} parameters",
                f"{'members':>7}  {'width':>6}  {'params/member':>13}  {'total':>13}  {'slack':>11}"]
        for s in result["splits"]:
            rows.append(f"{s['members']:>7}  {s['width']:>6}  {s['params'] // s['members']:>13,}  {s['params']:>13,}  "
                        f"{s['slack']:>11,}")
        return "\n".join(rows)
    if "single" in result:
        weq, deq = result["width_equivalent"], result["depth_equivalent"]

        def line(label: str, entry: dict[str, Any], knob: str) -> str:
            if entry["params"] is None:
                return f"{label}none fits: no member {knob} keeps the ensemble within the single network's params"
            return f"{label}{entry['params']:>13,} params in total, member {knob} {entry[knob]:,}"

        return "\n".join([f"single network:               {result['single']['params']:>13,} params",
                          line("width-equivalent ensemble:    ", weq, "depth"),
                          line("depth-equivalent ensemble:    ", deq, "width")])
    if "flops_per_example" in result:
        return (f"params:             {result['params']:,}\n"
                f"FLOPs per example:  {result['flops_per_example']:,} (torch FlopCounterMode, forward)")
    return f"width:   {result['width']}\nparams:  {result['params']:,}\n(budget {result['budget']:,})"
