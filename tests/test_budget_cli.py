"""`ensplit budget ...`: JSON shapes, agreement with the Python API, and one-line errors with exit 2."""

from __future__ import annotations

import json
import re

import pytest

from ensplit._version import provenance
from ensplit.cli import main
from ensplit.models import count_params
from ensplit.models.scaling import equivalents, flops_per_example, memory_splits, solve_width


def run_json(capsys: pytest.CaptureFixture[str], *argv: str):
    assert main(["budget", *argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {k: result.pop(k) for k in ("ensplit_version", "git_commit")} == provenance()
    return result


def test_count(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "count", "--family", "resnet", "--width", "4", "--depth", "8",
                   "--in-shape", "3", "16", "16", "--num-classes", "7", "--family-option", "shortcut=B")
    kw = dict(in_shape=(3, 16, 16), num_classes=7, shortcut="B")
    assert out == {"params": count_params("resnet", 4, 8, **kw),
                   "flops_per_example": flops_per_example("resnet", 4, 8, **kw)}


def test_count_pins_resnet20(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "count", "--family", "resnet", "--width", "16")["params"] == 269_722


def test_solve(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "solve", "--family", "wrn", "--budget", "36.5M", "--depth", "28")
    assert out == {"width": 10, "params": 36_479_194, "budget": 36_500_000} and solve_width("wrn", 36_500_000, 28) == 10


def test_splits(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "splits", "--family", "resnet", "--budget", "1e6", "--depth", "20", "--members-max", "4")
    expected = [{"members": s.members, "width": s.width, "params": s.params, "slack": s.slack}
                for s in memory_splits("resnet", 1_000_000, 20, 4)]
    assert out == {"budget": 1_000_000, "splits": expected}
    assert [row["members"] for row in out["splits"]] == [1, 2, 3, 4]


def test_equivalents(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "equivalents", "--family", "resnet", "--depth", "110", "--width", "16", "--members", "4",
                   "--num-classes", "100")
    e = equivalents("resnet", 110, 16, 4, num_classes=100)
    assert out == {"single": {"params": e.single.params},
                   "width_equivalent": {"depth": e.width_equivalent.depth, "params": e.width_equivalent.params},
                   "depth_equivalent": {"width": e.depth_equivalent.width, "params": e.depth_equivalent.params}}


@pytest.mark.parametrize("argv", [
    ["count", "--family", "resnet", "--width", "16"],
    ["solve", "--family", "vgg16", "--budget", "15.3M"],
    ["splits", "--family", "mlp", "--budget", "20000", "--members-max", "3"],
    ["equivalents", "--family", "vgg16", "--depth", "16", "--width", "64", "--members", "4"],
])
def test_human_output_shows_every_number_of_the_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """The table a person reads carries the same numbers as `--json` (thousands separators aside)."""
    assert main(["budget", *argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert main(["budget", *argv]) == 0
    out = capsys.readouterr().out
    assert not out.lstrip().startswith(("{", "["))
    numbers = set(re.findall(r"\d[\d,]*", out))
    rows = result if isinstance(result, list) else [result]

    def leaves(value):
        if isinstance(value, (dict, list)):
            for v in value.values() if isinstance(value, dict) else value:
                yield from leaves(v)
        elif isinstance(value, int) and not isinstance(value, bool):
            yield value

    expected = {v for row in rows for v in leaves(row)}
    assert expected and all(f"{v:,}" in numbers or str(v) in numbers for v in expected)


@pytest.mark.parametrize("argv, message", [
    (["count", "--family", "resnot", "--width", "4"], "unknown family 'resnot'"),
    (["count", "--family", "resnet", "--width", "4", "--depth", "21"], "valid depths are 6n+2"),
    (["equivalents", "--family", "wrn", "--width", "2", "--depth", "20", "--members", "2"], "valid depths are 6n+4"),
    (["solve", "--family", "resnet", "--budget", "500"], "smaller than the smallest member"),
    (["splits", "--family", "wrn", "--budget", "1000"], "smaller than the smallest member"),
    (["count", "--family", "resnet", "--width", "4", "--family-option", "colour=red"], "unknown option 'colour'"),
    (["count", "--family", "resnet", "--width", "4", "--family-option", "shortcut=C"], "shortcut must be one of A, B"),
    (["count", "--family", "resnet", "--width", "4", "--in-shape", "40"], "needs an image in_shape"),
    (["solve", "--family", "resnet", "--budget", "lots"], "not a count"),
    (["count", "--family", "resnet"], "--width"),
    ([], "required"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    try:
        code = main(["budget", *argv])
    except SystemExit as stop:  # argparse usage errors exit from inside the parser
        code = stop.code
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
