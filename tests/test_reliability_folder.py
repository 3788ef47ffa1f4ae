"""A damaged study folder is detected and repaired or refused, and never mixed: a battery on a tiny study.

Every case starts from a copy of one finished tiny study, damages it, reruns `ensplit study` (or `report`)
and checks the outcome against the undamaged result: the same numbers, what was retrained, one line on
stderr, exit 2 where the folder cannot be used.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ensplit.cli import main
from ensplit.store import folder_lock
from studies import cli_stdout

ARGS = ["--widths", "4,8", "--epochs", "1", "--pool-min", "3", "--pool-max", "3", "--members-per-run", "3",
        "--train-subset", "200", "--test-subset", "100", "--bootstrap", "0", "--cnll-splits", "2", "--no-report",
        "--quiet", "--json"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny study and its printed JSON."""
    folder = tmp_path_factory.mktemp("reliability") / "study"
    return folder, json.loads(cli_stdout(["study", "--out", str(folder), *ARGS]))


@pytest.fixture
def study(finished, tmp_path):
    """A fresh copy of the finished study for one test to damage."""
    folder = tmp_path / "study"
    shutil.copytree(finished[0], folder)
    return folder


def jobs(folder: Path) -> dict[str, float]:
    with sqlite3.connect(folder / "results.sqlite") as conn:
        return dict(conn.execute("SELECT job_id, finished_at FROM jobs"))


def rerun(capsys, folder: Path, *extra: str, command: str = "study") -> tuple[int, dict | None, str]:
    argv = [command, str(folder), "--json"] if command == "report" else ["study", "--out", str(folder), *ARGS, *extra]
    code = main(argv)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def same_numbers(result: dict, reference: dict) -> bool:
    return result["budgets"] == reference["budgets"] and result["sizes"] == reference["sizes"]


