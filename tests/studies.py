"""Test helper: train a study's networks (no report) and hand back its open store."""

from pathlib import Path
from typing import Any

from ensplit.experiments.study import run_study
from ensplit.experiments.study_config import StudyConfig
from ensplit.store import ResultStore


def train_study(config: StudyConfig, folder: str | Path, **options: Any) -> ResultStore:
    """`run_study` without the report page; returns the folder's store."""
    return run_study(config, folder, report=False, **options).store
