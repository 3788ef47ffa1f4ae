"""Bad input of every class is refused before any work starts: one line naming the field, the value and what
is allowed, exit 2, no traceback, no folder left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensplit.cli import main

TINY = ["--widths", "4,8", "--epochs", "1", "--pool-min", "2", "--pool-max", "2", "--train-subset", "100",
        "--test-subset", "50", "--bootstrap", "0", "--cnll-splits", "1", "--no-report", "--quiet"]


def refused(capsys, argv: list[str], needle: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert needle in err, err
    return err


@pytest.mark.parametrize("extra, needle", [
    (["--device", "tpu"], "device = 'tpu': must be auto, cpu, cuda or cuda:N"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--momentum", "-1"], "momentum = -1.0: must be >= 0"),
    (["--label-smoothing", "5"], "label_smoothing = 5.0: must be < 1"),
    (["--data-seed", "-1"], "data_seed = -1: must be >= 0"),
    (["--train-subset", "0"], "train_subset = 0: must be >= 1"),
    (["--test-subset", "0"], "test_subset = 0: must be >= 2"),
    (["--test-subset", "1"], "test_subset = 1: must be >= 2"),
    (["--train-subset", "-5"], "train_subset = -5: must be >= 1"),
    (["--tune", "--tune-networks", "0"], "tune_networks = 0: must be >= 1"),
    (["--widths", "10000000"], "widths = 10000000: must be <= 1000000"),
    (["--widths", "1000000"], "needs at least"),  # a width within the field's range that cannot fit in memory
    (["--num-samples", "100000000"], "num_samples = 100000000: must be <= 1000000"),
    (["--pool-max", "100000000"], "pool_max = 100000000: must be <= 10000"),
    (["--lr", "nan"], "lr = nan"),
    (["--epochs", "2.5"], "epochs = '2.5': not an integer"),
    (["--augment", "maybe"], "augment = 'maybe': not a boolean"),
    (["--family-option", "colour=red"], "unknown option 'colour' for family 'mlp'"),
    (["--family-option", "norm=sometimes"], "option norm of family 'mlp' needs a bool"),
    (["--dropout", "0.1", "--family", "resnet", "--depth", "8"], "family 'resnet' has no dropout layers"),
    (["--step-milestones", "0.8,0.2"], "milestones must be increasing"),
    # a power law in n has three parameters: refused up front, not after training every pool
    (["--predict-max-n", "2"], "predict_max_n = 2: must be >= 3"),
])
def test_study_refuses_bad_values_before_work(capsys, tmp_path, extra, needle):
    out = tmp_path / "s"
    refused(capsys, ["study", "--out", str(out), *TINY, *extra], needle)
    assert not out.exists()  # refused before the folder was made


@pytest.mark.parametrize("argv, needle", [
    (["compare", "--budget", "1", "--members", "4"], "no method fits budget = 1"),
    (["compare", "--budget", "12q"], "budget = '12q'"),
    (["compare", "--members", "0"], "members = 0: must be >= 1"),
    (["compare", "--method-option", "mimo.nope=1"], "unknown option 'nope' for method 'mimo'"),
    (["landscape", "--train-subset", "0", "--test-subset", "0"], "train_subset = 0: must be >= 1"),
    (["landscape", "--inits", "1"], "inits = 1: must be >= 2"),
    (["designspace", "--members", "1"], "members = 1: must be >= 2"),
    (["collegial", "--baseline", "mlp", "--input-dim", "4", "--width", "4", "--alpha", "1e6"],
     "alpha = 1000000.0: must be <= 100"),
    (["budget", "count", "--family", "mlp", "--width", "8", "--in-shape", "0"], "in_shape = [0]"),
    (["budget", "count", "--family", "mlp", "--width", "0"], "width = 0"),
    (["evaluate", "x.npz", "--cnll-splits", "0"], "cnll_splits = 0: must be an integer in [1, 1000]"),
    (["evaluate", "x.npz", "--cnll-splits", "100000"], "cnll_splits = 100000: must be an integer in [1, 1000]"),
    (["evaluate", "x.npz", "--seed", "99999999999999999999"], "seed = 99999999999999999999: must be an integer in "
                                                              "[0, 2147483647]"),
    (["analyze", "x.npz", "y.npz", "--cnll-splits", "5000"], "cnll_splits = 5000: must be an integer in [1, 1000]"),
    (["analyze", "x.npz", "y.npz", "--predict-max-n", "2"], "predict_max_n = 2: must be an integer >= 3"),
])
def test_other_commands_refuse_bad_values(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    refused(capsys, [*argv, "--quiet"] if argv[0] not in ("budget", "evaluate", "analyze") else argv, needle)


@pytest.mark.parametrize("variable, value, needle", [
    ("ENSPLIT_KEEP_FREED_MEMORY", "sometimes", "ENSPLIT_KEEP_FREED_MEMORY = 'sometimes': must be a boolean"),
    ("ENSPLIT_CONV_TABLE", "/nonexistent/table.json", "ENSPLIT_CONV_TABLE file /nonexistent/table.json not found"),
])
def test_bad_environment_settings_are_refused_before_work(capsys, tmp_path, monkeypatch, variable, value, needle):
    monkeypatch.setenv(variable, value)
    out = tmp_path / "s"
    refused(capsys, ["study", "--out", str(out), *TINY], needle)
    assert not out.exists()


def test_compare_refuses_an_impossible_budget_before_training(capsys, tmp_path):
    refused(capsys, ["compare", "--methods", "deep", "--members", "4", "--budget", "1", "--epochs", "1",
                     "--train-subset", "50", "--test-subset", "20", "--quiet"], "no method fits")


@pytest.mark.parametrize("text, needle", [
    ("train = 5\n", "train = 5: must be a table"),
    ('train = "sgd"\n', "train = 'sgd': must be a table"),
    ("[train]\nepochs = \"ten\"\n", "epochs = 'ten': not an integer"),
    ("[train]\nepochs = true\n", "epochs = True: input should be a valid integer"),
    ("[train]\nlr = \"fast\"\n", "lr = 'fast': not a number"),
    ("study = 3\n", "study = 3: must be a table"),
    ("widths = [4, \"x\"]\n", "widths = 'x'"),
    ("[train]\nbogus = 1\n", "unknown field 'train.bogus'"),
    ("widths = [4, 8\n", "is not valid TOML"),
])
def test_malformed_config_files_are_refused(capsys, tmp_path, text, needle):
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    refused(capsys, ["study", "--out", str(tmp_path / "s"), "--config", str(config), "--quiet"], needle)


def test_config_files_that_are_not_text_or_not_files(capsys, tmp_path):
    binary = tmp_path / "latin1.toml"
    binary.write_bytes("epochs = 3 # caf\xe9\n".encode("latin-1"))
    refused(capsys, ["study", "--config", str(binary), "--out", str(tmp_path / "s")], "is not UTF-8 text")
    refused(capsys, ["compare", "--config", str(tmp_path)], "is a folder, not a TOML file")
    refused(capsys, ["designspace", "--config", str(tmp_path / "none.toml")], "config file not found")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_prediction_files_are_checked_before_they_are_read(capsys, tmp_path):
    good = {"log_probs": np.log(np.full((2, 5, 3), 1 / 3)), "labels": np.zeros(5, int)}
    (tmp_path / "empty.npz").write_bytes(b"")
    refused(capsys, ["evaluate", str(tmp_path / "empty.npz")], "is empty")
    refused(capsys, ["evaluate", str(_npz(tmp_path / "s.npz", log_probs=np.array([["a"]]), labels=np.array(["x"])))],
            "'log_probs' must be floating-point")
    refused(capsys, ["evaluate", str(_npz(tmp_path / "l.npz", log_probs=good["log_probs"],
                                          labels=np.array(list("abcde"))))], "'labels' must be integer")
    refused(capsys, ["evaluate", str(_npz(tmp_path / "z.npz", log_probs=np.zeros((0, 5, 3)), labels=good["labels"]))],
            "zero members")
    np.save(tmp_path / "plain.npy", good["log_probs"])
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    refused(capsys, ["evaluate", str(tmp_path / "plain.npz")], "a single .npy array, not an .npz archive")
    for name, value in (("inf", np.inf), ("text", "12"), ("half", 2.5)):
        path = _npz(tmp_path / f"p_{name}.npz", **good, params_per_member=value)
        other = _npz(tmp_path / f"q_{name}.npz", **good, params_per_member=7)
        refused(capsys, ["analyze", str(path), str(other), "--no-report"], "params_per_member")
    refused(capsys, ["evaluate", str(_npz(tmp_path / "o.npz", log_probs=np.array([1, "a"], dtype=object),
                                          labels=good["labels"]))], "never unpickles")


def test_a_header_claiming_a_huge_array_is_refused_without_allocating(capsys, tmp_path):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (100_000, 1_000_000, 1_000)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(5, int))
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("log_probs.npy", header.getvalue())
        archive.writestr("labels.npy", labels.getvalue())
    refused(capsys, ["evaluate", str(tmp_path / "huge.npz")], "GiB, more than half of the")


def test_a_study_whose_networks_all_diverge_says_so(capsys, tmp_path):
    """Every network diverges at an absurd learning rate: the error names the widths and the cause."""
    argv = ["study", "--out", str(tmp_path / "s"), "--widths", "4,8", "--epochs", "6", "--pool-min", "2",
            "--pool-max", "2", "--train-subset", "400", "--test-subset", "50", "--bootstrap", "0", "--cnll-splits",
            "1", "--no-report", "--quiet", "--lr", "1000", "--momentum", "0.99"]
    refused(capsys, argv, "every network of width 4, 8 diverged")
