"""`ensplit designspace --out DIR` stores each configuration's training and cost jobs: killed at a chosen write it
resumes to the numbers of an uninterrupted run, training only what was missing; finished, it trains nothing; another
recipe is refused; a folder of a release that stored no runs is still its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_compare_resume import finished_at
from tests.test_reliability_inputs import refused

from ensplit.cli import main
from ensplit.experiments.designspace import DesignSpaceConfig, run_designspace
from ensplit.files import CRASH_VARIABLE

ARGS = ["--family", "mlp", "--members", "2", "--widths", "8,16", "--depths", "2", "--epochs", "2",
        "--train-subset", "128", "--test-subset", "64", "--batch-size", "64", "--timing-repeats", "1",
        "--timing-warmup", "0", "--inference-repeats", "1", "--timing-steps", "1", "--large-batch", "16",
        "--measure-memory", "false", "--threads", "1", "--quiet"]
# measured, so equal between a resumed and an uninterrupted run only when stored
TIMES = ("seconds_per_epoch", "seconds_per_epoch_batched", "time_to_single_accuracy", "inference_ms_batch1",
         "inference_ms_large_batch")


def run(folder: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    """`ensplit designspace --out folder ARGS --json` in a subprocess, killed at the `crash` point if given."""
    env = {k: v for k, v in os.environ.items() if k != CRASH_VARIABLE}
    env.update({"OMP_NUM_THREADS": "1", **({CRASH_VARIABLE: crash} if crash else {})})
    return subprocess.run([sys.executable, "-m", "ensplit", "designspace", "--out", str(folder), *ARGS, "--json"],
                          env=env, capture_output=True, text=True, timeout=300)


def numbers(result: dict) -> tuple[list[dict], dict, list[str]]:
    records = [{k: v for k, v in row.items() if k not in TIMES} for row in result["records"]]
    return records, result["est"], result["unformable"]


@pytest.mark.slow  # three subprocess runs
def test_a_killed_designspace_resumes_training_only_the_unfinished_networks(tmp_path: Path) -> None:
    whole = run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    total = len(finished_at(tmp_path / "whole"))
    folder = tmp_path / "killed"
    killed = run(folder, "stored:3")  # killed just after the third job (training or cost) was committed
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = finished_at(folder)
    assert len(first) == 3 < total and not (folder / "results.json").exists()
    resumed = run(folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = finished_at(folder)
    assert len(after) == total and all(after[job] == when for job, when in first.items())  # not trained again
    assert numbers(json.loads(resumed.stdout)) == numbers(json.loads(whole.stdout))


def _config(**changes) -> DesignSpaceConfig:
    values = {"family": "mlp", "members": "2", "widths": "8,16", "depths": "2", "epochs": 2, "train_subset": 128,
              "test_subset": 64, "batch_size": 64, "timing_repeats": 1, "timing_warmup": 0, "inference_repeats": 1,
              "timing_steps": 1, "large_batch": 16, "measure_memory": False, "threads": 1}
    return DesignSpaceConfig.from_mapping({**values, **changes})


def test_a_finished_designspace_trains_nothing_and_prints_the_same_records(tmp_path: Path) -> None:
    first = run_designspace(_config(), tmp_path, progress=False)
    assert first.trained_jobs > 0 and first.trained_jobs % 2 == 0  # a training and a cost job per network
    again = run_designspace(_config(), tmp_path, progress=False)
    assert again.trained_jobs == 0
    assert again.to_json() == first.to_json()  # times too: they are the stored jobs' own
    wider = run_designspace(_config(widths="8,16,32"), tmp_path, progress=False)
    networks = {(r.width, r.depth, r.members) for r in first.records}
    added = {(r.width, r.depth, r.members) for r in wider.records} - networks
    assert added and wider.trained_jobs == 2 * len(added)  # only the networks the wider grid adds
    assert [r for r in wider.records if r.budget_width != 32] == first.records  # the stored networks, reused


def test_a_changed_recipe_is_refused_with_the_fields_that_differ(capsys, tmp_path: Path) -> None:
    assert main(["designspace", "--out", str(tmp_path), *ARGS]) == 0
    capsys.readouterr()
    err = refused(capsys, ["designspace", "--out", str(tmp_path), *ARGS, "--epochs", "3", "--family-option",
                           "norm=true"], "made by an incompatible config (differs in: ")
    assert "train.epochs (folder 2, given 3)" in err and "family_options.norm (folder unset" in err
    assert main(["designspace", "--out", str(tmp_path), *ARGS, "--timing-repeats", "2"]) == 0  # not the recipe


def test_a_designspace_folder_from_before_stored_runs_is_used_and_then_resumes(tmp_path: Path) -> None:
    """results.json (as designspace wrote it before it stored runs) and no ownership marker: still designspace's;
    the runs are added."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"ensplit_version": "0.2.0", "git_commit": None, "est": {},
                                                     "records": [{"class": "single"}], "full_records": []}))
    first = run_designspace(_config(), folder, progress=False)
    assert first.trained_jobs > 0 and (folder / "results.sqlite").is_file()
    (folder / ".ensplit-command").unlink()  # as an ensplit without the marker would have left it
    assert run_designspace(_config(), folder, progress=False).trained_jobs == 0
    older = tmp_path / "older"  # a release that still wrote "ensplit" for the version
    older.mkdir()
    (older / "results.json").write_text(json.dumps({"ensplit": "0.1.0", "records": []}))
    assert run_designspace(_config(), older, progress=False).trained_jobs == first.trained_jobs
