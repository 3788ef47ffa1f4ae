"""Pools of 3 networks in recommend's (n, s) plane: their law's uncertainty, which their own bootstrap cannot
give, from subsets of a larger pool; checked against a plain loop over every subset, hand computations of
the plane's interval, and by simulation against fresh ensembles.

A bootstrap of 3 networks that keeps only resamples of distinct networks keeps the pool itself, so every
refit is the point law and the interval held only one new ensemble's noise: in simulation it covered a
fresh 7-network ensemble 45–63% of the time instead of 90%.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from ensplit.analysis.extrapolation import (
    SizeLaw,
    interpolate_log,
    log_weights,
    plane_prediction,
    pooled_single_noise,
)
from ensplit.analysis.intervals import predictive_interval, t_quantile
from ensplit.analysis.powerlaw import PowerLaw, fit_power_law
from ensplit.analysis.prediction import predict_size, subset_fit_variance
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_evidence import _with_fit_variance
from ensplit.experiments.recommend_plan import RecommendConfig
from ensplit.metrics import cnll_ttcv
from synthetic import synthetic_pool


def _cnll(pool: torch.Tensor, labels: torch.Tensor, members: tuple[int, ...]) -> float:
    return float(cnll_ttcv(pool[list(members)], labels, mode="before", splits=1))


def test_subset_fit_variance_against_a_loop_over_every_subset():
    pool, labels = synthetic_pool(6, objects=200, noise=1.0, seed=4)
    n = np.arange(1, 9)
    curves = []
    for subset in itertools.combinations(range(6), 3):  # all 20: the law fitted on each, by hand
        points = [np.mean([_cnll(pool, labels, c) for c in itertools.combinations(subset, k)]) for k in (1, 2, 3)]
        curves.append(fit_power_law(np.array([1, 2, 3]), np.array(points)).predict(n))
    exact = np.var(curves, axis=0) * 5 / 3  # (N − 1)/(N − networks), N = 6
    np.testing.assert_allclose(subset_fit_variance(pool, labels, 3, 8, repeats=20, splits=1), exact, rtol=1e-9)
    sampled = subset_fit_variance(pool, labels, 3, 8, repeats=19, splits=1, seed=0)  # fewer: random subsets
    assert not np.allclose(sampled, exact, rtol=1e-6)
    np.testing.assert_allclose(sampled, exact, rtol=0.6)  # 19 random draws of the 20: the same order


def test_subset_fit_variance_refuses_a_pool_too_small_to_subsample():
    pool, labels = synthetic_pool(4, objects=50, seed=1)
    with pytest.raises(EnsplitError, match="more than 4"):
        subset_fit_variance(pool, labels, 3, 8, repeats=10)


def test_log_weights_against_a_hand_computation():
    assert log_weights([100, 400], 200) == pytest.approx({0: 0.5, 1: 0.5})
    assert log_weights([400, 100, 1600], 800) == pytest.approx({0: 0.5, 2: 0.5})  # unsorted sizes, by index
    assert log_weights([100, 400], 1600) == pytest.approx({0: -1.0, 1: 2.0})  # beyond: from the nearest two
    assert log_weights([100], 5) == {0: 1.0}
    assert interpolate_log([400, 100, 1600], [3.0, 1.0, 5.0], 800) == pytest.approx(4.0)


def test_a_laws_fit_variance_enters_the_plane_with_its_weight_squared():
    law = PowerLaw(-0.7, 0.2, 1.0, 0.0)
    small = SizeLaw(400, law, (), 0.03, 3, fit_variance=(1e-4, 4e-4, 9e-4))
    large = SizeLaw(100, law, tuple(PowerLaw(-0.7, 0.2, 1.0 + d, 0.0) for d in (0.01, -0.01)), 0.05, 6)
    assert small.variance(2) == 4e-4 and small.variance(8) == 9e-4  # beyond the tuple: its last value
    prediction = plane_prediction([large, small], 2, 200)  # halfway in log s: weights ½ and ½
    refits = np.var([0.5 * 0.01, -0.5 * 0.01])  # the large pool's refits, the small one's point law
    sigma = (0.05 + 0.03) / 2 / np.sqrt(2)
    half = stats.t.ppf(0.95, 2) * np.sqrt(refits + 0.25 * 4e-4 + sigma ** 2)  # σ's dof: the 3-network pool's
    assert prediction.value == pytest.approx(float(law.predict(2)), abs=1e-12)
    assert prediction.upper - prediction.value == pytest.approx(half, rel=1e-12)
    assert prediction.sigma == pytest.approx(sigma, rel=1e-12)
    alone = plane_prediction([large, SizeLaw(1600, law, large.replicates, 0.05, 6)], 2, 400)  # reads 6-pools only
    assert alone.quantile == pytest.approx(stats.t.ppf(0.95, 5), rel=1e-12)


def test_pooled_noise_against_a_hand_computation_and_in_the_plane():
    law = PowerLaw(-0.7, 0.2, 1.0, 0.0)
    laws = [SizeLaw(100, law, (law,), 0.05, 6), SizeLaw(200, law, (), 0.02, 3), SizeLaw(400, law, (), 0.01, 3),
            SizeLaw(800, law, (), float("nan"), 1)]  # one network: no spread to pool
    sigma, dof = pooled_single_noise(laws)
    assert dof == 5 + 2 + 2
    assert sigma == pytest.approx(np.sqrt((5 * 0.05 ** 2 + 2 * 0.02 ** 2 + 2 * 0.01 ** 2) / 9), rel=1e-12)
    assert pooled_single_noise([SizeLaw(100, law, (), float("nan"), 1)]) is None
    small = SizeLaw(400, law, (), 0.01, 3, fit_variance=(1e-4,))
    prediction = plane_prediction([laws[0], small], 3, 400, noise=(sigma, dof))  # at the small pool's size
    half = stats.t.ppf(0.95, 9) * np.sqrt(1e-4 + sigma ** 2 / 3)
    assert prediction.upper - prediction.value == pytest.approx(half, rel=1e-12)


def test_recommend_gives_a_3_network_pool_the_scaled_subset_variance_or_its_level():
    config = RecommendConfig()
    reference, labels = synthetic_pool(6, objects=150, noise=1.0, seed=2)
    law = PowerLaw(-0.7, 0.2, 1.0, 0.0)
    small = SizeLaw(800, law, (), 0.02, 3)
    large = SizeLaw(200, law, (law,), 0.04, 6)
    got = _with_fit_variance(small, {200: reference}, [large, small], labels, config)
    expected = subset_fit_variance(reference, labels, 3, config.members_max, config.bootstrap,
                                   splits=config.cnll_splits, seed=config.recipe.seed) * (0.02 / 0.04) ** 2
    np.testing.assert_allclose(got.fit_variance, expected, rtol=1e-12)
    assert _with_fit_variance(large, {200: reference}, [large, small], labels, config) is large
    pooled = _with_fit_variance(small, {200: reference}, [large, small], labels, config, noise=(0.03, 7))
    np.testing.assert_allclose(pooled.fit_variance, expected * (0.03 / 0.02) ** 2, rtol=1e-12)  # σ² pooled
    alone = _with_fit_variance(small, {}, [small, SizeLaw(1600, law, (), 0.05, 3)], labels, config)
    assert alone.fit_variance == pytest.approx((0.02 ** 2 / 3,))  # no larger pool: the level of the curve


def _trial(trial: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Whether the interval at n = 2, 4, 7 from a 3-network pool holds a fresh ensemble: with the subset
    variance from a 6-network pool and σ pooled over the two (as recommend builds it), and without (the pool's
    bootstrap and its own σ alone, as before)."""
    targets = np.array([2, 4, 7])
    pool, labels = synthetic_pool(3, objects=300, noise=noise, seed=trial)
    reference, _ = synthetic_pool(6, objects=300, noise=noise, seed=50_000 + trial)
    fresh, _ = synthetic_pool(7, objects=300, noise=noise, seed=100_000 + trial)
    truth = np.array([_cnll(fresh, labels, tuple(range(n))) for n in targets])
    size = predict_size(pool, labels, 1, max_n=8, small_pool=3, fit_max_n=3, repeats=20, splits=1, seed=trial,
                        measured=[])
    sigma = float(np.std([_cnll(pool, labels, (i,)) for i in range(3)], ddof=1))
    sigma_ref = float(np.std([_cnll(reference, labels, (i,)) for i in range(6)], ddof=1))
    pooled = np.sqrt((2 * sigma ** 2 + 5 * sigma_ref ** 2) / 7)  # as recommend: σ pooled over the pools
    variance = subset_fit_variance(reference, labels, 3, 8, repeats=20, splits=1, seed=trial)[targets - 1]
    lower, upper = predictive_interval(size.point[targets - 1], variance * (pooled / sigma_ref) ** 2,
                                       pooled / np.sqrt(targets), t_quantile(7))
    at = targets - 1
    return (lower <= truth) & (truth <= upper), (size.lower[at] <= truth) & (truth <= size.upper[at])


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.6, 1.5])
def test_three_network_pools_cover_a_fresh_ensemble_at_about_the_nominal_rate(noise):
    trials = [_trial(t, noise) for t in range(100)]
    new, old = np.mean([t[0] for t in trials], axis=0), np.mean([t[1] for t in trials], axis=0)
    message = f"n = 2, 4, 7: with the subset variance {new.tolist()}, the bootstrap alone {old.tolist()}"
    assert np.all(new >= 0.8) and new.mean() <= 0.98, message
    assert old[-1] <= new[-1] - 0.15, message
