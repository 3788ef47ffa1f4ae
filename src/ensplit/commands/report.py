"""`ensplit report DIR`: re-analyse a study folder and rewrite its report.html (no training)."""

from __future__ import annotations

import argparse
from typing import Any

from ensplit import reports
from ensplit.experiments.study import StudyResult, reanalyze
from ensplit.reports.study_text import render_summary

NAME = "report"
HELP = "rebuild report.html (and print the summary) of an existing study folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a folder made by `ensplit study`")


def run(args: argparse.Namespace) -> StudyResult:
    result = reanalyze(args.folder)
    reports.write(result, args.folder, NAME)
    return result


def render(result: dict[str, Any]) -> str:
    return render_summary(result)
