"""Memory split: the envelope and optimal splits against a brute-force search over a synthetic (n, s) plane."""

import itertools

import numpy as np
import pytest

from ensplit.analysis.memory_split import (
    SplitPoint,
    analyze_memory_split,
    budget_envelope,
    optimal_split,
    points_from_curves,
)
from ensplit.errors import EnsplitError
from ensplit.metrics.pool import PoolEstimate

SIZES = [1_000, 3_000, 10_000, 30_000, 100_000]


def _plane(noise=0.0, seed=0):
    """CNLL(n, s) = c(s) + b·n^a with c(s) = 0.8 + 30·s^−0.5: big networks win on c, ensembles on n."""
    rng = np.random.default_rng(seed)
    points = []
    for s in SIZES:
        for n in range(1, 17):
            cnll = 0.8 + 30 * s**-0.5 + 0.25 * n**-0.9 + noise * rng.normal()
            points.append(SplitPoint(n, s, float(cnll), accuracy=float(0.9 - 0.1 * cnll)))
    return points


def test_optimal_split_matches_brute_force_per_budget():
    points = _plane(noise=0.01)
    for budget in [1_000, 2_500, 10_000, 45_000, 100_000, 1_000_000]:
        best_value, best = np.inf, None
        for p in points:  # brute force over every configuration that fits
            if p.n * p.params <= budget and p.cnll < best_value:
                best_value, best = p.cnll, p
        split = optimal_split(points, budget)
        assert split.best == best
        single = max((p for p in points if p.n == 1 and p.params <= budget), key=lambda p: p.params)
        assert split.single == single
        assert split.advantage == pytest.approx(single.cnll - best.cnll)
        assert split.has_advantage == (best.n > 1)


def test_envelope_is_the_brute_force_staircase():
    points = _plane(noise=0.01, seed=1)
    corners = budget_envelope(points)
    totals = sorted({p.total for p in points})
    for budget in totals:  # the staircase at every budget equals the last corner at or below it
        brute = min(p.cnll for p in points if p.total <= budget)
        corner = [c for c in corners if c.total <= budget][-1]
        assert corner.cnll == brute
    assert all(a.total < b.total and a.cnll > b.cnll for a, b in itertools.pairwise(corners))


def test_analysis_fits_all_three_directions_and_finds_the_advantage():
    analysis = analyze_memory_split(_plane())
    assert [p.params for p in analysis.single] == SIZES
    assert set(analysis.fit_n) == set(SIZES)
    assert analysis.fit_n[10_000].a == pytest.approx(-0.9, abs=1e-5)
    assert analysis.fit_n[10_000].c == pytest.approx(0.8 + 30 * 10_000**-0.5, abs=1e-6)
    assert analysis.fit_s is not None and analysis.fit_s.a == pytest.approx(-0.5, abs=1e-5)
    totals = np.array([p.total for p in analysis.envelope])
    residual = analysis.fit_b.predict(totals) - np.array([p.cnll for p in analysis.envelope])
    assert analysis.fit_b.a < 0 and analysis.fit_b.rmse == pytest.approx(np.sqrt(np.mean(residual**2)), rel=1e-9)
    assert [s.budget for s in analysis.splits] == SIZES
    largest = analysis.splits[-1]
    assert largest.has_advantage and largest.advantage > 0 and largest.best.total <= 100_000


def test_points_from_curves_and_bad_input():
    curve = [PoolEstimate(n, 8 // n, {"cnll": 1.0 / n, "accuracy": 0.5}, {"cnll": 0.0, "accuracy": 0.0})
             for n in (1, 2)]
    points = points_from_curves({500: curve})
    assert points == [SplitPoint(1, 500, 1.0, 0.5), SplitPoint(2, 500, 0.5, 0.5)]
    with pytest.raises(EnsplitError):
        optimal_split(points, budget=100)
    with pytest.raises(EnsplitError):
        analyze_memory_split(points + [SplitPoint(1, 500, 2.0)])
    with pytest.raises(EnsplitError):
        analyze_memory_split([])
