"""Pooled noise and backtested model error of cheap-run ladders (`ensplit.analysis.ladder_error`): against a plain
loop, zero where the law is right, large where it is wrong, and intervals that cover at about their nominal rate
on simulated ladders of one run per budget (the default `recommend` ladder: 4 budgets 2× apart)."""

from __future__ import annotations

import numpy as np
import pytest

from ensplit.analysis.extrapolation import ladder_prediction
from ensplit.analysis.ladder_error import backtest, model_error, pooled_noise
from ensplit.analysis.powerlaw import fit_power_law

RUNGS = (2500, 5000, 10000, 20000)
TARGET = 80_000
LAWS = [(-0.5, 30.0, 0.7), (-0.8, 200.0, 0.75), (-0.3, 5.0, 0.6), (-0.6, 60.0, 0.8), (-0.4, 12.0, 0.65)]


def power(law: tuple[float, float, float], budget: float) -> float:
    a, b, c = law
    return c + b * budget ** a


def test_pooled_noise_is_the_residual_variance_over_the_pooled_degrees_of_freedom():
    rng = np.random.default_rng(3)
    ladders = [{b: list(power(law, b) + rng.normal(0, 0.01, 2)) for b in RUNGS} for law in LAWS[:3]]
    squares, dof = 0.0, 0
    for ladder in ladders:  # the plain loop
        budgets = np.repeat(list(ladder), 2).astype(float)
        observed = np.array([v for values in ladder.values() for v in values])
        law = fit_power_law(budgets, observed, c_min=0.0)
        squares += float(((observed - law.predict(budgets)) ** 2).sum())
        dof += observed.size - 3
    sigma, pooled_dof = pooled_noise(ladders)
    assert pooled_dof == dof == 3 * (8 - 3)
    assert sigma == pytest.approx(np.sqrt(squares / dof), rel=1e-12)
    assert pooled_noise([{b: [power(LAWS[0], b)] for b in RUNGS[:3]}]) is None  # 3 points: nothing left over


def test_a_right_law_has_no_model_error_and_a_wrong_one_has_much():
    exact = [{b: [power(law, b)] for b in RUNGS} for law in LAWS]
    assert model_error(exact, (1e-6, 5), repeats=10) == pytest.approx(0.0, abs=1e-4)
    error, std, octaves = backtest(exact[0], (1e-6, 5), repeats=10)
    assert abs(error) < 1e-4 and octaves == pytest.approx(1.0)

    def knee(budget: float, centre: float) -> float:  # flat, then a late drop: not a power law
        return 0.7 + 0.6 / (1 + (budget / centre) ** 2)

    bent = [{b: [knee(b, centre)] for b in RUNGS} for centre in (15_000, 25_000, 40_000)]
    kappa = model_error(bent, (0.005, 5), repeats=10)
    assert kappa > 0.02
    prediction = ladder_prediction(bent[1], TARGET, 30, 0, (0.005, 5), kappa)
    blind = ladder_prediction(bent[1], TARGET, 30, 0, (0.005, 5), 0.0)
    assert prediction.contains(knee(TARGET, 25_000)) and not blind.contains(knee(TARGET, 25_000))
    assert prediction.extrapolation_error(TARGET) == pytest.approx(kappa * 2.0)  # 2 octaves beyond 20,000
    assert prediction.extrapolation_error(10_000) == 0.0  # inside the ladder


def test_one_run_ladders_cover_a_fresh_run_at_about_the_nominal_rate():
    rng = np.random.default_rng(7)
    sigma, trials, hits, total = 0.01, 40, 0, 0
    for trial in range(trials):
        ladders = [{b: [power(law, b) + rng.normal(0, sigma)] for b in RUNGS} for law in LAWS]
        noise = pooled_noise(ladders)
        kappa = model_error(ladders, noise, 20, trial)
        for law, ladder in zip(LAWS, ladders, strict=True):
            prediction = ladder_prediction(ladder, TARGET, 30, trial, noise, kappa)
            hits += prediction.contains(power(law, TARGET) + rng.normal(0, sigma))
            total += 1
    assert 0.85 <= hits / total <= 0.97  # nominal 0.90; without the model-error term about 0.85
