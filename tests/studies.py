"""Test helper: train a study's networks (no report) and hand back its open store."""

from pathlib import Path
from typing import Any

from ensplit.experiments.study import run_study
from ensplit.experiments.study_config import StudyConfig
from ensplit.store import ResultStore


def train_study(config: StudyConfig, folder: str | Path, **options: Any) -> ResultStore:
    """`run_study` without the report page; returns the folder's store."""
    return run_study(config, folder, **options).store


def cli_stdout(argv: list[str]) -> str:
    """Run the `ensplit` entry point (exit status 0 expected) and return what it printed on stdout; for fixtures
    shared by a module, where pytest's per-test capture is not available."""
    import io
    import sys

    from ensplit.cli import main

    stdout, saved = io.StringIO(), sys.stdout
    sys.stdout = stdout
    try:
        code = main(argv)
    finally:
        sys.stdout = saved
    assert code == 0, f"ensplit {' '.join(argv)} exited {code}"
    return stdout.getvalue()
