"""One vocabulary (docs/glossary.md): no command advertises a deprecated spelling, every `--json` carries the
provenance keys and none of the old key names, and every old spelling still works for one release with one
deprecation line."""

from __future__ import annotations

import argparse
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ensplit
from ensplit._version import __version__, provenance
from ensplit.cli import build_parser, main
from ensplit.errors import EnsplitDeprecationWarning
from ensplit.experiments.compare import CompareConfig, run_compare

# old spellings of an option (as a whole flag) and of a results key, with their one name now
DEPRECATED_FLAGS = {"--param-budget": "--budget", "--params": "--budget", "--max-members": "--members-max",
                    "--classes": "--num-classes"}
DEPRECATED_KEYS = {"flops", "baseline_flops", "train_seconds_per_epoch", "parameters", "ensplit", "param_budget",
                   "max_members"}
TRAIN = ["--epochs", "1", "--train-subset", "100", "--test-subset", "40", "--threads", "1", "--quiet"]


def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command's parser, and every action's parser of commands that have actions (`budget count`)."""
    parser, _ = build_parser()
    todo = [parser]
    while todo:
        current = todo.pop()
        yield current.prog, current
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(action.choices.values())


@pytest.mark.parametrize("prog, parser", list(_parsers()), ids=lambda v: v if isinstance(v, str) else "")
def test_help_advertises_no_deprecated_spelling(prog: str, parser: argparse.ArgumentParser) -> None:
    for line in parser.format_help().splitlines():
        if "deprecated" in line:
            continue
        for old in DEPRECATED_FLAGS:
            assert not re.search(rf"(?<![\w-]){old}(?![\w-])", line), f"{prog} advertises {old}: {line!r}"
        assert "seed 00" not in line, f"{prog} names a seed file, not its paper: {line!r}"


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def _check_json(result: Any) -> None:
    assert isinstance(result, dict)
    assert result["ensplit_version"] == __version__ and result["git_commit"] == provenance()["git_commit"]
    old = DEPRECATED_KEYS & set(_keys(result))
    assert not old, f"deprecated key names in the JSON: {sorted(old)}"


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err[-2000:]
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def npz_pools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pools")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    for members, params in ((6, 100), (4, 400)):
        logits = rng.normal(size=(members, 60, 3)) + 2.0 * np.eye(3)[labels]
        np.savez(folder / f"p{params}.npz", logits=logits, labels=labels, params_per_member=params)
    return folder


COMMANDS = {
    "budget count": ["budget", "count", "--family", "mlp", "--width", "8"],
    "budget solve": ["budget", "solve", "--family", "mlp", "--budget", "5k"],
    "budget splits": ["budget", "splits", "--family", "mlp", "--budget", "5k", "--members-max", "2"],
    "budget equivalents": ["budget", "equivalents", "--family", "mlp", "--depth", "3", "--width", "16",
                           "--members", "2"],
    "collegial": ["collegial", "--baseline", "mlp", "--input-dim", "4", "--width", "16", "--alpha", "3.6"],
    "compare": ["compare", "--methods", "single,deep", "--members", "2", "--budget", "3k", *TRAIN],
    "study": ["study", "--widths", "4,8", "--pool-min", "2", "--pool-max", "2", "--bootstrap", "0",
              "--cnll-splits", "1", "--no-report", *TRAIN],
    "designspace": ["designspace", "--widths", "8", "--depths", "2", "--members", "2", "--timing-repeats", "1",
                    "--timing-steps", "1", "--large-batch", "8", "--measure-memory", "false", *TRAIN],
    "landscape": ["landscape", "--width", "4", "--inits", "2", "--every", "1", "--tail-epochs", "2", "--samples",
                  "2", "--bezier-epochs", "1", *TRAIN],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_json_carries_provenance_and_no_old_key(name: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = [] if name.startswith(("budget", "collegial")) else ["--out", str(tmp_path / "out")]
    _check_json(_json(capsys, [*COMMANDS[name], *out]))


def test_predictions_commands_and_report_carry_provenance(npz_pools: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _check_json(_json(capsys, ["analyze", str(npz_pools), "--out", str(tmp_path / "a"), "--cnll-splits", "2",
                               "--bootstrap", "0", "--no-report"]))
    _check_json(_json(capsys, ["evaluate", str(npz_pools / "p100.npz"), "--cnll-splits", "2"]))
    study = tmp_path / "study"
    _json(capsys, [*COMMANDS["study"], "--out", str(study)])
    _check_json(_json(capsys, ["report", str(study)]))


def test_recommend_json_carries_provenance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _check_json(_json(capsys, ["recommend", "--budget", "3k", "--members-max", "2", "--methods", "", "--pool", "4",
                               "--no-verify", "--bootstrap", "10", "--cnll-splits", "1", "--no-report",
                               "--out", str(tmp_path / "r"), *TRAIN]))


@pytest.mark.parametrize("argv, old, new", [
    (["compare", "--methods", "single", "--param-budget", "3k", *TRAIN], "--param-budget", "--budget"),
    (["budget", "solve", "--family", "mlp", "--params", "5k"], "--params", "--budget"),
    (["budget", "splits", "--family", "mlp", "--budget", "5k", "--max-members", "2"], "--max-members",
     "--members-max"),
    (["budget", "count", "--family", "mlp", "--width", "8", "--classes", "3"], "--classes", "--num-classes"),
])
def test_an_old_flag_works_with_one_deprecation_line(argv: list[str], old: str, new: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    renamed = [a if a != old else new for a in argv]
    assert main([*renamed, "--json"]) == 0
    again = capsys.readouterr()
    without = [k for k in ("seconds_per_epoch",)]  # timings differ between two runs
    first, second = json.loads(captured.out), json.loads(again.out)
    for row in first.get("methods", []) + second.get("methods", []):
        for key in without:
            row.pop(key)
    assert first == second
    command = " ".join(a for a in argv[:2] if not a.startswith("-")) if argv[0] == "budget" else argv[0]
    assert f"ensplit {command}: {old} is deprecated; use {new}" in captured.err.splitlines()
    assert "deprecated" not in again.err


def test_an_old_config_key_and_keyword_work_with_a_deprecation(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "old.toml"
    config.write_text('[compare]\nparam_budget = "3k"\nmethods = ["single"]\n')
    assert main(["compare", "--config", str(config), *TRAIN, "--json"]) == 0
    captured = capsys.readouterr()
    assert "ensplit compare: param_budget is deprecated; use budget" in captured.err.splitlines()
    assert json.loads(captured.out)["budget"] == 3000
    with pytest.warns(EnsplitDeprecationWarning, match="param_budget is deprecated; use budget"):
        old = CompareConfig.from_mapping({"param_budget": "3k"})
    assert old == CompareConfig.from_mapping({"budget": 3000})  # the same settings, so the same identity
    with pytest.raises(ensplit.EnsplitError, match="one setting"):
        CompareConfig.from_mapping({"param_budget": 3000, "budget": 3000})
    with pytest.warns(EnsplitDeprecationWarning, match="max_members is deprecated; use members_max"):
        assert ensplit.memory_splits("mlp", 5000, max_members=2) == ensplit.memory_splits("mlp", 5000, members_max=2)
    with pytest.warns(EnsplitDeprecationWarning, match="params is deprecated; use budget"):
        assert ensplit.solve_width("mlp", params=5000) == ensplit.solve_width("mlp", 5000)


def test_old_prediction_keywords_work_with_a_deprecation(npz_pools: Path) -> None:
    with pytest.warns(EnsplitDeprecationWarning, match="splits is deprecated; use cnll_splits"):
        old = ensplit.evaluate(npz_pools / "p100.npz", splits=2).to_json()
    assert old == ensplit.evaluate(npz_pools / "p100.npz", cnll_splits=2).to_json()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        ensplit.evaluate(npz_pools / "p100.npz", cnll_splits=2)


def test_a_compare_folder_of_an_older_release_stays_usable(tmp_path: Path) -> None:
    """Its results.json says "ensplit" (not "ensplit_version"), "flops" and "param_budget": still its folder."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"ensplit": "0.1.0", "git_commit": None, "param_budget": 3000,
                                                     "methods": [{"method": "single", "flops": 1}]}))
    config = CompareConfig.from_mapping({"methods": "single", "budget": 3000, "epochs": 1, "train_subset": 100,
                                         "test_subset": 40, "threads": 1})
    result = run_compare(config, folder, progress=False)
    saved = json.loads((folder / "results.json").read_text())
    assert saved["budget"] == 3000 and saved["ensplit_version"] == __version__ and result.rows