def test_a_rerun_of_an_intact_folder_trains_nothing(study, finished, capsys):
    before = jobs(study)
    code, result, _ = rerun(capsys, study)
    assert code == 0 and same_numbers(result, finished[1]) and jobs(study) == before


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_index_is_refused_then_repaired_from_the_arrays(study, finished, capsys, damage):
    before = jobs(study)
    index = study / "results.sqlite"
    for side in ("results.sqlite-wal", "results.sqlite-shm"):
        (study / side).unlink(missing_ok=True)
    if damage == "truncate":
        index.write_bytes(index.read_bytes()[: index.stat().st_size // 3])
    else:
        index.write_bytes(os.urandom(8192))
    code, _, err = rerun(capsys, study)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--repair" in err
    code, _, err = rerun(capsys, study, command="report")
    assert code == 2 and "--repair" in err
    code, result, err = rerun(capsys, study, "--repair")
    assert code == 0 and "2 job(s) recovered" in err
    assert same_numbers(result, finished[1]) and jobs(study) == before  # nothing retrained
    assert (study / "results.sqlite.damaged").exists()  # the damaged index is kept for inspection


def test_a_deleted_index_is_rebuilt_from_the_sidecars(study, finished, capsys):
    before = jobs(study)
    for name in ("results.sqlite", "results.sqlite-wal", "results.sqlite-shm"):
        (study / name).unlink(missing_ok=True)
    code, result, err = rerun(capsys, study)
    assert code == 0 and "rebuilt the index" in err
    assert same_numbers(result, finished[1]) and jobs(study) == before


def test_a_deleted_sidecar_is_written_again_so_a_later_repair_keeps_its_job(study, finished, capsys):
    before = jobs(study)
    sidecar = sorted((study / "arrays").glob("*.json"))[0]
    original = json.loads(sidecar.read_text())
    sidecar.unlink()
    code, result, _ = rerun(capsys, study)
    assert code == 0 and same_numbers(result, finished[1]) and jobs(study) == before  # nothing retrained
    assert json.loads(sidecar.read_text()) == original  # the same record, rebuilt from the index
    (study / "results.sqlite").unlink()
    code, result, err = rerun(capsys, study)
    assert code == 0 and "rebuilt the index" in err and jobs(study) == before  # no job lost to the repair


def test_repair_keeps_what_a_readable_index_knows(study, finished, capsys):
    """--repair on a folder whose index is fine but a sidecar is gone keeps that job (the index gives the
    sidecar back first) and keeps the settings copy that `report` restores config.toml from."""
    before = jobs(study)
    sorted((study / "arrays").glob("*.json"))[0].unlink()
    code, result, err = rerun(capsys, study, "--repair")
    assert code == 0 and "rebuilt the index" in err and jobs(study) == before  # nothing retrained
    (study / "config.toml").unlink()
    code, result, err = rerun(capsys, study, command="report")
    assert code == 0 and "restored from the copy in the index" in err and same_numbers(result, finished[1])


def test_a_folder_from_before_the_marker_resumes_even_with_a_persons_notes_in_it(study, finished, capsys):
    before = jobs(study)
    (study / ".ensplit-command").unlink()  # as an older ensplit left it
    (study / "notes.txt").write_text("run on the old laptop\n")
    code, result, _ = rerun(capsys, study)
    assert code == 0 and same_numbers(result, finished[1]) and jobs(study) == before
    assert (study / ".ensplit-command").read_text() == "study\n" and (study / "notes.txt").is_file()


def _first_array(folder: Path) -> Path:
    with sqlite3.connect(folder / "results.sqlite") as conn:
        name = conn.execute("SELECT test_file FROM jobs ORDER BY width LIMIT 1").fetchone()[0]
    return folder / "arrays" / name


def _damage(array: Path, damage: str) -> None:
    if damage == "missing":
        array.unlink()
    elif damage == "truncated":
        array.write_bytes(array.read_bytes()[:200])
    elif damage == "wrong shape":
        np.save(array, np.zeros((3, 7, 10), dtype=np.float32))
    else:
        with open(array, "wb") as f:
            np.save(f, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)


DAMAGES = ["missing", "truncated", "wrong shape", "pickled object array"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_array_makes_its_job_unfinished_and_it_is_retrained(study, finished, capsys, damage):
    before = jobs(study)
    _damage(_first_array(study), damage)
    code, result, err = rerun(capsys, study)
    assert code == 0 and "1 stored job(s)" in err and "trained again" in err
    assert same_numbers(result, finished[1])  # retrained to the very same predictions
    after = jobs(study)
    assert sorted(after) == sorted(before) and sum(after[j] != before[j] for j in before) == 1


@pytest.mark.parametrize("damage", DAMAGES)
def test_report_never_analyses_a_damaged_array(study, capsys, damage):
    _damage(_first_array(study), damage)
    code, _, err = rerun(capsys, study, command="report")
    assert code == 2 and "marked unfinished" in err and len(err.strip().splitlines()) == 1
    assert len(jobs(study)) == 1  # the damaged job now counts as unfinished


def test_a_deleted_config_with_other_settings_is_refused_never_mixed(study, capsys):
    (study / "config.toml").unlink()
    other = [a if a != "3" else "4" for a in ARGS]  # pool sizes 3 -> 4: another study
    code, _, err = rerun(capsys, study)
    assert code == 0  # the same settings resume (the index confirms them)
    (study / "config.toml").unlink()
    code = main(["study", "--out", str(study), *other])
    err = capsys.readouterr().err
    assert code == 2 and "holds the results of other settings" in err
    with sqlite3.connect(study / "results.sqlite") as conn:
        sizes = dict(conn.execute("SELECT width, COUNT(*) FROM networks GROUP BY width"))
    assert sizes == {4: 3, 8: 3}  # never mixed


@pytest.mark.parametrize("content", [b"", b"widths = [4, \x00"])
def test_an_empty_or_damaged_config_resumes_from_the_index(study, finished, capsys, content):
    before = jobs(study)
    (study / "config.toml").write_bytes(content)
    code, result, err = rerun(capsys, study)
    assert code == 0 and "rewritten" in err and same_numbers(result, finished[1]) and jobs(study) == before
    (study / "config.toml").write_bytes(content)
    code, result, err = rerun(capsys, study, command="report")
    assert code == 0 and "restored from the copy in the index" in err and same_numbers(result, finished[1])


def test_a_second_run_on_a_folder_in_use_is_refused(study, capsys):
    with folder_lock(study):
        code, _, err = rerun(capsys, study)
        assert code == 2 and f"in use by PID {os.getpid()}" in err
        code, _, err = rerun(capsys, study, command="report")
        assert code == 2 and "in use by PID" in err
    code, _, _ = rerun(capsys, study)
    assert code == 0  # released


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(study, capsys):
    study.chmod(0o555)
    try:
        code, _, err = rerun(capsys, study)
        assert code == 2 and "read-only" in err and len(err.strip().splitlines()) == 1
    finally:
        study.chmod(0o755)


def test_a_read_only_folder_check_does_not_depend_on_being_root(study, capsys, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == study else real_access(path, mode))
    code, _, err = rerun(capsys, study)
    assert code == 2 and "is read-only" in err


def test_out_under_a_plain_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["study", "--out", str(tmp_path / "file" / "study"), *ARGS])
    err = capsys.readouterr().err
    assert code == 2 and "a path component is a file" in err and len(err.strip().splitlines()) == 1


def test_written_files_have_ordinary_permissions(finished):
    folder = finished[0]
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*folder.glob("arrays/*"), folder / "config.toml"]}
    expected = 0o666 & ~_umask()
    assert modes and set(modes.values()) == {expected}, modes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_damaged_data_caches_are_rebuilt_and_a_cache_file_is_refused(tmp_path, monkeypatch, capsys):
    from ensplit.data.cache import cache_dir
    from ensplit.data.mnist1d import load_mnist1d

    monkeypatch.setenv("ENSPLIT_CACHE", str(tmp_path / "cache"))
    first = load_mnist1d(num_samples=200, seed=3)
    path = cache_dir() / "mnist1d-n200-s3.npz"
    path.write_bytes(path.read_bytes()[:100])  # truncated: BadZipFile
    assert np.array_equal(load_mnist1d(num_samples=200, seed=3).x_train.numpy(), first.x_train.numpy())
    np.savez(path, other=np.zeros(3))  # a cache file with other keys
    assert np.array_equal(load_mnist1d(num_samples=200, seed=3).y_test.numpy(), first.y_test.numpy())
    with np.load(path) as data:  # the same keys, edited contents: labels shifted, signals cut short
        edited = {k: data[k] for k in data.files}
    edited["y"], edited["x"] = (edited["y"] + 1) % 10, edited["x"][:, :20].copy()
    np.savez(path, **edited)
    again = load_mnist1d(num_samples=200, seed=3)
    assert np.array_equal(again.y_train.numpy(), first.y_train.numpy())
    assert np.array_equal(again.x_train.numpy(), first.x_train.numpy())
    monkeypatch.setenv("ENSPLIT_CACHE", str(path))  # a file, not a folder
    code = main(["study", "--out", str(tmp_path / "s"), *ARGS[:-1], "--num-samples", "200"])
    err = capsys.readouterr().err
    assert code == 2 and "ENSPLIT_CACHE" in err and "is a file" in err
