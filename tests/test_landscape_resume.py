"""`ensplit landscape --out DIR` stores each init's run and trajectory: killed at a chosen write it resumes to the
numbers of an uninterrupted run, training only what was missing; finished, it trains nothing; a damaged
trajectory is trained again, never used; another recipe is refused; an old folder's checkpoints are reused."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.test_compare_resume import finished_at
from tests.test_reliability_inputs import refused

import ensplit
from ensplit.errors import EnsplitError
from ensplit.experiments import landscape_jobs
from ensplit.experiments.landscape import LandscapeConfig, run_landscape
from ensplit.experiments.landscape_jobs import TRAJECTORIES, load_job_trajectory
from ensplit.experiments.landscape_plan import plan_landscape
from ensplit.files import CRASH_VARIABLE
from ensplit.recipe import Recipe
from ensplit.train.epoch_time import seconds_per_epoch
from ensplit.train.trajectories import train_trajectories

SETTINGS = {"width": 8, "inits": 2, "epochs": 2, "every": 1, "tail_epochs": 1, "samples": 2, "rank": 1,
            "bezier_epochs": 0, "train_subset": 200, "test_subset": 100, "threads": 1}
ARGS = ["--width", "8", "--inits", "2", "--epochs", "2", "--every", "1", "--tail-epochs", "1", "--samples", "2",
        "--rank", "1", "--bezier-epochs", "0", "--train-subset", "200", "--test-subset", "100", "--threads", "1",
        "--quiet"]
MEASURED = ("seconds", "seconds_per_epoch", "out")  # timings, and the folder: the only keys two runs may differ in


def _config(**changes: Any) -> LandscapeConfig:
    return LandscapeConfig.from_mapping({**SETTINGS, **changes})


def numbers(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in MEASURED}


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inits (their index) that the landscape job function trained, in order: a spy on the job function."""
    calls: list[int] = []
    real = landscape_jobs.run_landscape_job

    def spy(job, device, progress):
        calls.append(job.first_index)
        return real(job, device, progress)

    monkeypatch.setattr(landscape_jobs, "run_landscape_job", spy)
    return calls


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The summary of an uninterrupted run."""
    return run_landscape(_config(), tmp_path_factory.mktemp("whole"), progress=False).to_json()


def test_the_job_ids_are_pinned() -> None:
    """A folder made today must resume with the same ids tomorrow: these are the ids of its two inits."""
    jobs = plan_landscape(_config())
    assert [job.job_id for job in jobs] == ["5edaea8ef665cb49539b", "83f0c6cae564dd1b882f"]
    assert [(job.seeds, job.first_index) for job in jobs] == [((0,), 0), ((1,), 1)]


def test_a_finished_landscape_trains_nothing_and_prints_the_same_numbers(tmp_path: Path, trained: list[int],
                                                                         whole: dict[str, Any]) -> None:
    first = ensplit.landscape(_config(), tmp_path, progress=False)  # the front door: stored runs and a page
    assert trained == [0, 1] and first.trained_jobs == 2 and (tmp_path / "report.html").is_file()
    assert numbers(first.to_json()) == numbers(whole)
    again = run_landscape(_config(), tmp_path, progress=False)
    assert trained == [0, 1] and again.trained_jobs == 0
    summary = again.to_json()
    assert summary["seconds_per_epoch"] == first.to_json()["seconds_per_epoch"] > 0  # the stored runs' own
    assert numbers(summary) == numbers(first.to_json())
    for key in ("params", "flops_per_example", "seconds_per_epoch", "ensplit_version", "git_commit"):
        assert key in summary and key in json.loads((tmp_path / "summary.json").read_text())
    # one init: (40·8 + 8) + (8·8 + 8) + (8·10 + 10) parameters, 2 FLOPs per each of its 464 multiply-adds
    assert (summary["params"], summary["flops_per_example"]) == (490, 928)
    _assert_stored_epoch_times_and_losses(tmp_path, summary["seconds_per_epoch"])
    more = run_landscape(_config(inits=3), tmp_path, progress=False)
    assert trained == [0, 1, 2] and more.trained_jobs == 1  # the third init alone


def _assert_stored_epoch_times_and_losses(folder: Path, reported: float) -> None:
    """Each init's run stores the loop's seconds of every epoch (2 trained + 1 tail) and a finite final train
    loss; the reported figure is the shared timer applied to the stored lists, averaged over the inits."""
    records = [json.loads(p.read_text()) for p in (folder / "arrays").glob("*.json")]
    per_init = [json.loads(r["job"]["seconds_per_epoch"]) for r in records]
    assert len(per_init) == 2 and all(len(epochs) == 2 + 1 for epochs in per_init)
    assert reported == pytest.approx(sum(seconds_per_epoch(epochs) for epochs in per_init) / 2, rel=1e-12)
    losses = [network["final_train_loss"] for r in records for network in r["networks"]]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


def test_an_interrupted_landscape_trains_only_the_unfinished_inits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    whole: dict[str, Any]) -> None:
    real = landscape_jobs.run_landscape_job
    calls: list[int] = []

    def stopped_at_the_second_init(job, device, progress):
        calls.append(job.first_index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, device, progress)

    monkeypatch.setattr(landscape_jobs, "run_landscape_job", stopped_at_the_second_init)
    with pytest.raises(KeyboardInterrupt):
        run_landscape(_config(), tmp_path, progress=False)
    assert not (tmp_path / "summary.json").exists()
    monkeypatch.setattr(landscape_jobs, "run_landscape_job", real)
    resumed = run_landscape(_config(), tmp_path, progress=False)
    assert resumed.trained_jobs == 1 and numbers(resumed.to_json()) == numbers(whole)


@pytest.mark.slow  # two spawned workers
def test_a_process_pool_trains_the_inits_to_the_same_numbers(tmp_path: Path, whole: dict[str, Any]) -> None:
    """Workers send each init's trajectory back; the driver stores it as it does the local executor's."""
    pooled = run_landscape(_config(executor="process", workers=2), tmp_path, progress=False)
    assert pooled.trained_jobs == 2 and numbers(pooled.to_json()) == numbers(whole)
    assert run_landscape(_config(), tmp_path, progress=False).trained_jobs == 0  # the executor is not the recipe


def _flip_weights(folder: Path, job_id: str) -> str:
    path = folder / TRAJECTORIES / f"{job_id}.safetensors"
    content = bytearray(path.read_bytes())
    content[-3] ^= 0x10  # one bit of a weight: still a readable safetensors file
    path.write_bytes(bytes(content))
    return "is damaged: its SHA-256 differs from the one in"


def _truncate_record(folder: Path, job_id: str) -> str:
    path = folder / TRAJECTORIES / f"{job_id}.json"
    path.write_text(path.read_text()[:20])
    return "is damaged or unreadable"


def _delete_weights(folder: Path, job_id: str) -> str:
    (folder / TRAJECTORIES / f"{job_id}.safetensors").unlink()
    return "is missing or unreadable"


def _foreign_record(folder: Path, job_id: str) -> str:
    other = next(p for p in (folder / TRAJECTORIES).glob("*.json") if p.stem != job_id)
    (folder / TRAJECTORIES / f"{job_id}.json").write_text(other.read_text())
    return f"is damaged: not the record of job {job_id}"


@pytest.mark.parametrize("damage", [_flip_weights, _truncate_record, _delete_weights, _foreign_record])
def test_a_damaged_trajectory_is_named_and_trained_again(tmp_path: Path, trained: list[int], whole: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str], damage) -> None:
    run_landscape(_config(), tmp_path, progress=False)
    job = plan_landscape(_config())[1]
    needle = damage(tmp_path, job.job_id)
    dataset = _config().recipe.load_data()
    with pytest.raises(EnsplitError, match=needle):  # never read as if it were intact
        load_job_trajectory(tmp_path, job, dataset)
    capsys.readouterr()
    again = run_landscape(_config(), tmp_path, progress=False)
    assert trained == [0, 1, 1] and again.trained_jobs == 1
    err = capsys.readouterr().err
    assert needle in err and "init 1 (seed 1) will be trained again" in err
    assert numbers(again.to_json()) == numbers(whole)


def test_a_changed_recipe_is_refused_with_the_fields_that_differ(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_landscape(_config(), tmp_path, progress=False)
    err = refused(capsys, ["landscape", "--out", str(tmp_path), *ARGS, "--epochs", "3", "--family-option",
                           "norm=true"], "made by an incompatible config (differs in: ")
    assert "train.epochs (folder 2, given 3)" in err and "family_options.norm (folder unset" in err
    with pytest.raises(EnsplitError, match=r"train\.lr \(folder 0\.1, given 0\.2\)"):  # the front door too
        ensplit.landscape(out=tmp_path, progress=False, **{**SETTINGS, "lr": 0.2})


def _old_folder(folder: Path, recipe: Recipe) -> Path:
    """A landscape folder as an ensplit before stored runs left it: summary.json and checkpoints/ (every init
    trained in one member-batched run), no run index and no ownership marker."""
    dataset = recipe.load_data()
    train_trajectories(dataset, recipe.family, 8, [0, 1], recipe.train, every=1, tail_epochs=1,
                       out=folder / "checkpoints", **recipe.options)
    (folder / "summary.json").write_text(json.dumps({"recipe": recipe.to_json(), "ensplit_version": "0.1.0"}))
    return folder


def test_an_old_landscape_folder_is_read_and_its_checkpoints_reused(tmp_path: Path, trained: list[int]) -> None:
    folder = _old_folder(tmp_path / "old", _config().recipe)
    result = run_landscape(_config(), folder, progress=False)
    assert trained == [] and result.trained_jobs == 0  # both inits taken from checkpoints/
    loaded = run_landscape(_config(trajectories=str(folder / "checkpoints")), tmp_path / "loaded", progress=False)
    assert result.to_json()["cosine"] == loaded.to_json()["cosine"]  # the very checkpoints the folder held
    assert result.to_json()["seconds_per_epoch"] is None  # the old run timed its inits together: not recorded
    assert run_landscape(_config(inits=3), folder, progress=False).trained_jobs == 1 and trained == [2]


def test_an_old_folder_of_other_data_settings_is_kept_but_its_checkpoints_not_used(tmp_path: Path,
                                                                                    trained: list[int]) -> None:
    folder = _old_folder(tmp_path / "old", _config(train_subset=150).recipe)
    assert run_landscape(_config(), folder, progress=False).trained_jobs == 2 and trained == [0, 1]
    assert (folder / "checkpoints" / "manifest.json").is_file()


def _run(folder: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_VARIABLE, None)
    if crash:
        env[CRASH_VARIABLE] = crash
    return subprocess.run([sys.executable, "-m", "ensplit", "landscape", "--out", str(folder), *ARGS, "--json"],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def whole_cli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What an uninterrupted `ensplit landscape --json` prints."""
    whole = _run(tmp_path_factory.mktemp("whole-cli"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    return json.loads(whole.stdout)


@pytest.mark.slow  # subprocess runs
@pytest.mark.parametrize("crash, stored", [("stored:1", 1), ("rename.safetensors:2", 1)])
def test_a_killed_landscape_resumes_training_only_the_unfinished_inits(tmp_path: Path, crash: str, stored: int,
                                                                       whole_cli: dict[str, Any]) -> None:
    folder = tmp_path / "killed"
    killed = _run(folder, crash)  # stored:1 just after init 0's run was committed; rename.safetensors:2 while
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]  # init 1's trajectory was being written
    first = finished_at(folder)
    assert len(first) == stored and not (folder / "summary.json").exists()
    resumed = _run(folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = finished_at(folder)
    assert len(after) == 2 and all(after[job] == when for job, when in first.items())  # not trained again
    assert not list((folder / TRAJECTORIES).glob(".*.tmp"))  # the half-written file was cleared
    assert numbers(json.loads(resumed.stdout)) == numbers(whole_cli)
