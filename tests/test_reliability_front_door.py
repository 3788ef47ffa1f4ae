"""The Python front door and the prediction-file commands refuse a user's mistake in one line (an EnsplitError,
or exit 2 from the CLI) before any work, and never mistake one thing for another: a recipe given as a mapping,
an `--out` that is a file, a recommend folder given to `report`, a big-endian or uint64 file, pools of other
tasks. Found by trying each by hand; each test fails without its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.test_reliability_inputs import refused

import ensplit
from ensplit.cli import main
from ensplit.recipe import build_settings


def _pool(path: Path, members: int, classes: int, params: int | None, labels: np.ndarray | None = None,
          seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, 40) if labels is None else labels
    logits = rng.normal(size=(members, labels.shape[0], classes)) + 2.0 * np.eye(classes)[labels]
    arrays = {"log_probs": torch.log_softmax(torch.tensor(logits), -1).numpy(), "labels": labels}
    if params is not None:
        arrays["params_per_member"] = params
    np.savez(path, **arrays)
    return path


def test_report_stays_the_function_after_the_report_package_is_imported():
    """`ensplit.report` is the front door's function; importing the report pages (`ensplit.reports`, once named
    `ensplit.report` too) must not replace it."""
    code = ("import ensplit, ensplit.reports.study_report as pages; assert callable(ensplit.report), ensplit.report; "
            "assert callable(pages.write_study_report)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_recipe_mapping_is_used_and_anything_else_refused():
    config = build_settings(ensplit.StudyConfig, "study", {"recipe": {"family": "cnn1d", "train": {"epochs": 3}}})
    assert (config.recipe.family, config.recipe.train.epochs) == ("cnn1d", 3)
    round_trip = build_settings(ensplit.StudyConfig, "study", {"recipe": config.recipe.to_json()})
    assert round_trip.recipe == config.recipe
    with pytest.raises(ensplit.EnsplitError, match=r"recipe = 'cnn1d': must be a Recipe"):
        ensplit.study(recipe="cnn1d")
    with pytest.raises(ensplit.EnsplitError, match="recipe has unknown field 'fam'"):
        ensplit.study(recipe={"fam": "cnn1d"})
    with pytest.raises(ensplit.EnsplitError, match="epochs is given both as a keyword and inside recipe"):
        ensplit.study(recipe=ensplit.Recipe(), epochs=1)


@pytest.mark.parametrize("command", [
    ["analyze", "A", "B"],
    ["compare", "--methods", "single", "--width", "8", "--epochs", "1", "--train-subset", "50", "--quiet"],
    ["designspace", "--widths", "8", "--depths", "2", "--members", "2", "--epochs", "1", "--quiet"],
    ["landscape", "--width", "8", "--inits", "2", "--epochs", "1", "--quiet"],
    ["collegial", "--baseline", "mlp", "--input-dim", "4", "--width", "4", "--alpha", "1", "--quiet"],
])
def test_an_out_that_is_a_file_is_refused_before_any_work(capsys, tmp_path, command):
    a, b = _pool(tmp_path / "a.npz", 3, 4, 100), _pool(tmp_path / "b.npz", 3, 4, 200)
    command = [{"A": str(a), "B": str(b)}.get(word, word) for word in command]
    blocker = tmp_path / "file.txt"
    blocker.write_text("mine\n")
    refused(capsys, [*command, "--out", str(blocker)], f"{blocker} exists and is not a folder")
    refused(capsys, [*command, "--out", str(blocker / "sub")], "a path component is a file")
    assert blocker.read_text() == "mine\n"


def test_evaluate_reads_big_endian_files_like_native_ones(capsys, tmp_path):
    native = _pool(tmp_path / "native.npz", 3, 4, None)
    with np.load(native) as data:
        np.savez(tmp_path / "big.npz", log_probs=data["log_probs"].astype(">f8"), labels=data["labels"].astype(">i8"))
    assert ensplit.evaluate(tmp_path / "big.npz").to_json() == ensplit.evaluate(native).to_json()


def test_labels_beyond_int64_are_reported_as_they_are(capsys, tmp_path):
    labels = np.zeros(40, np.uint64)
    labels[0] = 2**63 + 5
    np.savez(tmp_path / "u.npz", log_probs=np.log(np.full((2, 40, 4), 0.25)), labels=labels)
    refused(capsys, ["evaluate", str(tmp_path / "u.npz")], f"found range [0, {2**63 + 5}]")


def test_prediction_files_that_are_ambiguous_or_folders(capsys, tmp_path):
    log_probs = np.log(np.full((2, 40, 4), 0.25))
    np.savez(tmp_path / "both.npz", log_probs=log_probs, logits=log_probs, labels=np.zeros(40, int))
    refused(capsys, ["evaluate", str(tmp_path / "both.npz")], "holds both 'log_probs' and 'logits'")
    bad = log_probs.copy()
    bad[0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", logits=bad, labels=np.zeros(40, int))
    refused(capsys, ["evaluate", str(tmp_path / "nan.npz")], "nan.npz: logits contain NaN")
    np.savez(tmp_path / "one.npz", log_probs=log_probs[:, :1], labels=np.zeros(1, int))
    refused(capsys, ["evaluate", str(tmp_path / "one.npz")], "one.npz: CNLL's test-time cross-validation needs at "
                                                               "least 2 test objects")
    (tmp_path / "dir.npz").mkdir()
    refused(capsys, ["evaluate", str(tmp_path / "dir.npz")], "dir.npz is a folder; give an .npz file")


def test_analyze_refuses_pools_of_other_tasks_and_names_both_files(capsys, tmp_path):
    labels = np.random.default_rng(0).integers(0, 4, 40)
    a = _pool(tmp_path / "a.npz", 3, 4, 100, labels)
    five = _pool(tmp_path / "five.npz", 3, 5, 200, labels)
    refused(capsys, ["analyze", str(a), str(five), "--no-report"], "five: 5 classes, but a has 4")
    same = _pool(tmp_path / "same.npz", 3, 4, 100, labels, seed=1)
    refused(capsys, ["analyze", str(a), str(same), "--no-report"], "a and same have the same params_per_member (100)")


def test_analyze_skips_folders_named_like_pools_and_makes_no_study_folder(capsys, tmp_path):
    labels = np.random.default_rng(0).integers(0, 4, 40)
    pools = tmp_path / "pools"
    pools.mkdir()
    _pool(pools / "a.npz", 3, 4, 100, labels)
    _pool(pools / "b.npz", 3, 4, 200, labels, seed=1)
    (pools / "old.npz").mkdir()
    out = tmp_path / "analysis"
    assert main(["analyze", str(pools), "--out", str(out), "--bootstrap", "0", "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "Study folder" not in printed and not out.exists()


def test_analyze_and_evaluate_refuse_wrong_python_arguments(tmp_path):
    labels = np.random.default_rng(0).integers(0, 4, 40)
    _pool(tmp_path / "a.npz", 3, 4, 100, labels)
    _pool(tmp_path / "b.npz", 3, 4, 200, labels, seed=1)
    assert ensplit.analyze(tmp_path, bootstrap=0, report=False).analysis.sizes  # one folder, given alone
    for inputs in (None, 5, []):
        with pytest.raises(ensplit.EnsplitError, match="inputs = .*: must be a path"):
            ensplit.analyze(inputs, report=False)
    with pytest.raises(ensplit.EnsplitError, match="unknown field 'bogus'; known: temperature, cnll_splits"):
        ensplit.analyze([tmp_path], bogus=1)
    with pytest.raises(ensplit.EnsplitError, match="report = 'no': must be True or False"):
        ensplit.analyze([tmp_path], report="no")
    with pytest.raises(ensplit.EnsplitError, match="file = None: must be a path"):
        ensplit.evaluate(None)
    for seed in ("x", 1.5, 2**80):
        with pytest.raises(ensplit.EnsplitError, match="seed = .*: must be an integer in"):
            ensplit.evaluate(tmp_path / "a.npz", seed=seed)


@pytest.mark.parametrize("options, needle", [
    (dict(norm="zzz"), "option norm of family 'mlp' needs a bool, got 'zzz'"),
    (dict(bias="maybe"), "option bias of family 'mlp' needs a bool"),
    (dict(dropout=2.0), "option dropout of family 'mlp' must lie in [0, 1), got 2.0"),
    (dict(num_classes="3"), "num_classes must be a positive integer, got '3'"),
    (dict(num_classes=2.5), "num_classes must be a positive integer, got 2.5"),
    (dict(in_shape=(-3,)), "in_shape must be a tuple of positive integers, got (-3,)"),
    (dict(in_shape="40"), "in_shape must be a tuple of positive integers, got '40'"),
])
def test_the_python_planner_checks_what_the_cli_checks(options, needle):
    with pytest.raises(ensplit.EnsplitError) as error:
        ensplit.count_params("mlp", 16, **options)
    assert needle in str(error.value)


def test_the_planner_takes_numpy_integers_and_a_default_depth():
    assert ensplit.count_params("mlp", 16, num_classes=np.int64(10), in_shape=(np.int64(40),)) == \
        ensplit.count_params("mlp", 16, num_classes=10, in_shape=(40,))
    from ensplit.models import get_family

    assert ensplit.equivalents("mlp", None, 16, 4) == ensplit.equivalents("mlp", get_family("mlp").default_depth, 16, 4)


@pytest.mark.parametrize("cls, table, settings, needle", [
    (ensplit.CompareConfig, "compare", {"methods": "single,single"}, "methods = ['single', 'single']: must be "
                                                                     "distinct"),
    (ensplit.CompareConfig, "compare", {"sweep_members": "2,2"}, "sweep_members = [2, 2]: must be distinct"),
    (ensplit.CompareConfig, "compare", {"sweep_budgets": "0.5,0.5"}, "sweep_budgets = [0.5, 0.5]: must be distinct"),
    (ensplit.RecommendConfig, "recommend", {"methods": "mimo,mimo"}, "methods = ['mimo', 'mimo']: must be distinct"),
    (ensplit.RecommendConfig, "recommend", {"sharing_members": "4,4"}, "sharing_members = [4, 4]: must be distinct"),
])
def test_lists_that_name_a_value_twice_are_refused(cls, table, settings, needle):
    with pytest.raises(ensplit.EnsplitError) as error:
        build_settings(cls, table, settings)
    assert needle in str(error.value)


def test_report_names_a_recommend_folder_for_what_it_is(capsys, tmp_path):
    from ensplit.runs.folder import open_folder

    folder = open_folder(ensplit.RecommendConfig(), tmp_path / "rec", "recommend")
    folder.store.close()
    refused(capsys, ["report", str(tmp_path / "rec")], "is an `ensplit recommend` folder, not a study folder")
    (tmp_path / "rec" / "config.toml").unlink()  # the folder's marker still says whose it is
    refused(capsys, ["report", str(tmp_path / "rec")], "is an `ensplit recommend` folder, not a study folder")


def test_a_refused_analysis_leaves_no_folder_behind(capsys, tmp_path):
    labels = np.random.default_rng(0).integers(0, 4, 40)
    a = _pool(tmp_path / "a.npz", 3, 4, 100, labels)
    five = _pool(tmp_path / "five.npz", 3, 5, 200, labels)
    refused(capsys, ["analyze", str(a), str(five), "--out", str(tmp_path / "new" / "analysis")], "5 classes")
    assert not (tmp_path / "new").exists()
