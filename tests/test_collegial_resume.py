"""`ensplit collegial --train --out DIR` stores each trained network as a run: killed at a chosen write it resumes to
the numbers of an uninterrupted run, training only what was missing; finished, it trains nothing; another recipe
is refused; an older collegial folder (its page alone) is still used; job ids are pinned."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_compare_resume import finished_at
from tests.test_reliability_inputs import refused

import ensplit
import ensplit.runs.jobs
from ensplit._version import provenance
from ensplit.analysis.collegial import MLPBaseline
from ensplit.cli import main
from ensplit.experiments.collegial import CollegialConfig, run_collegial
from ensplit.experiments.collegial_plan import point_job
from ensplit.files import CRASH_VARIABLE
from ensplit.recipe import Recipe
from ensplit.store.ownership import PAGE_START
from ensplit.train import TrainConfig

ARGS = ["--baseline", "mlp", "--input-dim", "40", "--outputs", "10", "--width", "16", "--hidden-layers", "2",
        "--alpha", "3", "--train", "--train-seeds", "2", "--train-points", "3", "--epochs", "1", "--train-subset",
        "200", "--test-subset", "100", "--threads", "1", "--quiet"]
JOBS = 8  # primal n = 4, 15, 16 and dual n = 4 (n = 15, 16 are the primal's networks), two seeds each
TIMES = ("seconds_per_epoch",)  # measured, so equal between a resumed and an uninterrupted run only when stored
# the CLI with a small ensemble-NTK convergence check on the page (the default one takes seconds)
CLI = ("import functools, sys\n"
       "import ensplit.reports.collegial_figures as figures\n"
       "figures.ensemble_ntk_convergence = functools.partial(figures.ensemble_ntk_convergence, width=8, "
       "hidden_layers=2, members=(1, 4), angles=9, mean_samples=64, repeats=1)\n"
       "from ensplit.cli import main\n"
       "sys.exit(main(sys.argv[1:]))\n")


@pytest.fixture
def small_page(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensplit.reports.collegial_figures as figures

    small = functools.partial(figures.ensemble_ntk_convergence, width=8, hidden_layers=2, members=(1, 4),
                              angles=9, mean_samples=64, repeats=1)
    monkeypatch.setattr(figures, "ensemble_ntk_convergence", small)


def run(folder: Path | None, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_VARIABLE, None)
    if crash:
        env[CRASH_VARIABLE] = crash
    out = [] if folder is None else ["--out", str(folder)]
    return subprocess.run([sys.executable, "-c", CLI, "collegial", *out, *ARGS, "--json"], env=env,
                          capture_output=True, text=True, timeout=300)


def numbers(result: dict) -> dict:
    """The result without what is measured or where it was written."""
    rows = [{k: v for k, v in row.items() if k not in TIMES} for row in result["training"]]
    return {**{k: v for k, v in result.items() if k != "report"}, "training": rows}


@pytest.mark.slow  # three subprocess runs
def test_a_killed_collegial_train_resumes_training_only_the_unfinished_networks(tmp_path: Path) -> None:
    whole = run(None)  # uninterrupted, in a temporary folder
    assert whole.returncode == 0, whole.stderr[-2000:]
    folder = tmp_path / "killed"
    killed = run(folder, "stored:3")  # killed just after the third network's run was committed
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = finished_at(folder)
    assert len(first) == 3 and not (folder / "results.json").exists()
    resumed = run(folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = finished_at(folder)
    assert len(after) == JOBS and all(after[job] == when for job, when in first.items())  # not trained again
    result = json.loads(resumed.stdout)
    assert numbers(result) == numbers(json.loads(whole.stdout))
    assert json.loads((folder / "results.json").read_text()) == result and (folder / "report.html").is_file()


def _config(**changes) -> CollegialConfig:
    values = {"baseline": "mlp", "input_dim": 40, "outputs": 10, "width": 16, "hidden_layers": 2, "alpha": 3.0,
              "collegial": {"train": True}, "train_seeds": 2, "train_widths": (4, 16), "train_subset": 200,
              "test_subset": 100, "threads": 1, "train": {"epochs": 1}}
    return CollegialConfig.from_mapping({**values, **changes})


def test_a_finished_collegial_trains_nothing_and_returns_the_same_result(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_collegial(_config(), tmp_path, progress=False)
    assert first.training is not None and first.training.trained_jobs == 6  # (4, m) per curve, (16, 1) shared
    calls = []
    monkeypatch.setattr(ensplit.runs.jobs, "train", lambda *a, **k: calls.append(a))  # a spy on the training loop
    again = run_collegial(_config(), tmp_path, progress=False)
    assert again.training is not None and again.training.trained_jobs == 0 and calls == []
    assert again.to_json() == first.to_json()  # seconds per epoch too: they are the stored runs' own
    monkeypatch.undo()
    more = run_collegial(_config(train_widths=(4, 8, 16)), tmp_path, progress=False)
    assert more.training is not None and more.training.trained_jobs == 2  # n = 8 alone (m = 2 on both curves)
    kept = [r for r in more.to_json()["training"] if r["width"] != 8]
    assert kept == first.to_json()["training"]


def test_a_changed_recipe_is_refused_with_the_fields_that_differ(capsys, tmp_path: Path, small_page) -> None:
    argv = ["collegial", "--out", str(tmp_path), *ARGS, "--train-widths", "16"]
    assert main(argv) == 0
    capsys.readouterr()
    err = refused(capsys, [*argv, "--epochs", "2", "--lr", "0.05"], "made by an incompatible config (differs in: ")
    assert "train.epochs (folder 1, given 2)" in err and "train.lr (folder 0.1, given 0.05)" in err
    again = run_collegial(_config(alpha=3.5, train_widths=(16,)), tmp_path, progress=False)  # the same recipe
    assert again.training is not None and again.training.trained_jobs == 0  # α only chooses the networks


def test_a_job_id_is_pinned() -> None:
    """A change that moves job ids (and so retrains every stored collegial folder) must fail here."""
    recipe = Recipe(train_subset=200, test_subset=100, threads=1, train=TrainConfig(epochs=1))
    job = point_job(recipe, MLPBaseline(40, 16, 2, 10, True), width=4, members=4, seed=0)
    assert (job.kind, job.method, job.members, job.seeds, job.method_options) == (
        "collegial", "grouped", 4, (0,), (("aggregation", "collegial"),))
    assert job.job_id == "0b5d82cacf2589c37006"


def test_results_json_carries_the_glossary_keys(tmp_path: Path, small_page) -> None:
    result = ensplit.collegial(out=tmp_path, progress=False, baseline="mlp", input_dim=40, outputs=10, width=16,
                               hidden_layers=2, alpha=3.0, train=True, train_seeds=2, train_widths=(16,),
                               train_subset=200, test_subset=100, threads=1, epochs=1)  # the front door
    values = json.loads((tmp_path / "results.json").read_text())
    assert values == result.to_json() and values["report"] == str(tmp_path / "report.html")
    assert {"params", "flops_per_example", "ensplit_version", "git_commit"} <= set(values)
    assert values["git_commit"] == provenance()["git_commit"]
    assert values["flops_per_example"] == pytest.approx(values["members"] * 2 * (40 * 15 + 15 * 15 + 15 * 10))
    for row in values["training"]:
        assert {"params", "flops_per_example", "seconds_per_epoch"} <= set(row)
        assert row["seconds_per_epoch"] > 0 and row["flops_per_example"] == 2 * (40 * 16 + 16 * 16 + 16 * 10)
    again = run_collegial(_config(train_widths=(16,)), tmp_path, progress=False)
    assert again.training is not None and again.training.trained_jobs == 0


def test_an_older_collegial_folder_is_used_and_then_resumes(tmp_path: Path, small_page) -> None:
    """A folder an older release left (its report page alone, no ownership marker) is collegial's."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "report.html").write_text(PAGE_START + "<title>ensplit collegial</title></head></html>")
    assert main(["collegial", "--out", str(folder), *ARGS, "--train-widths", "16"]) == 0
    assert (folder / "results.sqlite").is_file() and len(finished_at(folder)) == 2
    (folder / ".ensplit-command").unlink()  # as an ensplit without the marker would have left it
    again = run_collegial(_config(train_widths=(16,)), folder, progress=False)
    assert again.training is not None and again.training.trained_jobs == 0


@pytest.mark.slow  # two spawned workers import torch
def test_a_process_pool_trains_the_same_networks(tmp_path: Path) -> None:
    local = run_collegial(_config(), tmp_path / "local", progress=False).to_json()
    pooled = run_collegial(_config(executor="process", workers=2), tmp_path / "pool", progress=False).to_json()
    assert numbers(pooled) == numbers(local)
