"""`ensplit analyze`: the memory-split analysis and report on predictions made by any framework."""

from __future__ import annotations

import argparse
from typing import Any

from ensplit import reports
from ensplit.experiments.predictions import AnalyzeResult, analyze
from ensplit.reports.study_text import render_summary

NAME = "analyze"
HELP = "power laws, memory split and report from .npz pools (one file per member size)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help=".npz files or folders of them: log_probs|logits [members, N, C], "
                        "labels [N], params_per_member")
    parser.add_argument("--out", default="ensplit-analysis", help="folder for report.html (default ./ensplit-analysis)")
    parser.add_argument("--temperature", choices=["before", "after"], default="before",
                        help="calibrate before or after averaging (default before)")
    parser.add_argument("--cnll-splits", type=int, default=5,
                        help="random halvings for test-time cross-validation (default 5)")
    parser.add_argument("--predict-max-n", type=int, default=4, help="prediction fits on n ≤ this (default 4)")
    parser.add_argument("--predict-pool", type=int, default=6, help="networks the prediction starts from (default 6)")
    parser.add_argument("--bootstrap", type=int, default=40, help="resamples for prediction bands (default 40)")
    parser.add_argument("--no-report", action="store_true", help="skip writing report.html")


def run(args: argparse.Namespace) -> AnalyzeResult:
    result = analyze(args.inputs, args.out, args.temperature, args.cnll_splits, args.predict_max_n,
                     args.predict_pool, args.bootstrap, report=not args.no_report)
    if not args.no_report:
        reports.write(result, result.folder, NAME)
    return result


def render(result: dict[str, Any]) -> str:
    return render_summary(result)
