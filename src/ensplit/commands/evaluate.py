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

    def cell(key: str, value: float | None, ensemble: bool) -> str:
        if value is None:  # JSON's null: an infinite loss (a true class given probability 0), or no CNLL
            infinite = key == "nll" or (key.startswith("cnll") and ensemble and len(result["members"]) > 1)
            return "inf" if infinite else "-"
        text = format(value, ".4f")
        return "0.0000" if text == "-0.0000" else text

    def row(name: str, m: dict[str, Any], ensemble: bool = False) -> str:
        return f"{name:<10}" + "".join(f"{cell(k, m[k], ensemble):>12}" for k in keys)

    lines = [f"{'':<10}" + "".join(f"{k:>12}" for k in keys), row("ensemble", result["ensemble"], True)]
    lines += [row(f"member {i}", m) for i, m in enumerate(result["members"])]
    return "\n".join(lines) + "\n(ece in percent; cnll by test-time cross-validation; inf: a true class was given " \
        "probability 0)"
