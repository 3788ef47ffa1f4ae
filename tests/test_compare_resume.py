"""`ensplit compare --out DIR` stores each method's run: killed at a chosen write it resumes to the numbers of an
uninterrupted run, training only what was missing; finished, it trains nothing; another recipe is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_reliability_inputs import refused

from ensplit.cli import main
from ensplit.experiments.compare import CompareConfig, run_compare
from ensplit.files import CRASH_VARIABLE

ARGS = ["--methods", "single,deep,mimo", "--family", "mlp", "--width", "8", "--members", "2", "--epochs", "1",
        "--train-subset", "200", "--test-subset", "100", "--batch-size", "64", "--threads", "1",
        "--method-option", "mimo.batch_repetitions=1", "--quiet"]
TIMES = ("seconds_per_epoch",)  # measured, so equal between a resumed and an uninterrupted run only when stored


def run(folder: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_VARIABLE, None)
    if crash:
        env[CRASH_VARIABLE] = crash
    return subprocess.run([sys.executable, "-m", "ensplit", "compare", "--out", str(folder), *ARGS, "--json"],
                          env=env, capture_output=True, text=True, timeout=300)


def finished_at(folder: Path) -> dict[str, float]:
    """When each stored job finished (its sidecar's record), by job id."""
    records = [json.loads(p.read_text()) for p in (folder / "arrays").glob("*.json")]
    return {r["job"]["job_id"]: r["job"]["finished_at"] for r in records}


def numbers(result: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMES} for row in result["methods"]]


@pytest.mark.slow  # three subprocess runs
def test_a_killed_compare_resumes_training_only_the_unfinished_methods(tmp_path: Path) -> None:
    whole = run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    folder = tmp_path / "killed"
    killed = run(folder, "stored:1")  # killed just after the first method's run was committed
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = finished_at(folder)
    assert len(first) == 1 and not (folder / "results.json").exists()
    resumed = run(folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = finished_at(folder)
    assert len(after) == 3 and all(after[job] == when for job, when in first.items())  # not trained again
    assert numbers(json.loads(resumed.stdout)) == numbers(json.loads(whole.stdout))


def _config(**changes) -> CompareConfig:
    values = {"methods": "single,deep", "width": 8, "members": 2, "epochs": 1, "train_subset": 200,
              "test_subset": 100, "batch_size": 64, "threads": 1, "sweep_members": "2,3"}
    return CompareConfig.from_mapping({**values, **changes})


def test_a_finished_compare_trains_nothing_and_prints_the_same_table(tmp_path: Path) -> None:
    first = run_compare(_config(), tmp_path, progress=False)
    assert first.trained_jobs == 3  # single, deep; deep with 3 members (deep with 2 is the table's own job)
    again = run_compare(_config(), tmp_path, progress=False)
    assert again.trained_jobs == 0
    assert again.to_json() == first.to_json()  # seconds per epoch too: they are the stored runs' own
    more = run_compare(_config(methods="single,deep,batchensemble"), tmp_path, progress=False)
    assert more.trained_jobs == 2 and more.rows[:2] == first.rows  # batchensemble alone, in the table and sweep


def test_a_changed_recipe_is_refused_with_the_fields_that_differ(capsys, tmp_path: Path) -> None:
    assert main(["compare", "--out", str(tmp_path), *ARGS]) == 0
    capsys.readouterr()
    err = refused(capsys, ["compare", "--out", str(tmp_path), *ARGS, "--epochs", "2", "--family-option",
                           "norm=true"], "made by an incompatible config (differs in: ")
    assert "train.epochs (folder 1, given 2)" in err and "family_options.norm (folder unset" in err
    assert main(["compare", "--out", str(tmp_path), *ARGS, "--members", "3"]) == 0  # not the recipe: more runs


def test_a_compare_folder_from_before_stored_runs_is_used_and_then_resumes(tmp_path: Path) -> None:
    """results.json and report.html only (and no ownership marker): still compare's; the runs are added."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"ensplit_version": "0.2.0", "git_commit": None, "budget": None,
                                                     "methods": [{"method": "single"}]}))
    first = run_compare(_config(sweep_members=()), folder, progress=False)
    assert first.trained_jobs == 2 and (folder / "results.sqlite").is_file()
    (folder / ".ensplit-command").unlink()  # as an ensplit without the marker would have left it
    assert run_compare(_config(sweep_members=()), folder, progress=False).trained_jobs == 0
