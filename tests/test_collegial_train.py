"""Collegial training along the primal and dual curves (Littwin et al. Figs. 4 and 6) against independent counts,
brute-force searches, metrics recomputed from the returned predictions, and the network trained the way
`collegial --train` trained it before its networks were stored runs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ensplit.analysis.collegial import MLPBaseline, curve_members, solve, spread_widths
from ensplit.ensembles import build_method
from ensplit.errors import EnsplitError
from ensplit.experiments.collegial import CollegialConfig, baseline_of
from ensplit.experiments.collegial_plan import check_fits
from ensplit.experiments.collegial_train import CurveTraining, train_curves
from ensplit.metrics import cnll_ttcv
from ensplit.models import create
from ensplit.recipe import Recipe
from ensplit.train import TrainConfig, predict_log_probs, train

BASELINE = MLPBaseline(input_dim=40, width=128, hidden_layers=2, outputs=10, bias=True)
ALPHA = 3.06


def _built_params(n: int) -> int:
    """β(n) counted on a built mlp path (not the closed form the designer uses)."""
    model = create("mlp", width=n, depth=2, in_shape=(40,), num_classes=10, bias=True)
    return sum(p.numel() for p in model.parameters())


def test_primal_curve_holds_the_budget_exactly() -> None:
    budget = _built_params(128)
    assert BASELINE.baseline_cost("params") == budget
    for n in range(1, 129):
        beta = _built_params(n)
        m = 0
        while (m + 1) * beta <= budget:  # brute force: the most paths within the budget
            m += 1
        assert curve_members(BASELINE, ALPHA, "primal", n) == m
        assert m * beta <= budget < (m + 1) * beta
    assert curve_members(BASELINE, ALPHA, "primal", 128) == 1
    assert curve_members(MLPBaseline(40, 16, 2, 10, True), ALPHA, "primal", 17) == 0  # one path too many


def test_dual_curve_is_the_nearest_integer_of_the_variance_ratio() -> None:
    var_s = np.expm1(ALPHA * 2 / 128.0)
    for n in range(2, 129):
        m_d = np.expm1(ALPHA * 2 / n) / var_s  # Σ(n) = hidden_layers / n
        best = min(range(1, 10_000), key=lambda m: abs(m - m_d))
        assert curve_members(BASELINE, ALPHA, "dual", n) == best
    assert curve_members(BASELINE, ALPHA, "dual", 128) == 1


def test_the_predicted_optimum_is_interior_and_on_both_curves() -> None:
    primal, dual = solve(BASELINE, ALPHA, "primal"), solve(BASELINE, ALPHA, "dual")
    assert primal.width == dual.width == 15
    assert curve_members(BASELINE, ALPHA, "primal", 15) == math.floor(primal.members)
    assert curve_members(BASELINE, ALPHA, "dual", 15) == round(dual.members)


@pytest.mark.parametrize(("optimum", "low", "high", "points"), [(15, 4, 128, 5), (15, 4, 128, 8), (1, 1, 64, 4),
                                                                 (64, 16, 64, 3), (7, 7, 7, 5), (10, 3, 200, 1)])
def test_spread_widths(optimum: int, low: int, high: int, points: int) -> None:
    widths = spread_widths(optimum, low, high, points)
    assert optimum in widths and widths == sorted(set(widths)) and len(widths) <= points
    assert low <= widths[0] and widths[-1] <= high
    if points > 1 and low < high:
        assert {low, high} <= set(widths)
    for side in ([w for w in widths if w <= optimum], [w for w in widths if w >= optimum]):
        if len(side) >= 3:  # even in log n, up to rounding
            steps = np.diff(np.log(side))
            assert steps.max() - steps.min() < 2 * math.log(1 + 1 / side[0])


TINY = Recipe(train_subset=300, test_subset=120, threads=1, train=TrainConfig(epochs=2))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[MLPBaseline, CurveTraining]:
    config = CollegialConfig(recipe=TINY, baseline="mlp", input_dim=40, outputs=10, width=24, hidden_layers=2,
                             alpha=ALPHA, train=True, train_widths=(6, 24), train_seeds=2)
    baseline = baseline_of(config)
    assert baseline == MLPBaseline(40, 24, 2, 10, True)
    return baseline, train_curves(config, baseline, ALPHA, tmp_path_factory.mktemp("tiny"), progress=False)


def test_a_stored_run_predicts_what_training_the_network_directly_predicts(tiny) -> None:
    """The job runner trains the point exactly as `collegial --train` trained it before it stored its runs: built
    with the seed, trained with member seed [seed] and the method's batching, predicted in float32."""
    _, run = tiny
    n, m = 6, curve_members(MLPBaseline(40, 24, 2, 10, True), ALPHA, "dual", 6)
    seed = m  # the point's second repetition: paths m, m + 1, ...
    assert (n, m, seed) in run.log_probs
    dataset = TINY.load_data()
    model = build_method("grouped", "mlp", m, n, 2, dataset.in_shape, dataset.num_classes, seed,
                         {**TINY.options, "bias": True}, aggregation="collegial")
    train(model, dataset, dataclasses.replace(TINY.train, batching=model.batching), [seed],
          index_sampler=model.index_sampler)
    expected = predict_log_probs(model, dataset.x_test, dataset).double().cpu()
    assert torch.equal(run.log_probs[(n, m, seed)], expected)


