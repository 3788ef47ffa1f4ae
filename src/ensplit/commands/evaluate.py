"""`ensplit evaluate FILE.npz`: metrics of an ensemble and of each member from stored predictions."""

from __future__ import annotations

import argparse
from typing import Any

from ensplit.experiments.predictions import EvaluateResult, evaluate

NAME = "evaluate"
HELP = "accuracy, NLL, Brier, ECE and CNLL of an ensemble and its members from an .npz of predictions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help=".npz with log_probs (or logits) [members, N, classes] and labels [N]")
    parser.add_argument("--cnll-splits", type=int, default=5,
                        help="random halvings for test-time cross-validation (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-validation splits (default 0)")


def run(args: argparse.Namespace) -> EvaluateResult:
    return evaluate(args.file, args.cnll_splits, args.seed)


def render(result: dict[str, Any]) -> str:
    keys = ["accuracy", "nll", "brier", "ece", "cnll_before", "cnll_after"]

    def row(name: str, m: dict[str, Any]) -> str:
        return f"{name:<10}" + "".join(f"{'-' if m[k] is None else format(m[k], '.4f'):>12}" for k in keys)

    lines = [f"{'':<10}" + "".join(f"{k:>12}" for k in keys), row("ensemble", result["ensemble"])]
    lines += [row(f"member {i}", m) for i, m in enumerate(result["members"])]
    return "\n".join(lines) + "\n(ece in percent; cnll by test-time cross-validation)"
