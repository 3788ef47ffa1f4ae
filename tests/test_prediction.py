"""Seed 000 §7 protocol: small-pool estimates vs a loop, extrapolation error, bootstrap bands, OMS comparison."""

import itertools

import numpy as np
import pytest

from ensplit.analysis.powerlaw import PowerLaw, fit_power_law
from ensplit.analysis.prediction import (
    SizePrediction,
    _distinct_ensembles,
    _small_pool_curves,
    _small_pools,
    compare_splits,
    predict_memory_splits,
    predict_size,
)
from ensplit.errors import EnsplitError
from ensplit.metrics import cnll_ttcv, cnll_ttcv_indexed
from synthetic import synthetic_pool


def test_small_pool_curve_is_the_mean_over_all_combinations():
    pool, labels = synthetic_pool(5, objects=80)
    result = predict_size(pool, labels, params=100, small_pool=5, repeats=1, resample="subsets", splits=2)
    for n in range(1, 5):  # the draw is all 5 networks, so its combinations do not depend on the order
        combos = [list(c) for c in itertools.combinations(range(5), n)]
        expected = np.mean([float(cnll_ttcv(pool[c], labels, splits=2)) for c in combos])
        assert result.small_curves[0, n - 1] == pytest.approx(expected, abs=1e-10)


def test_prediction_from_n_up_to_4_extrapolates_and_has_bands():
    pool, labels = synthetic_pool(24)
    result = predict_size(pool, labels, params=1000, small_pool=6, repeats=8, splits=2)
    assert result.n.tolist() == list(range(1, 25)) and len(result.fits) == 8
    # 5–95% predictive bands around the point prediction, for one new ensemble (tests/test_intervals*.py)
    assert np.all(result.lower < result.point) and np.all(result.point < result.upper)
    assert result.single_std > 0 and result.quantile > 1.645
    assert result.std[-1] > 0  # bootstrap resamples differ
    assert result.measured_n.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    # Error well below the CNLL itself (Lobacheva et al.: 1–2 orders of magnitude).
    assert 0 < result.rmse < 0.1 * result.measured.min()


def test_compare_splits_exact_when_prediction_equals_measurement():
    def size(params, c):
        n = np.arange(1, 9)
        law = PowerLaw(a=-0.9, b=0.3, c=c, rmse=0.0)
        curve = law.predict(n)
        return SizePrediction(params, n, curve, 0 * curve, curve, curve, n, curve, 0.0, 0.0, (law, law),
                              np.zeros((2, 4)))

    sizes = (size(1_000, 1.0), size(4_000, 0.9), size(16_000, 0.85))
    comparisons = compare_splits(sizes)
    assert [c.budget for c in comparisons] == [1_000, 4_000, 16_000]
    assert all(c.exact for c in comparisons)
    largest = comparisons[-1]
    assert largest.measured.n > 1 and largest.predicted_n_per_repeat == (largest.predicted.n,) * 2


def test_predict_memory_splits_over_sizes():
    pools = {500: synthetic_pool(12, noise=1.2, seed=1)[0], 2_000: synthetic_pool(12, noise=0.8, seed=2)[0]}
    labels = synthetic_pool(1)[1]
    result = predict_memory_splits(pools, labels, repeats=3, splits=1)
    assert [s.params for s in result.sizes] == [500, 2_000]
    assert [c.budget for c in result.splits] == [500, 2_000]
    assert all(c.measured.total <= c.budget and c.predicted.total <= c.budget for c in result.splits)


def test_bad_input():
    pool, labels = synthetic_pool(4, objects=20)
    with pytest.raises(EnsplitError):
        predict_size(pool, labels, params=1, small_pool=6)
    with pytest.raises(EnsplitError):
        predict_size(pool, labels, params=1, small_pool=4, resample="jackknife")


