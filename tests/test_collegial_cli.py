"""`ensplit collegial`: JSON keys and values, human output, report, and one-line errors (exit 2)."""

from __future__ import annotations

import functools
import json

import pytest

from ensplit.cli import main

FC = ["collegial", "--baseline", "mlp", "--input-dim", "748", "--width", "500", "--hidden-layers", "5",
      "--outputs", "1", "--bias", "false"]


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # nothing but the JSON on stdout


def test_mlp_primal_json(capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, [*FC, "--alpha", "3.64", "--objective", "primal"])
    assert {"objective", "width", "members", "efficiency", "baseline_params", "params", "design"} <= set(result)
    assert result["objective"] == "primal" and result["width"] == 48
    assert result["members"] == pytest.approx(30.43, abs=0.01)
    assert result["efficiency"] == pytest.approx(1.0)
    assert result["baseline_params"] == 1_374_500 and result["params"] == pytest.approx(1_374_500)
    assert result["design"]["family"] == "mlp"
    assert (result["design"]["width"], result["design"]["members"], result["design"]["depth"]) == (48, 30, 5)


def test_mlp_dual_json(capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, [*FC, "--alpha", "3.64", "--objective", "dual"])
    assert result["width"] == 48
    assert result["members"] == pytest.approx(12.44, abs=0.01)
    assert result["efficiency"] == pytest.approx(2.447, abs=0.001)
    assert result["params"] == pytest.approx(result["baseline_params"] / result["efficiency"])
    assert result["design"]["members"] == 12


def test_resnext_block_dual_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["collegial", "--baseline", "resnext-block", "--block-channels", "256", "--width", "128",
            "--alpha", "1.60", "--objective", "dual"]
    result = _json(capsys, argv)
    assert (result["width"], round(result["members"], 2), round(result["efficiency"], 2)) == (10, 9.93, 3.28)
    assert result["baseline_params"] == 9 * 128**2 + 516 * 128 + 512
    # one bottleneck block is not a registered family, so the design names it as a block
    assert result["design"] == {"block": "resnext-bottleneck", "channels": 256, "cardinality": 10,
                                "bottleneck_width": 10}


