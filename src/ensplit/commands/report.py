"""`ensplit report DIR`: re-analyse a study folder and rewrite its report.html (no training)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ensplit.errors import EnsplitError

NAME = "report"
HELP = "rebuild report.html (and print the summary) of an existing study folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a folder made by `ensplit study`")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ensplit.report.study_report import write_study_report
    from ensplit.store import ResultStore
    from ensplit.study.analysis import analyze_store, summary_dict
    from ensplit.study.config import build_config, load_toml
    from ensplit.study.runner import CONFIG_FILE

    folder = Path(args.folder)
    if not (folder / CONFIG_FILE).exists() or not (folder / "results.sqlite").exists():
        raise EnsplitError(f"{folder} is not a study folder (no {CONFIG_FILE} and results.sqlite)")
    config = build_config(load_toml(folder / CONFIG_FILE))
    store = ResultStore(folder)
    if not store.networks("pool", status="ok"):
        raise EnsplitError(f"{folder} holds no finished networks yet; run `ensplit study` first")
    analysis = analyze_store(store, config)
    write_study_report(analysis, folder / "report.html", config)
    return summary_dict(analysis, folder)


def render(result: dict[str, Any]) -> str:
    from ensplit.study.analysis import render_summary

    return render_summary(result)
