"""fit_power_law: known (a, b, c) recovered from noiseless and noisy sequences, in n and in parameter counts."""

import numpy as np
import pytest

from ensplit.analysis.powerlaw import PowerLaw, fit_power_law, fit_power_law_or_none
from ensplit.errors import EnsplitError


@pytest.mark.parametrize("a,b,c", [(-0.9, 0.35, 0.88), (-0.3, 2.0, 0.1), (-2.0, 0.6, 1.2)])
def test_noiseless_sequences_in_n_are_recovered(a, b, c):
    n = np.arange(1, 17)
    fit = fit_power_law(n, c + b * n**a)
    assert (fit.a, fit.b, fit.c) == pytest.approx((a, b, c), rel=1e-6, abs=1e-7)
    assert fit.rmse < 1e-9 and fit.objective == "nll"


def test_parameter_counts_are_well_conditioned():
    # CNLL_s of a single network: a ≈ −0.5 over widths with 1e3..1e7 parameters (science.md §5).
    s = np.geomspace(1e3, 1e7, 9)
    fit = fit_power_law(s, 0.9 + 60.0 * s**-0.5)
    assert (fit.a, fit.b, fit.c) == pytest.approx((-0.5, 60.0, 0.9), rel=1e-6)


def test_noisy_sequences_are_recovered_within_noise():
    rng = np.random.default_rng(3)
    n = np.arange(1, 33)
    truth = -0.85, 0.3, 0.95
    fits = [fit_power_law(n, truth[2] + truth[1] * n ** truth[0] + rng.normal(0, 1e-3, n.size)) for _ in range(40)]
    assert np.median([f.a for f in fits]) == pytest.approx(truth[0], abs=0.05)
    assert np.median([f.c for f in fits]) == pytest.approx(truth[2], abs=3e-3)
    assert np.median([f.rmse for f in fits]) == pytest.approx(1e-3, rel=0.25)


def test_fit_from_four_points_extrapolates():
    n = np.arange(1, 5)
    fit = fit_power_law(n, 0.9 + 0.3 * n**-0.8)
    np.testing.assert_allclose(fit.predict([16, 64]), 0.9 + 0.3 * np.array([16, 64]) ** -0.8, atol=1e-8)


def test_b_stays_positive_on_increasing_data():
    fit = fit_power_law([1, 2, 3, 4], [1.0, 1.1, 1.2, 1.3])
    assert fit.b >= 0 and fit.c == pytest.approx(1.15)


def test_log2_objective_is_eq6_inside_the_window():
    n = np.arange(1, 33)
    y = 0.5 + 0.8 * n**-0.9
    fit = fit_power_law(n, y, objective="log2")
    assert fit.objective == "log2"
    assert y.min() - (y.max() - y.min()) <= fit.c < y.min()
    residual = np.log2(y - fit.c) - np.log2(fit.b) - fit.a * np.log2(n)
    assert fit.rmse == pytest.approx(np.sqrt(np.mean(residual**2)), rel=1e-9)
    assert (fit.a, fit.b, fit.c) == pytest.approx((-0.9, 0.8, 0.5), rel=1e-3, abs=1e-4)


def test_predict_and_frozen():
    law = PowerLaw(a=-1.0, b=2.0, c=1.0, rmse=0.0)
    np.testing.assert_allclose(law.predict([1, 2, 4]), [3.0, 2.0, 1.5])
    with pytest.raises(AttributeError):
        law.a = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("m,y,kwargs", [([1, 2], [1.0, 0.5], {}), ([1, 2, 3], [1.0, np.nan, 0.5], {}),
                                         ([0, 1, 2], [1.0, 0.9, 0.8], {}), ([1, 2, 3], [1.0, 0.9], {}),
                                         ([1, 2, 3], [1.0, 0.9, 0.8], {"objective": "log10"}),
                                         ([1, 2, 3], [1.0, 0.9, 0.8], {"a_range": (-1.0, 0.5)})])
def test_bad_input(m, y, kwargs):
    with pytest.raises(EnsplitError):
        fit_power_law(m, y, **kwargs)


@pytest.mark.parametrize("m", [[], [4], [4, 4, 8, 8], [1.0, 2.0, 2.0]])
def test_or_none_below_three_distinct_m(m):
    assert fit_power_law_or_none(m, np.linspace(1.0, 0.5, len(m))) is None


@pytest.mark.parametrize("objective,options", [("nll", {}), ("log2", {}), ("nll", {"c_min": 0.9}),
                                               ("log2", {"a_range": (-2.0, -0.1), "c_window": 0.5})])
def test_or_none_is_the_plain_fit_from_three_distinct_m(objective, options):
    n = np.array([1, 2, 2, 4, 8], dtype=np.float64)
    y = 1.0 + 0.5 * n**-0.7 + np.array([0.01, -0.004, 0.003, 0.002, -0.001])
    assert fit_power_law_or_none(n, y, objective, **options) == fit_power_law(n, y, objective, **options)


def test_or_none_takes_another_minimum():
    n, y = np.array([1.0, 2.0, 4.0, 8.0]), np.array([2.0, 1.5, 1.25, 1.125])
    assert fit_power_law_or_none(n[:3], y[:3], minimum=4) is None
    assert fit_power_law_or_none(n, y, minimum=4) == fit_power_law(n, y)
