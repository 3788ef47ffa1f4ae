"""`ensplit landscape`: a tiny end-to-end run, stored runs reused, one-line errors."""

from __future__ import annotations

import json

import pytest

from ensplit.cli import main

TINY = ["--width", "8", "--inits", "2", "--epochs", "2", "--every", "1", "--tail-epochs", "2", "--samples", "2",
        "--bezier-epochs", "1", "--train-subset", "200", "--test-subset", "100", "--threads", "1"]


@pytest.mark.slow
def test_tiny_landscape_run_writes_report_summary_and_stored_runs(tmp_path, capsys):
    assert main(["landscape", "--out", str(tmp_path), *TINY, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["cosine"]) == {"within", "across", "across_final"}
    assert set(summary["disagreement"]) == {"within", "across", "across_final"}
    assert set(summary["samplers"]) == {"MC dropout", "diagonal Gaussian", "low-rank Gaussian", "random directions"}
    for values in summary["samplers"].values():
        assert 0 <= values["mean_accuracy"] <= 1 and values["mean_normalized_diversity"] >= 0
    assert summary["ensembles"]["sizes"] == [1, 2] and summary["batch_norm"] == "none in this family"
    assert summary["checkpoints_per_init"] == 4
    shift = summary["shift"]  # SWA against ensembles on the corrupted test sets (noise, shift × severities 1–5)
    assert shift["sizes"] == [1, 2] and set(shift["by_corruption"]) == {"noise", "shift"}
    assert list(shift["by_severity"]) == ["1", "2", "3", "4", "5"] and len(shift["sets"]) == 10
    for pools in (shift["mean"], *shift["by_corruption"].values(), *shift["by_severity"].values()):
        assert set(pools) == {"independent", "SWA"}
        assert all(len(values) == 2 for v in pools.values() for values in v.values())
    noise = [s for s in shift["sets"] if s["corruption"] == "noise"]
    assert shift["by_corruption"]["noise"]["SWA"]["cnll"][1] == pytest.approx(
        sum(s["SWA"]["cnll"][1] for s in noise) / 5)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img") == 8 and "Subspace sampling" in page and "under dataset shift" in page
    assert json.loads((tmp_path / "summary.json").read_text())["cosine"] == summary["cosine"]
    assert len(list((tmp_path / "trajectories").glob("*.safetensors"))) == 2  # one stored run per init

    # the stored runs are analysed again without training
    assert main(["landscape", "--out", str(tmp_path), *TINY, "--json"]) == 0
    captured = capsys.readouterr()
    assert "[landscape] training" not in captured.err and json.loads(captured.out)["cosine"] == summary["cosine"]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["landscape", "--out", str(tmp_path), "--inits", "1"]) == 2
    assert main(["landscape", "--out", str(tmp_path), "--trajectories", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("ensplit landscape: error:") for line in err)
