"""The one interval method (`ensplit.analysis.intervals`): the formula against a naive computation, recommend's
numbers unchanged by the refactor, and the study's band equal to recommend's plane interval at a trained size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ensplit.analysis.extrapolation import SizeLaw, ladder_prediction, plane_prediction
from ensplit.analysis.intervals import LEVEL, half_width, predictive_interval, t_quantile
from ensplit.analysis.powerlaw import PowerLaw
from ensplit.analysis.prediction import ensemble_band, predict_size
from synthetic import synthetic_pool

LADDER = {4000: [1.2743662520924064, 1.2803165597754262, 1.2688588919180124],
          8000: [1.1175983598498231, 1.1263167809215342, 1.1155772655250393],
          16000: [1.0383736965645773, 1.0639751294237192, 1.027326694141602],
          32000: [0.9552956003160855, 0.9775019393161882, 0.9748428384756855]}


def _old_half(spread: float, sigma: float, quantile: float, inflation: float, extra: float) -> float:
    """The expressions `ladder_prediction` and `Prediction.band` used before the refactor."""
    return quantile * np.sqrt(spread * inflation + sigma ** 2 + extra ** 2)


def test_t_quantile_and_half_width_against_scipy_and_the_old_expressions():
    assert LEVEL == 0.90
    assert t_quantile(5) == float(stats.t.ppf(0.95, 5)) and t_quantile(0) == t_quantile(1)
    rng = np.random.default_rng(0)
    for spread, sigma, inflation, extra in rng.uniform(0.0, 0.1, (20, 4)):
        q = t_quantile(int(rng.integers(1, 30)))
        assert half_width(spread, sigma, q, inflation, extra) == _old_half(spread, sigma, q, inflation, extra)
        assert half_width(spread, sigma, q) == q * np.sqrt(spread + sigma ** 2)  # plane_prediction's old form
        lower, upper = predictive_interval(0.7, spread, sigma, q, inflation, extra)
        assert (lower, upper) == (0.7 - _old_half(spread, sigma, q, inflation, extra),
                                  0.7 + _old_half(spread, sigma, q, inflation, extra))
    spreads, sigmas = rng.uniform(0, 0.01, 5), rng.uniform(0, 0.1, 5)
    np.testing.assert_array_equal(half_width(spreads, sigmas, 2.0), [half_width(a, b, 2.0) for a, b in
                                                                      zip(spreads, sigmas, strict=True)])


@pytest.mark.parametrize("options, expected", [
    ({}, (0.8902415310449381, 0.9612341721047821, 0.01347685100242298, 1.3333333333333333, 1.833112932656237)),
    ({"noise": (0.015, 9)}, (0.8817268526088382, 0.969748850540882, 0.015, 1.0, 1.833112932656237)),
    ({"model_error": 0.01}, (0.882758790733737, 0.9687169124159832, 0.01347685100242298, 1.3333333333333333,
                             1.833112932656237)),
])
def test_ladder_prediction_returns_what_it_did_before_the_refactor(options, expected):
    """Numbers printed by the pre-refactor code (commit d44c7fc) for this ladder. The bounds come from bootstrap
    refits, whose optimiser ends 3e-11 apart from one SciPy/NumPy release to the next (numpy 2.4.6, scipy 1.17.1
    on 2026-12-07), so they are held to 1e-9: any change to the computation moves them by far more."""
    prediction = ladder_prediction(LADDER, 80_000, repeats=30, seed=3, **options)
    got = (prediction.lower, prediction.upper, prediction.sigma, prediction.inflation, prediction.quantile)
    assert prediction.value == pytest.approx(0.9257378515748601, abs=1e-12)
    assert got == pytest.approx(expected, abs=1e-9)
    lower, upper = prediction.band(np.array([16000.0, 80000.0]))
    assert (lower[1], upper[1]) == (prediction.lower, prediction.upper)  # the band at the target is the interval


def test_plane_prediction_returns_what_it_did_before_the_refactor():
    laws = [SizeLaw(s, PowerLaw(-0.7, 0.2, c, 0.0),
                    tuple(PowerLaw(-0.7, 0.2, c + d, 0.0) for d in (0.01, -0.02, 0.005, 0.0)), 0.03, 6)
            for s, c in ((4000, 1.2), (8000, 1.15), (16000, 1.1))]
    prediction = plane_prediction(laws, 3, 12000)
    got = (prediction.value, prediction.lower, prediction.upper, prediction.sigma, prediction.quantile)
    assert got == pytest.approx((1.2134444863183362, 1.171674740138576, 1.2552142324980964, 0.017320508075688773,
                                 2.0150483733330233), abs=1e-12)


def test_study_band_is_recommends_plane_interval_at_a_trained_size():
    pool, labels = synthetic_pool(8, objects=120, noise=0.6)
    size = predict_size(pool, labels, 1000, max_n=12, small_pool=6, repeats=6, splits=1, measured=[])
    other = SizeLaw(4000, size.fit, size.fits, size.single_std, size.small_pool)
    law = SizeLaw(1000, size.fit, size.fits, size.single_std, size.small_pool)
    for n in (2, 7, 12):
        plane = plane_prediction([law, other], n, 1000)
        assert (size.lower[n - 1], size.upper[n - 1]) == pytest.approx((plane.lower, plane.upper), abs=1e-12)
    assert size.quantile == t_quantile(5)
    assert np.all(size.lower < size.point) and np.all(size.point < size.upper)


def test_ensemble_band_against_a_hand_computation():
    point, n = np.array([1.0, 0.9, 0.85]), np.array([1, 4, 16])
    curves = point + np.array([[0.01, 0.02, 0.04], [-0.01, -0.02, -0.04]])  # variance 1e-4, 4e-4, 16e-4
    lower, upper, q = ensemble_band(point, curves, n, single_std=0.04, networks=6)
    half = stats.t.ppf(0.95, 5) * np.sqrt(np.array([1e-4, 4e-4, 16e-4]) + 0.04 ** 2 / n)
    np.testing.assert_allclose(upper - point, half, rtol=1e-12)
    np.testing.assert_allclose(point - lower, half, rtol=1e-12)
    assert q == pytest.approx(stats.t.ppf(0.95, 5), rel=1e-15)
