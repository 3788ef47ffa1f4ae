"""`ensplit study` end to end with the seed-000 NLL outputs: NLL_n(τ) fits, uncalibrated NLL fits, LE-NLL,
the fit objective and prediction resampling from the CLI, the paper's pool rule, and the report's figures."""

import json

import pytest

from ensplit.cli import main
from ensplit.reports.study_text import render_summary
from studies import cli_stdout

TINY = ["--widths", "4,8,16", "--epochs", "2", "--pool-min", "9", "--pool-max", "9", "--train-subset", "400",
        "--test-subset", "200", "--bootstrap", "3", "--cnll-splits", "2", "--temperature-grid", "0.5,1,2", "--quiet"]
NEW_KEYS = {"nll_fits", "temperature_fits", "temperature_optimum", "le_nll", "pool_rule", "fit_objective"}


@pytest.fixture(scope="module")
def log2_study(tmp_path_factory):
    """A tiny study with the paper's fit objective and independent-subset repeats: (folder, JSON)."""
    out = tmp_path_factory.mktemp("study") / "s"
    printed = cli_stdout(["study", "--out", str(out), *TINY, "--fit-objective", "log2", "--predict-resample",
                          "subsets", "--json"])
    return out, json.loads(printed)


def test_the_json_holds_the_new_keys_with_the_log2_objective(log2_study):
    _, result = log2_study
    assert NEW_KEYS <= set(result)
    assert result["fit_objective"]["objective"] == "log2"
    assert result["pool_rule"]["rule"] == "clamped"
    assert [row["networks"] for row in result["pool_rule"]["planned"]] == [9, 9, 9]
    assert [f["tau"] for f in result["temperature_fits"]] == [0.5, 1.0, 2.0]
    assert {f["params"] for f in result["temperature_fits"]} == {result["sizes"][-1]["params"]}
    assert all(f["a"] < 0 and f["b"] > 0 for f in result["temperature_fits"])
    assert [e["n"] for e in result["le_nll"]] == [[1, 2, 3]] * 3
    for entry in result["le_nll"]:
        assert entry["le_nll_minus_cnll"] == pytest.approx([a - b for a, b in zip(entry["le_nll"], entry["cnll"],
                                                                                  strict=True)])
    assert len(result["nll_fits"]["n"]) == 3 and "a" in result["nll_fits"]["s"]
    assert {p["resample"] for p in result["prediction"]} == {"subsets"}
    assert all(len(p["rmse_per_n"]["rmse"]) == 3 for p in result["prediction"])


def test_the_report_has_the_new_figures_and_report_json_matches(log2_study, capsys):
    study, result = log2_study
    page = (study / "report.html").read_text()
    assert page.count("<img src='data:image/png;base64,") >= 13
    for words in ("Uncalibrated NLL", "NLL at a fixed temperature", "LE-NLL against CNLL", "Lobacheva et al. Fig. 2",
                  "Lobacheva et al. Fig. 3", "Lobacheva et al. Fig. 4", "Lobacheva et al. Fig. 6 left",
                  "pool rule clamped",
                  "Lobacheva et al. eq. 6, squared error in log2 space"):
        assert words in page, words
    assert main(["report", str(study), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["temperature_fits"] == result["temperature_fits"] and again["le_nll"] == result["le_nll"]
    assert again["fit_objective"] == result["fit_objective"]
    text = render_summary(again)  # what `ensplit report DIR` prints
    assert "objective log2, RMSE in log2 units" in text and "LE-NLL − CNLL per n" in text
    assert "Pool rule: clamped" in text


def test_the_paper_pool_rule_from_the_cli(tmp_path, capsys):
    args = ["--widths", "4,8", "--epochs", "1", "--train-subset", "200", "--test-subset", "100", "--bootstrap", "0",
            "--cnll-splits", "1", "--temperature-grid", "1", "--pool-rule", "paper", "--pool-networks", "3",
            "--no-report", "--quiet", "--json"]
    assert main(["study", "--out", str(tmp_path / "paper"), *args]) == 0
    result = json.loads(capsys.readouterr().out)
    # MLP 40→w→w→10: s(4) = 234, s(8) = 490; ℓ = max(3, ⌈8·490/s⌉) = 17 and 8
    assert [s["pool_size"] for s in result["sizes"]] == [17, 8]
    assert result["pool_rule"]["rule"] == "paper" and result["pool_rule"]["standard_params"] == 490
    assert result["pool_rule"]["formula"].startswith("ℓ = max(3, ⌈8·s_standard/s⌉)")
