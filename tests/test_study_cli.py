"""`ensplit study` end to end on a tiny MNIST-1D grid: summary, report, store, refusal of other configs."""

import ast
import json

import numpy as np
import pytest

from ensplit.cli import main
from studies import cli_stdout

TINY = ["--widths", "4,8,16", "--epochs", "2", "--pool-min", "4", "--pool-max", "8", "--train-subset", "400",
        "--test-subset", "200", "--bootstrap", "3", "--cnll-splits", "2", "--quiet"]


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """The tiny study, run once for the module: (folder, stdout). Each test can run alone."""
    out = tmp_path_factory.mktemp("study") / "s"
    return out, cli_stdout(["study", "--out", str(out), *TINY, "--json"])


@pytest.fixture
def study(study_run):
    return study_run[0]


def test_study_json_report_and_store(study_run):
    study, stdout = study_run
    result = json.loads(stdout)  # stdout holds the JSON and nothing else
    assert {"budgets", "power_laws", "prediction", "sizes"} <= set(result)
    assert [b["budget"] for b in result["budgets"]] == sorted(b["budget"] for b in result["budgets"])
    for row in result["budgets"]:
        assert row["advantage"] == pytest.approx(row["single_cnll"] - row["best_cnll"])
        assert row["best_n"] * row["best_params"] <= row["budget"]
    page = (study / "report.html").read_text()
    assert page.count("<img src='data:image/png;base64,") >= 7
    assert (study / "config.toml").exists() and (study / "results.sqlite").exists()


def _job_table(folder):
    from ensplit.store import ResultStore

    store = ResultStore(folder)
    try:
        return sorted(store._conn.execute("SELECT job_id, finished_at, seconds FROM jobs"))
    finally:
        store.close()


