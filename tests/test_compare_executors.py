"""`ensplit compare --executor process` (two workers) reports the numbers of the local executor: the same jobs,
seeds and one torch thread everywhere. Every score is checked to a relative 1e-9 (in practice the stored
predictions agree bit for bit); seconds per epoch, measured, are checked to be the one timer's figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ensplit.cli import main
from ensplit.experiments.compare import CompareConfig, run_compare
from ensplit.train.epoch_time import seconds_per_epoch

ARGS = ["--methods", "single,deep,mimo", "--family", "mlp", "--width", "8", "--members", "2", "--epochs", "4",
        "--train-subset", "128", "--test-subset", "64", "--batch-size", "64", "--threads", "1",
        "--method-option", "mimo.batch_repetitions=1", "--quiet"]
CONFIG = {"methods": "single,deep,mimo", "family": "mlp", "width": 8, "members": 2, "epochs": 4,
          "train_subset": 128, "test_subset": 64, "batch_size": 64, "threads": 1,
          "method_options": {"mimo.batch_repetitions": 1}}
TIMES = ("seconds_per_epoch",)
TOLERANCE = 1e-9


def same_numbers(rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> None:
    assert len(rows) == len(reference)
    for row, expected in zip(rows, reference, strict=True):
        assert set(row) == set(expected)
        for key, value in expected.items():
            if key in TIMES:
                continue
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=TOLERANCE, abs=1e-12), (row["method"], key)
            else:
                assert row[key] == value, (row["method"], key)


def stored_epoch_times(folder: Path) -> list[float]:
    """The one timer's figure of each stored job's per-epoch seconds."""
    records = [json.loads(p.read_text()) for p in (folder / "arrays").glob("*.json")]
    return sorted(seconds_per_epoch(json.loads(r["job"]["seconds_per_epoch"])) for r in records)


@pytest.mark.slow  # two spawned workers import torch and train three methods
def test_compare_on_a_process_pool_reports_the_numbers_of_the_local_executor(tmp_path: Path, capsys) -> None:
    local = run_compare(CompareConfig.from_mapping(CONFIG), tmp_path / "local", progress=False).to_json()
    folder = tmp_path / "pool"
    assert main(["compare", "--out", str(folder), *ARGS, "--executor", "process", "--workers", "2", "--json"]) == 0
    pool = json.loads(capsys.readouterr().out)
    same_numbers(pool["methods"], local["methods"])
    assert sorted(row["seconds_per_epoch"] for row in pool["methods"]) == stored_epoch_times(folder)
    assert main(["compare", "--out", str(folder), *ARGS, "--json"]) == 0  # the executor is not the folder's identity
    assert json.loads(capsys.readouterr().out)["methods"] == pool["methods"]  # finished: nothing retrained
