"""The power-law fit recovers known (a, b, c) from synthetic sequences, with and without noise."""

import numpy as np
import pytest

from ensplit.analysis.powerlaw import fit_power_law
from ensplit.errors import EnsplitError


@pytest.mark.parametrize("a,b,c", [(-0.85, 0.4, 0.9), (-0.5, 1.2, 0.3), (-1.3, 0.05, 1.1)])
def test_exact_sequences_are_recovered(a, b, c):
    m = np.arange(1, 33, dtype=float)
    fit = fit_power_law(m, c + b * m**a)
    assert fit.a == pytest.approx(a, abs=1e-5) and fit.b == pytest.approx(b, rel=1e-4)
    assert fit.c == pytest.approx(c, abs=1e-5) and fit.rmse < 1e-8


def test_noisy_sequences_are_recovered_within_noise():
    rng = np.random.default_rng(0)
    m = np.arange(1, 65, dtype=float)
    truth = dict(a=-0.8, b=0.3, c=0.95)
    estimates = []
    for _ in range(50):
        y = truth["c"] + truth["b"] * m ** truth["a"] + rng.normal(0, 0.002, m.shape)
        estimates.append(fit_power_law(m, y))
    assert np.median([e.a for e in estimates]) == pytest.approx(truth["a"], abs=0.05)
    assert np.median([e.c for e in estimates]) == pytest.approx(truth["c"], abs=0.005)
    assert np.median([e.rmse for e in estimates]) == pytest.approx(0.002, rel=0.2)


def test_fit_matches_a_brute_force_grid():
    rng = np.random.default_rng(1)
    m = np.arange(1, 17, dtype=float)
    y = 0.7 + 0.5 * m**-0.6 + rng.normal(0, 0.01, m.shape)
    fit = fit_power_law(m, y)
    best = np.inf
    for a in np.linspace(-3, -0.01, 3000):  # brute force: fine grid in a, exact least squares in (b, c)
        x = np.stack([m**a, np.ones_like(m)], 1)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        if coef[0] > 0:
            best = min(best, float(np.sum((y - x @ coef) ** 2)))
    assert fit.rmse**2 * len(m) <= best + 1e-9


def test_log2_objective_and_prediction():
    m = np.arange(1, 33, dtype=float)
    y = 0.5 + 0.8 * m**-0.9
    fit = fit_power_law(m, y, objective="log2")
    assert fit.objective == "log2" and fit.c < y.min()
    np.testing.assert_allclose(fit.predict(m), y, atol=2e-3)


def test_bad_input():
    with pytest.raises(EnsplitError):
        fit_power_law([1, 2], [1.0, 0.5])
    with pytest.raises(EnsplitError):
        fit_power_law([1, 2, 3], [1.0, np.nan, 0.5])


def test_the_vectorised_grid_equals_the_loop_over_exponents():
    """`_grid_rss` (all exponents at once) against `_linear_fit` called per exponent, float64, 1e-10 relative."""
    import numpy as np

    from ensplit.analysis.powerlaw import _grid_rss, _linear_fit

    rng = np.random.default_rng(0)
    grid = -np.geomspace(1e-3, 4.0, 161)[::-1]
    for _ in range(50):
        m = rng.uniform(1.0, 50.0, rng.integers(3, 20))
        y = rng.normal(size=m.size)
        loop = np.array([_linear_fit(m, y, a)[2] for a in grid])
        assert np.allclose(_grid_rss(m, y, grid), loop, rtol=1e-10, atol=1e-12)
    flat = np.ones(5)  # a constant basis column (m all equal to 1): the loop's zero-denominator branch
    assert np.allclose(_grid_rss(flat, np.arange(5.0), grid), [_linear_fit(flat, np.arange(5.0), a)[2] for a in grid])


def test_a_floor_on_the_asymptote_against_a_brute_force_search():
    """With c ≥ c_min the fit equals the best of a dense (a, c) grid search that honours the bound."""
    import numpy as np

    from ensplit.analysis.powerlaw import _grid_rss, _linear_fit, fit_power_law

    m = np.array([1000.0, 2000, 4000, 8000] * 3)
    y = np.array([1.30, 1.175, 1.00, 0.894] * 3) + np.repeat([0.0, 0.01, -0.01], 4)
    free = fit_power_law(m, y)
    floored = fit_power_law(m, y, c_min=0.0)
    assert free.c < 0 <= floored.c  # the free fit extrapolates below any possible loss
    best = min((float(np.sum((y - c - b * m ** a) ** 2)), a, c, b)
               for a in np.linspace(-3, -0.01, 300) for c in np.linspace(0, 1.2, 121)
               for b in [max(float((m ** a) @ (y - c)) / float((m ** a) @ (m ** a)), 0.0)])
    assert floored.rmse ** 2 * m.size <= best[0] + 1e-9
    grid = -np.geomspace(1e-3, 4.0, 161)[::-1]
    scaled = m / m.min()
    loop = np.array([_linear_fit(scaled, y, a, 0.0)[2] for a in grid])
    assert np.allclose(_grid_rss(scaled, y, grid, 0.0), loop, rtol=1e-10, atol=1e-12)
