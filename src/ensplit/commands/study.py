"""`ensplit study`: the main job — pools at each width, CNLL power laws, the optimal memory split."""

from __future__ import annotations

import argparse
from typing import Any

from ensplit.commands._options import experiment_command
from ensplit.experiments.study import DEFAULT_OUT, run_study
from ensplit.experiments.study_config import StudyConfig
from ensplit.reports.study_text import render_summary

NAME = "study"
HELP = "train pools of networks at several widths and find the optimal memory split (Lobacheva et al.)"


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-report", action="store_true", help="skip writing report.html")
    parser.add_argument("--repair", action="store_true", help="rebuild a damaged results.sqlite from the stored "
                        "arrays and their sidecars, then go on (see docs/what-happens-when.md)")


add_arguments, settings, run = experiment_command(StudyConfig, "study", run_study, DEFAULT_OUT, _extra)


def render(result: dict[str, Any]) -> str:
    return render_summary(result)
