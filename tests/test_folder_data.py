"""A run folder is bound to its data: other data under the same name is refused, another spelling of the same
path resumes, and a folder made by other settings is refused before any data is read.

Every case trains one tiny study on a tiny image folder (3 classes of 6×5 images), then reruns it as the
case says and checks the outcome against the first run: the same numbers and nothing retrained, or exit 2
with one line naming what differs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ensplit.experiments.study as study_module
from ensplit.cli import main
from ensplit.data.dataset import Dataset

CLASSES = ("cat", "dog", "emu")
ARGS = ["--family", "mlp", "--widths", "4,8", "--epochs", "1", "--pool-min", "3", "--pool-max", "3",
        "--members-per-run", "3", "--bootstrap", "0", "--cnll-splits", "2", "--no-report", "--quiet", "--json"]


def write_images(root: Path, seed: int, tests: int = 12) -> None:
    """`root/{train,test}/<class>/<i>.png`: 24 training and `tests` test images, random pixels from `seed`; the
    labels cycle the classes."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", 24), ("test", tests)):
        for i in range(count):
            folder = root / split / CLASSES[i % len(CLASSES)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")


def run(capsys, out: Path, dataset: str, *extra: str) -> tuple[int, dict | None, str]:
    code = main(["study", "--out", str(out), "--dataset", dataset, *ARGS, *extra])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def finished_jobs(out: Path) -> dict[str, float]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return dict(conn.execute("SELECT job_id, finished_at FROM jobs"))


@pytest.fixture
def trained(tmp_path, monkeypatch, capsys):
    """A finished tiny study of `tmp_path/data`, made with the absolute path, and its JSON."""
    monkeypatch.setenv("ENSPLIT_CACHE", str(tmp_path / "cache"))
    write_images(tmp_path / "data", seed=0)
    out = tmp_path / "study"
    code, result, err = run(capsys, out, str(tmp_path / "data"))
    assert code == 0, err
    return out, result


def test_digest_is_the_sha256_of_every_split_and_tells_data_apart() -> None:
    x, y = torch.arange(24, dtype=torch.uint8).view(4, 1, 2, 3), torch.tensor([0, 1, 0, 1])
    data = Dataset("d", x, y, x[:2], y[:2], num_classes=2, kind="image")
    manual = hashlib.sha256()
    for key, tensor in (("x_train", x), ("y_train", y), ("x_val", None), ("y_val", None), ("x_test", x[:2]),
                        ("y_test", y[:2])):
        if tensor is None:
            manual.update(f"{key}|none|".encode())
        else:
            array = tensor.numpy()
            manual.update(f"{key}|{array.dtype.str}|{array.shape}|".encode() + array.tobytes())
    assert data.digest() == manual.hexdigest()
    changed = x.clone()
    changed[3, 0, 1, 2] += 1  # one pixel of the training set
    assert Dataset("d", changed, y, x[:2], y[:2], num_classes=2, kind="image").digest() != data.digest()
    assert data.with_validation(0.25, 0).digest() != data.digest()  # the same examples, split otherwise


def test_another_spelling_of_the_same_path_resumes_and_trains_nothing(trained, tmp_path, monkeypatch, capsys):
    out, reference = trained
    before = finished_jobs(out)
    monkeypatch.chdir(tmp_path / "study")
    code, result, err = run(capsys, out, "../data")
    assert code == 0, err
    assert "is the folder's" in err and str(tmp_path / "data") in err
    assert finished_jobs(out) == before
    assert result["budgets"] == reference["budgets"] and result["sizes"] == reference["sizes"]
    assert 'dataset = "' + str(tmp_path / "data") + '"' in (out / "config.toml").read_text()


def test_other_images_under_the_same_path_are_refused(trained, tmp_path, capsys):
    out, _ = trained
    before = finished_jobs(out)
    shutil.rmtree(tmp_path / "data")
    write_images(tmp_path / "data", seed=1)  # same names and labels, other pixels
    code, result, err = run(capsys, out, str(tmp_path / "data"))
    assert code == 2 and result is None
    assert err.count("\n") == 1 and "holds results on other data" in err and "SHA-256" in err
    assert finished_jobs(out) == before


def test_a_folder_from_before_the_data_record_is_checked_on_its_labels(trained, tmp_path, capsys):
    out, reference = trained
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'data_sha256'")
    shutil.rmtree(tmp_path / "data")
    write_images(tmp_path / "data", seed=0, tests=11)  # the test labels differ
    code, _, err = run(capsys, out, str(tmp_path / "data"))
    assert code == 2 and err.count("\n") == 1 and "its test labels" in err
    shutil.rmtree(tmp_path / "data")
    write_images(tmp_path / "data", seed=0)  # the folder's own data again: resumes, and records it
    code, result, err = run(capsys, out, str(tmp_path / "data"))
    assert code == 0, err
    assert result["sizes"] == reference["sizes"]
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'data_sha256'").fetchone() is not None


def test_a_folder_of_other_settings_is_refused_before_any_data_is_read(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained

    def no_loading(*args, **kwargs):
        raise AssertionError("the data was read before the folder was checked")

    monkeypatch.setattr(study_module, "load_data", no_loading)
    code, _, err = run(capsys, out, str(tmp_path / "data"), "--epochs", "2")
    assert code == 2 and err.count("\n") == 1 and "incompatible config" in err and "epochs" in err
