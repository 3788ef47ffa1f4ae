"""`ensplit evaluate FILE.npz`: metrics of an ensemble and of each member from stored predictions."""

from __future__ import annotations

import argparse
from typing import Any

from ensplit.metrics import classification_metrics, cnll_ttcv, ensemble_log_probs
from ensplit.study.npz_pools import load_pool

NAME = "evaluate"
HELP = "accuracy, NLL, Brier, ECE and CNLL of an ensemble and its members from an .npz of predictions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help=".npz with log_probs (or logits) [members, N, classes] and labels [N]")
    parser.add_argument("--splits", type=int, default=5, help="random halvings for test-time cross-validation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-validation splits")


def _metrics(member_log_probs, labels, splits: int, seed: int) -> dict[str, Any]:
    base = {k: float(v) for k, v in classification_metrics(ensemble_log_probs(member_log_probs), labels).items()}
    if member_log_probs.shape[0] > 1:
        base["cnll_before"] = float(cnll_ttcv(member_log_probs, labels, "before", splits, seed))
        base["cnll_after"] = float(cnll_ttcv(member_log_probs, labels, "after", splits, seed))
    else:
        base["cnll_before"] = base["cnll_after"] = None
    return base


def run(args: argparse.Namespace) -> dict[str, Any]:
    pool = load_pool(args.file)
    members = [_metrics(pool.log_probs[i : i + 1], pool.labels, args.splits, args.seed)
               for i in range(pool.log_probs.shape[0])]
    return {"ensemble": _metrics(pool.log_probs, pool.labels, args.splits, args.seed), "members": members}


def render(result: dict[str, Any]) -> str:
    keys = ["accuracy", "nll", "brier", "ece", "cnll_before", "cnll_after"]

    def row(name: str, m: dict[str, Any]) -> str:
        return f"{name:<10}" + "".join(f"{'-' if m[k] is None else format(m[k], '.4f'):>12}" for k in keys)

    lines = [f"{'':<10}" + "".join(f"{k:>12}" for k in keys), row("ensemble", result["ensemble"])]
    lines += [row(f"member {i}", m) for i, m in enumerate(result["members"])]
    return "\n".join(lines) + "\n(ece in percent; cnll by test-time cross-validation)"
