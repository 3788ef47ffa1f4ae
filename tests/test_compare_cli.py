"""A tiny end-to-end `ensplit compare --json` through the CLI entry point, and its one-line errors."""

from __future__ import annotations

import json

from ensplit.cli import main
from ensplit.experiments.compare import RESULT_KEYS

TINY = ["compare", "--family", "mlp", "--width", "8", "--members", "2", "--epochs", "1", "--train-subset", "200",
        "--test-subset", "100", "--batch-size", "64", "--quiet",
        "--method-option", "mimo.batch_repetitions=1"]


def test_compare_json_has_one_object_per_method_with_exact_keys(capsys) -> None:
    methods = "single,deep,batchensemble,mimo,mixture,grouped,multihead"
    code = main([*TINY, "--methods", methods, "--json", "--method-option", "mixture.budget=2000"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["recipe"]["train"]["epochs"] == 1 and result["members"] == 2
    rows = result["methods"]
    assert [r["method"] for r in rows] == methods.split(",")
    for row in rows:
        assert tuple(row) == (*RESULT_KEYS, "info")
        assert 0.0 <= row["accuracy"] <= 1.0 and row["params"] > 0 and row["flops_per_example"] > 0
        assert row["corrupted_accuracy"] is not None  # MNIST-1D has noise and shift corruptions
    by = {r["method"]: r for r in rows}
    assert by["single"]["disagreement"] is None and by["grouped"]["disagreement"] is None  # one output
    assert by["deep"]["disagreement"] is not None
    assert 1990 <= by["mixture"]["params"] <= 2000


def test_report_has_the_table_and_both_sweeps(capsys, tmp_path) -> None:
    code = main([*TINY, "--methods", "deep,mixture", "--out", str(tmp_path), "--sweep-budgets", "1,2",
                 "--sweep-members", "1,2"])
    assert code == 0 and "mixture" in capsys.readouterr().out
    page = (tmp_path / "report.html").read_text()
    assert "against parameters" in page and "number of members" in page and page.count("<img") == 4
    saved = json.loads((tmp_path / "results.json").read_text())  # the recipe is recorded with the results
    assert saved["recipe"]["train"]["epochs"] == 1 and saved["git_commit"] and len(saved["member_sweep"]) == 4


def test_compare_at_a_budget_sizes_every_method_to_it(capsys) -> None:
    assert main([*TINY, "--methods", "deep,batchensemble,mimo", "--budget", "3000", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["methods"]
    assert all(2000 < r["params"] <= 3000 for r in rows)


def test_unknown_method_is_a_one_line_error(capsys) -> None:
    assert main([*TINY, "--methods", "deep,nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "methods = 'nope': must be 'single', 'deep'" in err and "\n" not in err


def test_bf16_precision_trains_and_evaluates_under_autocast(capsys) -> None:
    results = {}
    for precision in ("fp32", "bf16"):
        assert main([*TINY, "--methods", "deep", "--precision", precision, "--json"]) == 0
        results[precision] = json.loads(capsys.readouterr().out)["methods"][0]
    fp32, bf16 = results["fp32"]["nll"], results["bf16"]["nll"]
    assert fp32 != bf16 and abs(fp32 - bf16) < 0.05  # bf16 rounding, not another model
