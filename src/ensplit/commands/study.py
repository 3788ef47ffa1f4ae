"""`ensplit study`: the main job — pools at each width, CNLL power laws, the optimal memory split."""

from __future__ import annotations

import argparse
from typing import Any

from ensplit.commands._options import (
    add_common_arguments,
    add_recipe_arguments,
    add_settings_arguments,
    settings_from_args,
)
from ensplit.experiments.study import DEFAULT_OUT, StudyResult, run_study
from ensplit.experiments.study_config import StudyConfig
from ensplit.report.study_text import render_summary

NAME = "study"
HELP = "train pools of networks at several widths and find the optimal memory split (seed 000)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--no-report", action="store_true", help="skip writing report.html")
    parser.add_argument("--repair", action="store_true", help="rebuild a damaged results.sqlite from the stored "
                        "arrays and their sidecars, then go on (see docs/what-happens-when.md)")
    add_settings_arguments(parser, StudyConfig, "study")
    add_recipe_arguments(parser)


def settings(args: argparse.Namespace) -> StudyConfig:
    return settings_from_args(StudyConfig, "study", args)


def run(args: argparse.Namespace) -> StudyResult:
    return run_study(settings(args), args.out, progress=not args.quiet, report=not args.no_report,
                     repair=args.repair)


def render(result: dict[str, Any]) -> str:
    return render_summary(result)
