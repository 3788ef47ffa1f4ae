"""The recommender's extrapolation on synthetic power-law data: known exponents are recovered, the known best
candidate is found, and the predictive intervals cover fresh runs at about their nominal rate."""

from __future__ import annotations

import numpy as np
import pytest

from ensplit.analysis.extrapolation import SizeLaw, interpolate_log, ladder_prediction, plane_prediction
from ensplit.analysis.powerlaw import PowerLaw

LADDER = (4000, 8000, 16000, 32000)
TARGET = 80_000


def law(a: float, b: float, c: float):
    return lambda budget: c + b * np.power(budget, a)


def synthetic_ladder(truth, sigma: float, seeds: int, rng: np.random.Generator) -> dict[int, list[float]]:
    return {budget: list(truth(budget) + rng.normal(0.0, sigma, seeds)) for budget in LADDER}


@pytest.mark.parametrize("a, b, c", [(-0.5, 30.0, 0.8), (-0.8, 200.0, 0.9), (-0.3, 5.0, 0.7)])
def test_noise_free_ladders_recover_the_law_exactly(a, b, c):
    truth = law(a, b, c)
    prediction = ladder_prediction({budget: [truth(budget)] * 3 for budget in LADDER}, TARGET, repeats=20)
    assert prediction.law.a == pytest.approx(a, abs=1e-4) and prediction.law.c == pytest.approx(c, abs=1e-5)
    assert prediction.value == pytest.approx(truth(TARGET), abs=1e-6)
    assert prediction.upper - prediction.lower == pytest.approx(0.0, abs=1e-6)  # no noise, no doubt


def test_noisy_ladders_recover_the_exponent_and_the_best_candidate():
    rng = np.random.default_rng(0)
    families = {"steep": law(-0.6, 60.0, 0.75), "shallow": law(-0.3, 4.0, 0.72), "flat": law(-0.9, 900.0, 0.86)}
    truths = {name: truth(TARGET) for name, truth in families.items()}
    winners, exponents = [], []
    for _ in range(20):
        predictions = {name: ladder_prediction(synthetic_ladder(truth, 0.004, 3, rng), TARGET, repeats=30)
                       for name, truth in families.items()}
        winners.append(min(predictions, key=lambda name: predictions[name].value))
        exponents.append(predictions["steep"].law.a)
    assert winners.count(min(truths, key=truths.get)) >= 18  # the known best, nearly always
    assert np.median(exponents) == pytest.approx(-0.6, abs=0.1)


@pytest.mark.parametrize("a, b, c, sigma", [(-0.5, 30.0, 0.8, 0.02), (-0.8, 200.0, 0.9, 0.01)])
def test_ladder_intervals_cover_a_fresh_run_at_about_the_nominal_rate(a, b, c, sigma):
    rng = np.random.default_rng(1)
    truth = law(a, b, c)
    trials = 150
    hits = sum(ladder_prediction(synthetic_ladder(truth, sigma, 3, rng), TARGET, repeats=60, seed=t)
               .contains(truth(TARGET) + rng.normal(0.0, sigma)) for t in range(trials))
    assert 0.82 <= hits / trials <= 0.99  # nominal 0.90; plain percentiles of three seeds give about 0.80


def _size_law(params: int, truth, sigma: float, networks: int, rng: np.random.Generator) -> SizeLaw:
    """A per-size law as the pool bootstrap gives it: the point law and refits perturbed by the fit's spread."""
    a, b, c = truth
    point = PowerLaw(a, b, c, 0.0)
    refits = tuple(PowerLaw(a, b, c + rng.normal(0.0, sigma / np.sqrt(networks)), 0.0) for _ in range(200))
    return SizeLaw(params, point, refits, sigma, networks)


def test_the_plane_interpolates_in_log_size_and_covers_fresh_ensembles():
    rng = np.random.default_rng(2)
    sizes = (4000, 8000, 16000)
    # CNLL(n, s) = c(s) + b·n^a with c linear in log s: interpolation in log s is then exact
    c_of = {s: 1.2 - 0.05 * np.log2(s / 4000) for s in sizes}
    laws = [_size_law(s, (-0.7, 0.2, c_of[s]), 0.02, 6, rng) for s in sizes]
    for members, params in ((2, 12000), (4, 5657), (3, 4000)):
        expected = 1.2 - 0.05 * np.log2(params / 4000) + 0.2 * members ** -0.7
        assert plane_prediction(laws, members, params).value == pytest.approx(expected, abs=1e-12)
    hits = 0
    for _ in range(200):
        truth = 1.2 - 0.05 * np.log2(12000 / 4000) + 0.2 * 2 ** -0.7
        prediction = plane_prediction(laws, 2, 12000)
        hits += prediction.contains(truth + rng.normal(0.0, 0.02 / np.sqrt(2)))
    assert 0.85 <= hits / 200 <= 1.0


def test_log_interpolation_against_a_hand_computation():
    assert interpolate_log([100, 400], [1.0, 3.0], 200) == pytest.approx(2.0)
    assert interpolate_log([100, 400], [1.0, 3.0], 800) == pytest.approx(4.0)  # extrapolated from the nearest two
    assert interpolate_log([400, 100, 1600], [3.0, 1.0, 5.0], 800) == pytest.approx(4.0)