def test_point_prediction_is_the_fit_on_the_first_networks():
    pool, labels = synthetic_pool(24)
    result = predict_size(pool, labels, params=10, small_pool=6, repeats=2, splits=2)
    small = [np.mean([float(cnll_ttcv(pool[list(c)], labels, splits=2))
                      for c in itertools.combinations(range(6), n)]) for n in range(1, 5)]
    expected = fit_power_law(np.arange(1, 5), np.array(small))
    assert (result.fit.a, result.fit.b, result.fit.c) == pytest.approx((expected.a, expected.b, expected.c), abs=1e-9)
    np.testing.assert_allclose(result.point, expected.predict(np.arange(1, 25)), atol=1e-9)
    assert result.small_pool == 6 and np.array_equal(result.plane, result.point)
    beyond = result.measured_n > 4
    assert beyond.any()
    rmse = np.sqrt(np.mean((expected.predict(result.measured_n[beyond]) - result.measured[beyond]) ** 2))
    assert result.point_rmse == pytest.approx(rmse, abs=1e-9)


def test_no_repeats_collapses_the_band_onto_the_point():
    pool, labels = synthetic_pool(8)
    result = predict_size(pool, labels, params=10, small_pool=6, repeats=0, splits=2)
    assert result.fits == ()
    assert np.array_equal(result.lower, result.point) and np.array_equal(result.upper, result.point)


def test_predicted_split_stays_on_measured_cells_unless_asked():
    def size(params, c, measured_up_to):
        n = np.arange(1, 33)
        law = PowerLaw(a=-0.9, b=0.3, c=c, rmse=0.0)
        measured_n = np.arange(1, measured_up_to + 1)
        return SizePrediction(params, n, law.predict(n), 0 * n, law.predict(n), law.predict(n), measured_n,
                              law.predict(measured_n), 0.0, 0.0, (law,), np.zeros((1, 4)))

    sizes = (size(1_000, 0.80, 4), size(8_000, 0.85, 4))
    inside = compare_splits(sizes, [32_000])[0]
    anywhere = compare_splits(sizes, [32_000], within_measured=False)[0]
    assert inside.predicted.n <= 4  # only measured n are candidates
    assert anywhere.predicted == anywhere.predicted.__class__(32, 1_000, pytest.approx(anywhere.predicted.cnll))


def test_no_resample_with_three_distinct_networks_leaves_the_point_prediction_without_bands():
    """A bootstrap of a 3-network small pool often repeats a network; when every resample does, the bands
    collapse onto the point prediction (as with repeats = 0) instead of failing after the pools were trained."""
    from ensplit.analysis.prediction import _small_pools

    seed = next(s for s in range(200)
                if all(len(set(d.tolist())) < 3 for d in _small_pools(3, 3, 2, "bootstrap", s)))
    pool, labels = synthetic_pool(3)
    result = predict_size(pool, labels, params=10, small_pool=3, fit_max_n=3, repeats=2, splits=2, seed=seed)
    assert result.fits == ()
    np.testing.assert_array_equal(result.predicted, result.point)
    np.testing.assert_array_equal(result.lower, result.upper)
    with_bands = predict_size(pool, labels, params=10, small_pool=3, fit_max_n=3, repeats=0, splits=2, seed=seed)
    np.testing.assert_array_equal(result.point, with_bands.point)


def test_small_pool_curves_score_each_distinct_ensemble_once_and_equal_the_plain_loop():
    """Each draw scored on its own (as before the change) against every distinct ensemble scored once."""
    pool, labels = synthetic_pool(6, objects=150, noise=1.0, seed=7)
    draws = [np.arange(6)] + _small_pools(6, 6, 30, "bootstrap", seed=3)
    plain = np.full((len(draws), 4), np.nan)
    for i, draw in enumerate(draws):
        for n in range(1, 5):
            ensembles = _distinct_ensembles(draw, n)
            if len(ensembles):
                plain[i, n - 1] = float(cnll_ttcv_indexed(pool, labels, [ensembles], "before", 5, 0)[0][0].mean())
    curves, single_std = _small_pool_curves(pool, labels, draws, 4, "before", 5, 0)
    np.testing.assert_allclose(curves, plain, rtol=0, atol=1e-12)  # nan where a draw has too few networks
    assert np.isnan(plain).any()  # the bootstrap drew repeats, so some draws lack 4 distinct networks
    singles = [float(cnll_ttcv(pool[i:i + 1], labels, splits=5)) for i in range(6)]
    assert single_std == pytest.approx(np.std(singles, ddof=1), rel=1e-9)