def test_resnext_whole_network_primal(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["collegial", "--baseline", "resnext", "--cardinality", "1", "--bottleneck-width", "128",
            "--objective", "primal", "--alpha", "1.6"]
    result = _json(capsys, argv)
    assert result["width"] == 10
    assert result["whole_network"]["name"] == "37x10d"
    assert result["whole_network"]["params"] <= result["whole_network"]["baseline_params"] == 13_775_178
    assert result["design"]["family"] == "resnext"
    assert (result["design"]["cardinality"], result["design"]["bottleneck_width"]) == (37, 10)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "37x10d" in text and "primal optimum: width n = 10" in text


def test_resnext_whole_network_counts_flops(capsys: pytest.CaptureFixture[str]) -> None:
    from ensplit.analysis.resnext29 import flops_resnext29

    argv = ["collegial", "--baseline", "resnext", "--cardinality", "1", "--bottleneck-width", "128",
            "--objective", "primal", "--alpha", "1.6", "--cost", "flops"]
    result = _json(capsys, argv)
    whole = result["whole_network"]
    assert result["width"] == 7 and whole["cost"] == "flops"
    assert whole["name"] == f"{whole['cardinality']}x7d" and whole["cardinality"] == 50
    assert whole["flops_per_example"] == flops_resnext29(50, 7)
    assert flops_resnext29(50, 7) <= whole["baseline_flops_per_example"] == flops_resnext29(1, 128)
    assert whole["efficiency"] == pytest.approx(whole["baseline_flops_per_example"] / whole["flops_per_example"])
    assert main(argv) == 0
    assert "FLOPs efficiency" in capsys.readouterr().out


def test_flops_cost(capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, [*FC, "--alpha", "3.64", "--objective", "dual", "--cost", "flops"])
    assert result["cost"] == "flops" and result["baseline_flops_per_example"] == 2 * 1_374_500
    assert result["efficiency"] == pytest.approx(result["baseline_flops_per_example"] / result["flops_per_example"])


def test_fit_alpha_json_and_report(capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:
    import ensplit.reports.collegial_figures as figures

    small = functools.partial(figures.ensemble_ntk_convergence, width=8, hidden_layers=2, members=(1, 4),
                              angles=9, mean_samples=64, repeats=1)
    monkeypatch.setattr(figures, "ensemble_ntk_convergence", small)
    argv = ["collegial", "--baseline", "resnext-block", "--width", "32", "--fit-alpha", "--samples", "60",
            "--seed", "3", "--fit-widths", "4,8", "--objective", "dual", "--out", str(tmp_path)]
    result = _json(capsys, argv)
    assert result["alpha"] > 0 and result["alpha_stderr"] is not None
    page = (tmp_path / "report.html").read_text()
    assert result["report"] == str(tmp_path / "report.html")
    assert page.count("<img") == 4  # primal, dual, alpha fit, convergence
    assert "Monte Carlo fit" in page


TRAIN = ["collegial", "--baseline", "mlp", "--input-dim", "40", "--outputs", "10", "--width", "16",
         "--hidden-layers", "2", "--alpha", "3", "--train", "--train-seeds", "2", "--train-points", "3",
         "--epochs", "1", "--train-subset", "200", "--test-subset", "100", "--threads", "1"]


def test_train_along_both_curves_json_text_and_report(capsys: pytest.CaptureFixture[str], tmp_path,
                                                      monkeypatch) -> None:
    import ensplit.reports.collegial_figures as figures

    small = functools.partial(figures.ensemble_ntk_convergence, width=8, hidden_layers=2, members=(1, 4),
                              angles=9, mean_samples=64, repeats=1)
    monkeypatch.setattr(figures, "ensemble_ntk_convergence", small)
    result = _json(capsys, [*TRAIN, "--out", str(tmp_path)])
    rows = result["training"]
    assert {r["curve"] for r in rows} == {"primal", "dual"} and result["recipe"]["train"]["epochs"] == 1
    for r in rows:
        assert {"members", "width", "params", "accuracy", "cnll", "accuracy_std", "cnll_std", "per_seed"} <= set(r)
        assert len(r["per_seed"]["cnll"]) == len(r["seeds"]) == 2
        if r["curve"] == "primal":
            assert r["params"] <= result["baseline_params"]
    for curve in ("primal", "dual"):
        predicted = [r for r in rows if r["curve"] == curve and r["predicted_optimum"]]
        assert len(predicted) == 1 and predicted[0]["width"] == result["width"]
        summary = result["training_optimum"][curve]
        assert summary["predicted"] == {"width": predicted[0]["width"], "members": predicted[0]["members"]}
        assert summary["best_accuracy"]["accuracy"] == max(r["accuracy"] for r in rows if r["curve"] == curve)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img") == 5 and "Training along the curves" in page  # + primal and dual training figures
    assert main(TRAIN) == 0
    text = capsys.readouterr().out
    assert "<- predicted optimum" in text and "primal: predicted n = " in text


@pytest.mark.parametrize(("extra", "message"), [
    ([*FC, "--alpha", "1", "--train"], "does not fit the recipe's data (mnist1d: 40 features, 10 classes)"),
    (["collegial", "--baseline", "resnext-block", "--width", "32", "--alpha", "1.6", "--train"],
     "--train trains mlp baselines"),
    ([*TRAIN, "--train-seeds", "0"], "train_seeds = 0: must be >= 1"),
    ([*TRAIN, "--train-curves", "both"], "train_curves = 'both'"),
    ([*FC, "--objective", "primal"], "give alpha or fit_alpha"),
    ([*FC, "--alpha", "0"], "alpha = 0.0: must be > 0"),
    ([*FC, "--alpha", "1e6"], "alpha = 1000000.0: must be <= 100"),
    ([*FC, "--alpha", "1", "--fit-alpha"], "exactly one"),
    (["collegial", "--baseline", "mlp", "--input-dim", "748", "--width", "0", "--alpha", "1"],
     "width = 0: must be >= 1"),
    (["collegial", "--baseline", "mlp", "--width", "10", "--alpha", "1"], "input_dim is required"),
    ([*FC, "--alpha", "1", "--block-channels", "64"], "block_channels applies to baseline resnext-block"),
    (["collegial", "--baseline", "resnext", "--width", "10", "--alpha", "1"], "not width"),
    (["collegial", "--baseline", "resnext-block", "--width", "-3", "--alpha", "1"], "width = -3: must be >= 1"),
    ([*FC, "--fit-alpha", "--fit-widths", "4,x"], "fit_widths = '4,x': not an integer: 'x'"),
    ([*FC, "--fit-alpha", "--samples", "3"], "samples = 3: must be >= 10"),
])
def test_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    assert main([*extra, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ensplit collegial: error:") and message in lines[0]