def test_training_rows_match_their_predictions_and_built_models(tiny) -> None:
    baseline, run = tiny
    budget = baseline.baseline_cost("params")
    assert [(r["curve"], r["width"]) for r in run.rows] == [("primal", 6), ("primal", 24), ("dual", 6), ("dual", 24)]
    for row in run.rows:
        n, m = row["width"], row["members"]
        assert m == curve_members(baseline, ALPHA, row["curve"], n)
        model = build_method("grouped", "mlp", m, n, 2, (40,), 10, 0, {"bias": True}, aggregation="collegial")
        assert row["params"] == sum(p.numel() for p in model.parameters()) == m * _built_params(n)
        if row["curve"] == "primal":
            assert row["params"] <= budget
        assert row["seeds"] == [0, m]  # disjoint path seeds: seed + j for path j
        for k, seed in enumerate(row["seeds"]):
            log_probs = run.log_probs[(n, m, seed)]
            assert log_probs.shape == (1, 120, 10)
            assert row["per_seed"]["cnll"][k] == pytest.approx(float(cnll_ttcv(log_probs, run.labels)), abs=1e-12)
            hits = sum(int(log_probs[0, i].argmax() == run.labels[i]) for i in range(120))
            assert row["per_seed"]["accuracy"][k] == pytest.approx(hits / 120, abs=1e-12)
            nll = -sum(float(log_probs[0, i, run.labels[i]]) for i in range(120)) / 120
            assert row["per_seed"]["nll"][k] == pytest.approx(nll, abs=1e-6)  # float32 probabilities renormalised
        for metric in ("accuracy", "nll", "cnll"):
            values = row["per_seed"][metric]
            assert row[metric] == pytest.approx(sum(values) / 2)
            assert row[f"{metric}_std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    # the baseline point (m = 1, n = ñ) is shared by both curves and trained once per seed
    assert run.rows[1]["per_seed"] == run.rows[3]["per_seed"]
    assert len(run.log_probs) == 6


def test_optimum_summary_names_the_measured_best(tiny) -> None:
    _, run = tiny
    for curve in ("primal", "dual"):
        rows = [r for r in run.rows if r["curve"] == curve]
        o = run.optimum[curve]
        best_acc = max(rows, key=lambda r: r["accuracy"])
        best_cnll = min(rows, key=lambda r: r["cnll"])
        assert (o["best_accuracy"]["width"], o["best_accuracy"]["members"]) == (best_acc["width"], best_acc["members"])
        assert (o["best_cnll"]["width"], o["best_cnll"]["members"]) == (best_cnll["width"], best_cnll["members"])
        assert o["predicted"]["width"] == solve(MLPBaseline(40, 24, 2, 10, True), ALPHA, curve).width


def test_baseline_must_fit_the_data() -> None:
    dataset = TINY.load_data()
    check_fits(BASELINE, TINY, dataset)
    with pytest.raises(EnsplitError, match="does not fit the recipe's data .*--input-dim 40 --outputs 10"):
        check_fits(MLPBaseline(748, 500, 5, 1, False), TINY, dataset)
    with pytest.raises(EnsplitError, match="family"):
        check_fits(BASELINE, Recipe(family="cnn1d"), dataset)
    assert torch.equal(dataset.y_test, TINY.load_data().y_test)


def test_train_setting_reaches_the_config_from_a_table() -> None:
    """`train` is also the recipe's [train] table: the experiment's flag lives in the [collegial] table."""
    from ensplit.experiments.collegial import CollegialConfig

    config = CollegialConfig.from_mapping({"baseline": "mlp", "input_dim": 40, "outputs": 10, "width": 16,
                                           "alpha": 3.0, "collegial": {"train": True}, "train": {"epochs": 2}})
    assert config.train and config.recipe.train.epochs == 2
    with pytest.raises(EnsplitError, match="--train trains mlp baselines"):
        CollegialConfig(baseline="resnext-block", width=32, alpha=1.6, train=True)
