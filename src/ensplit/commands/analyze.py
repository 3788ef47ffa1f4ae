"""`ensplit analyze`: the memory-split analysis and report on predictions made by any framework."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "analyze"
HELP = "power laws, memory split and report from .npz pools (one file per member size)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help=".npz files or folders of them: log_probs|logits [members, N, C], "
                        "labels [N], params_per_member")
    parser.add_argument("--out", default="ensplit-analysis", help="folder for report.html")
    parser.add_argument("--temperature", choices=["before", "after"], default="before")
    parser.add_argument("--splits", type=int, default=5, help="random halvings for test-time cross-validation")
    parser.add_argument("--predict-max-n", type=int, default=4)
    parser.add_argument("--predict-pool", type=int, default=6)
    parser.add_argument("--bootstrap", type=int, default=40)
    parser.add_argument("--no-report", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ensplit.errors import EnsplitError
    from ensplit.study.analysis import analyze_pools, summary_dict
    from ensplit.study.npz_pools import load_pools

    pools = load_pools(args.inputs)
    if len(pools) < 2:
        raise EnsplitError("analyze needs pools of at least two member sizes (one .npz per size)")
    analysis = analyze_pools([(None, p.params_per_member, p.log_probs) for p in pools], pools[0].labels,
                             args.temperature, args.splits, args.predict_max_n, args.predict_pool, args.bootstrap)
    out = Path(args.out)
    if not args.no_report:
        from ensplit.report.study_report import write_study_report

        path = write_study_report(analysis, out / "report.html")
        print(f"ensplit analyze: report written to {path}", file=sys.stderr)
    return summary_dict(analysis, out)


def render(result: dict[str, Any]) -> str:
    from ensplit.study.analysis import render_summary

    return render_summary(result)
