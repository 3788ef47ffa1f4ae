"""`ensplit budget count|solve|splits|equivalents`: exact parameter counts and designs at a budget."""

from __future__ import annotations

import argparse
import re
from typing import Any

from ensplit.errors import EnsplitError
from ensplit.models import count_params, get_family, scaling

NAME = "budget"
HELP = "parameter counts, FLOPs, widths at a budget, memory splits and width/depth-equivalent ensembles"

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


def parse_count(text: str) -> int:
    """A positive parameter count: `269722`, `269_722`, `1e6`, `36.5M`, `15k`."""
    match = re.fullmatch(r"\s*([0-9_]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgb]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a parameter count: {text!r} (e.g. 269722, 1e6, 36.5M)")
    value = float(match.group(1).replace("_", "")) * _SUFFIX[match.group(2)]
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"not a positive whole parameter count: {text!r}")
    return int(value)


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"options are KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _typed_options(family: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Convert `--option` values to the type of the family's default (bool, int, float or str)."""
    defaults = get_family(family).options
    options: dict[str, Any] = {}
    for key, value in pairs:
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise EnsplitError(f"unknown option {key!r} for family {family!r} (known: {known})")
        default = defaults[key]
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                options[key] = value.lower() in ("true", "1", "yes")
            elif isinstance(default, (int, float, str)):
                options[key] = type(default)(value)
            else:
                options[key] = value
        except ValueError:
            raise EnsplitError(f"option {key} needs a {type(default).__name__}, got {value!r}") from None
    return options


def _common(p: argparse.ArgumentParser, depth_required: bool = False) -> None:
    p.add_argument("--family", required=True, help="model family (see the registry)")
    p.add_argument("--depth", type=int, required=depth_required, help="depth (default: the family's)")
    p.add_argument("--classes", type=int, help="number of classes (default: the family's)")
    p.add_argument("--in-shape", type=int, nargs="+", metavar="N", help="input shape, e.g. 3 32 32")
    p.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="family option, e.g. shortcut=B, norm=true, cardinality=16 (repeatable)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the machine-readable result to stdout")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the machine-readable result to stdout")
    sub = parser.add_subparsers(dest="budget_command", metavar="ACTION", required=True,
                                parser_class=type(parser))
    p = sub.add_parser("count", help="exact parameter count and FLOPs per example")
    p.add_argument("--width", type=int, required=True, help="the family's width knob")
    _common(p)
    p = sub.add_parser("solve", help="largest width within a parameter budget")
    p.add_argument("--params", type=parse_count, required=True, help="parameter budget, e.g. 1e6 or 36.5M")
    _common(p)
    p = sub.add_parser("splits", help="n = 1..K members: each member's width within a budget, and the slack")
    p.add_argument("--params", type=parse_count, required=True, help="parameter budget for the whole ensemble")
    p.add_argument("--max-members", type=int, default=8, help="largest ensemble size (default 8)")
    _common(p)
    p = sub.add_parser("equivalents", help="width- and depth-equivalent ensembles of a single network")
    p.add_argument("--width", type=int, required=True, help="the single network's width knob")
    p.add_argument("--members", type=int, required=True, help="ensemble size K")
    _common(p, depth_required=True)


def run(args: argparse.Namespace) -> Any:
    kw: dict[str, Any] = dict(in_shape=tuple(args.in_shape) if args.in_shape else None, num_classes=args.classes,
                              **_typed_options(args.family, args.option))
    if args.budget_command == "count":
        return {"params": count_params(args.family, args.width, args.depth, **kw),
                "flops_per_example": scaling.flops_per_example(args.family, args.width, args.depth, **kw)}
    if args.budget_command == "solve":
        width = scaling.solve_width(args.family, args.params, args.depth, **kw)
        return {"width": width, "params": count_params(args.family, width, args.depth, **kw)}
    if args.budget_command == "splits":
        return scaling.memory_splits(args.family, args.params, args.depth, args.max_members, **kw)
    count_params(args.family, args.width, args.depth, **kw)  # validates family, width and depth first
    return scaling.equivalents(args.family, args.depth, args.width, args.members, **kw)


def _num(value: int | None) -> str:
    return "none fits" if value is None else f"{value:,}"


def render(result: Any) -> str:
    if isinstance(result, list):
        rows = [f"{'members':>7}  {'width':>6}  {'params/member':>13}  {'total':>13}  {'slack':>11}"]
        for s in result:
            rows.append(f"{s.members:>7}  {s.width:>6}  {s.params // s.members:>13,}  {s.params:>13,}  {s.slack:>11,}")
        return "\n".join(rows)
    if isinstance(result, scaling.Equivalents):
        weq, deq = result.width_equivalent, result.depth_equivalent
        return "\n".join([
            f"single network:               {result.single.params:>13,} params",
            f"width-equivalent ensemble:    {_num(weq.params):>13} params in total, member depth {_num(weq.depth)}",
            f"depth-equivalent ensemble:    {_num(deq.params):>13} params in total, member width {_num(deq.width)}",
        ])
    if "flops_per_example" in result:
        return (f"params:             {result['params']:,}\n"
                f"FLOPs per example:  {result['flops_per_example']:,} (torch FlopCounterMode, forward)")
    return f"width:   {result['width']}\nparams:  {result['params']:,}"
