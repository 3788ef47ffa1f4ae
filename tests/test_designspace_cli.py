"""`ensplit designspace`: a tiny end-to-end run (JSON keys, report written) and one-line bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ensplit.analysis.design_space import CLASSES, SINGLE, DesignRecord
from ensplit.cli import main
from ensplit.data import load_dataset
from ensplit.errors import EnsplitError
from ensplit.experiments.designspace import DesignSpaceConfig, run_design_space
from ensplit.models import count_params
from ensplit.recipe import Recipe
from ensplit.train import TrainConfig

KEYS = ["class", "width", "depth", "members", "params", "accuracy_by_epoch", "seconds_per_epoch",
        "seconds_per_epoch_batched", "time_to_single_accuracy", "inference_ms_batch1", "inference_ms_large_batch",
        "peak_memory_bytes"]


@pytest.mark.slow
def test_tiny_cli_run_prints_one_object_per_class_and_writes_the_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ds"
    code = main(["designspace", "--family", "mlp", "--members", "2", "--widths", "16,48", "--depths", "2",
                 "--epochs", "2", "--train-subset", "256", "--test-subset", "128", "--timing-repeats", "1",
                 "--timing-steps", "1", "--large-batch", "32", "--out", str(out), "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["recipe"]["train"]["epochs"] == 2
    rows = result["records"]
    assert rows and all(list(r) == KEYS for r in rows)
    assert {r["class"] for r in rows} <= set(CLASSES)
    singles = [r for r in rows if r["class"] == SINGLE]
    assert [(r["width"], r["depth"], r["members"]) for r in singles] == [(16, 2, 1), (48, 2, 1)]
    for r in rows:
        assert len(r["accuracy_by_epoch"]) == 2
        assert r["seconds_per_epoch"] > 0 and r["seconds_per_epoch_batched"] > 0
        assert r["inference_ms_batch1"] > 0 and r["inference_ms_large_batch"] > 0
        assert r["peak_memory_bytes"] is not None and r["peak_memory_bytes"] >= 0
        assert r["params"] == r["members"] * count_params("mlp", r["width"], r["depth"], (40,), 10)
    # every ensemble fits its single network's budget
    budget = {(r["width"], r["depth"]): r["params"] for r in singles}
    group = None
    for r in rows:
        group = budget[(r["width"], r["depth"])] if r["class"] == SINGLE else group
        assert r["params"] <= group
    page = (out / "report.html").read_text()
    assert page.count("<img") >= 8 and "Ensemble Switchover Threshold" in page
    summary = json.loads((out / "results.json").read_text())
    assert summary["records"] == rows and "2" in summary["est"]


def _brute_force_planner(family, width, depth, members, in_shape, num_classes):
    """A naive reference: scan every depth and width."""
    budget = count_params(family, width, depth, in_shape, num_classes)
    depths = [d for d in range(1, depth + 1) if members * count_params(family, width, d, in_shape, num_classes)
              <= budget]
    widths = [w for w in range(1, width + 1) if members * count_params(family, w, depth, in_shape, num_classes)
              <= budget]
    return (max(depths) if depths else None), (max(widths) if widths else None)


def test_runner_with_a_reference_planner_and_agreement_with_the_budget_planner() -> None:
    recipe = Recipe(train_subset=128, test_subset=64, train=TrainConfig(epochs=1, batch_size=64))
    config = DesignSpaceConfig(recipe=recipe, widths=(64,), depths=(3,), members=(2,), timing_repeats=1,
                               timing_steps=1, large_batch=16, measure_memory=False)
    result = run_design_space(config, recipe.load_data(), progress=False, planner=_brute_force_planner)
    assert [r.design_class for r in result.records] == list(CLASSES)
    assert all(isinstance(r, DesignRecord) for r in result.records)
    weq, deq = result.records[1], result.records[2]
    assert (weq.width, weq.depth) == (64, 1) and deq.depth == 3
    assert deq.layers == 2 * 4 and result.records[0].layers == 4
    scaling = pytest.importorskip("ensplit.models.scaling")
    for width, depth, k in [(16, 2, 2), (64, 3, 2), (128, 4, 4), (256, 2, 4)]:
        plan = scaling.equivalents("mlp", depth=depth, width=width, members=k, in_shape=(40,), num_classes=10)
        assert (plan.width_equivalent.depth, plan.depth_equivalent.width) == \
            _brute_force_planner("mlp", width, depth, k, (40,), 10)


def test_a_data_set_other_than_the_recipes_is_refused_before_training(tmp_path: Path) -> None:
    """The jobs load the recipe's data set themselves (in any worker), so planning on another is a mistake."""
    config = DesignSpaceConfig(recipe=Recipe(train_subset=128, test_subset=64), widths=(16,), depths=(2,),
                               members=(2,))
    other = load_dataset("mnist1d").subset(train=100, test=50, seed=0)
    with pytest.raises(EnsplitError, match="not the recipe's"):
        run_design_space(config, other, progress=False, out=tmp_path)
    assert not (tmp_path / "results.sqlite").exists()


@pytest.mark.parametrize("args", [
    ["--members", "1", "--widths", "8", "--depths", "1", "--epochs", "1"],
    ["--members", "2", "--widths", "0", "--depths", "1", "--epochs", "1"],
    ["--members", "2", "--widths", "8", "--depths", "0", "--epochs", "1"],
    ["--members", "2", "--widths", "8", "--depths", "1", "--epochs", "0"],
    ["--members", "2", "--widths", "8", "--depths", "1", "--epochs", "1", "--family", "nope"],
    ["--members", "2", "--widths", "8", "--depths", "1", "--epochs", "1", "--dataset", "/no/such/data"],
    ["--members", "2", "--widths", "8", "--depths", "1", "--epochs", "1", "--device", "tpu"],
    ["--members", "2", "--widths", "8", "--depths", "1", "--est-fraction", "2"],
    ["--members", "2,x", "--widths", "8", "--depths", "1"],
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse errors exit; EnsplitError returns 2
        raise SystemExit(main(["designspace", *args, "--out", str(tmp_path), "--quiet"]))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err


def test_bf16_precision_reaches_training_and_evaluation(tmp_path: Path, capsys) -> None:
    accuracy = {}
    for precision in ("fp32", "bf16"):
        code = main(["designspace", "--family", "mlp", "--members", "2", "--widths", "16", "--depths", "2",
                     "--epochs", "3", "--optimizer", "adam", "--lr", "0.01", "--train-subset", "1000",
                     "--test-subset", "500", "--timing-repeats", "1", "--timing-steps", "1", "--large-batch", "32",
                     "--measure-memory", "false", "--precision", precision,
                     "--out", str(tmp_path / precision), "--quiet", "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        accuracy[precision] = [r["accuracy_by_epoch"] for r in json.loads(captured.out)["records"]]
    assert accuracy["fp32"] != accuracy["bf16"]  # autocast changed the arithmetic
    assert all(abs(a - b) < 0.1 for fa, fb in zip(accuracy["fp32"], accuracy["bf16"], strict=True)
               for a, b in zip(fa, fb, strict=True))