def test_rerun_trains_nothing_and_reports_the_same(study_run, capsys):
    study, first_output = study_run
    jobs = _job_table(study)
    assert main(["study", "--out", str(study), *TINY, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert _job_table(study) == jobs  # no job trained or rewritten: the same rows, the same finishing times
    assert again["budgets"] == json.loads(first_output)["budgets"]
    assert main(["report", str(study), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert again["budgets"] == report["budgets"]
    assert f"ensplit report: report written to {study}" in captured.err  # the command the user ran


def test_a_folder_of_another_config_is_refused(study, capsys):
    args = [a if a != "2" else "3" for a in TINY]  # epochs 2 -> 3
    assert main(["study", "--out", str(study), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "incompatible config" in err and len(err.splitlines()) == 1
    assert "differs in: train.epochs (folder 2, given 3)" in err  # the field and both values, not just "train"


def test_tuning_picks_a_grid_cell_per_width(tmp_path, capsys):
    out = tmp_path / "tuned"
    args = ["--widths", "4,8,16", "--epochs", "1", "--pool-min", "2", "--pool-max", "2", "--train-subset", "300",
            "--test-subset", "100", "--bootstrap", "0", "--cnll-splits", "1", "--tune", "true",
            "--tune-weight-decays", "0,0.01", "--tune-dropouts", "0", "--tune-networks", "1", "--no-report", "--quiet"]
    assert main(["study", "--out", str(out), *args]) == 0
    from ensplit.store import ResultStore

    store = ResultStore(out)
    assert len(store.networks("tune")) == 3 * 2
    labels = store.labels("val")
    assert labels.shape[0] > 0
    tuned = ast.literal_eval(store.get_meta("tuned"))
    for width in (4, 8, 16):  # the chosen cell has the lowest mean validation NLL, recomputed by hand
        scores = {}
        for row in store.networks("tune", width, status="ok"):
            log_probs = store.log_probs([row], "val")[0]
            nll = -float(np.mean(log_probs[np.arange(len(labels)), labels]))
            decay = store.job_train_config(row["job_id"])["weight_decay"]
            scores.setdefault(decay, []).append(nll)
        best = min(scores, key=lambda d: np.mean(scores[d]))
        assert tuned[width] == {"weight_decay": best, "dropout": 0.0}
        pool_jobs = {row["job_id"] for row in store.networks("pool", width)}
        assert all(store.job_train_config(j)["weight_decay"] == best for j in pool_jobs)


def test_analyze_on_npz_pools_matches_the_study(study, tmp_path, capsys):
    from ensplit.store import ResultStore

    store = ResultStore(study)
    for width in (4, 8, 16):
        log_probs, params = store.pool(width)
        np.savez(tmp_path / f"w{width}.npz", log_probs=log_probs, labels=store.labels(), params_per_member=params)
    assert main(["analyze", str(tmp_path), "--out", str(tmp_path / "a"), "--bootstrap", "3", "--cnll-splits", "2",
                 "--json"]) == 0
    analysed = json.loads(capsys.readouterr().out)
    assert main(["report", str(study), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert [b["best_cnll"] for b in analysed["budgets"]] == pytest.approx([b["best_cnll"] for b in reported["budgets"]])
    np.savez(tmp_path / "bad.npz", log_probs=np.zeros((2, 5, 3)), labels=np.zeros(5, int), params_per_member=3)
    assert main(["analyze", str(tmp_path / "bad.npz"), str(tmp_path / "w4.npz")]) == 2
    assert "error" in capsys.readouterr().err


def test_a_bf16_study_runs_from_the_cli(tmp_path, capsys):
    out = tmp_path / "bf16"
    args = ["--widths", "4,8,16", "--epochs", "1", "--pool-min", "2", "--pool-max", "3", "--train-subset", "200",
            "--test-subset", "100", "--bootstrap", "0", "--cnll-splits", "1", "--no-report", "--quiet"]
    assert main(["study", "--out", str(out), *args, "--precision", "bf16", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"budgets", "power_laws", "sizes"} <= set(result)
    from ensplit.store import ResultStore

    store = ResultStore(out)
    jobs = {row["job_id"] for row in store.networks("pool")}
    assert jobs and all(store.job_train_config(j)["precision"] == "bf16" for j in jobs)
    log_probs, _ = store.pool(16)
    assert log_probs.dtype == np.float32 and np.isfinite(log_probs).all()
    assert 'precision = "bf16"' in (out / "config.toml").read_text()


def test_threads_option_sets_torch_threads(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that the option has something to change
    try:
        args = ["--widths", "4", "--epochs", "1", "--pool-min", "1", "--pool-max", "1", "--train-subset", "100",
                "--test-subset", "50", "--bootstrap", "0", "--no-report", "--quiet"]
        assert main(["study", "--out", str(tmp_path / "s"), *args, "--threads", "1", "--json"]) == 0
        assert torch.get_num_threads() == 1
        assert main(["study", "--out", str(tmp_path / "t"), *args, "--threads", "0"]) == 2
        assert "threads = 0: must be >= 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_pools_too_small_to_predict_still_get_their_report(tmp_path, capsys):
    """Pools of 2 networks (fewer than the 3 a power law needs): no prediction, and the report says so instead of
    failing on the empty per-n RMSE figure."""
    out = tmp_path / "small-pools"
    args = ["--widths", "4,8", "--epochs", "1", "--pool-min", "2", "--pool-max", "2", "--train-subset", "100",
            "--test-subset", "50", "--bootstrap", "0", "--cnll-splits", "1", "--quiet"]
    assert main(["study", "--out", str(out), *args]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Predicting large ensembles" in html and "RMSE of the predicted CNLL_n per n" in html


def test_figure_helpers_take_no_curves():
    from ensplit.reports.study_figures import _colors
    from ensplit.reports.study_figures_nll import prediction_rmse_per_n

    assert _colors(0) == [] and len(_colors(3)) == 3
    fig = prediction_rmse_per_n({}, 4, "bootstrap")
    assert not fig.axes[0].axison and "No predictions" in fig.axes[0].texts[0].get_text()


def test_a_study_whose_resamples_cannot_fit_notes_the_missing_bands(tmp_path, capsys):
    out = tmp_path / "three"
    args = ["--widths", "4,8", "--epochs", "1", "--pool-min", "3", "--pool-max", "3", "--predict-pool", "3",
            "--predict-max-n", "3", "--bootstrap", "2", "--cnll-splits", "1", "--train-subset", "100",
            "--test-subset", "50", "--no-report", "--quiet", "--seed", "0"]
    assert main(["study", "--out", str(out), *args]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # seeded: neither of the 2 bootstrap resamples of 3 networks has 3 distinct ones; the study says so once
    notes = [line for line in err.splitlines() if "no prediction band" in line]
    assert len(notes) == 1 and "raise --predict-pool or --bootstrap" in notes[0], err
