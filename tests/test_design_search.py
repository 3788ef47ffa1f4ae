"""The ladder-design search (benchmarks/recommend_design_search.py): seeds per rung, seed draws, and the score
of a design on evidence whose law is known."""

from __future__ import annotations

import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def search(benchmark_script):
    return benchmark_script("recommend_design_search")


def test_seeds_per_rung_spreads_one_count_or_takes_one_per_rung(search):
    assert search.seeds_per_rung(("d", 4, 4, 2, 1), 4) == [1, 1, 1, 1]
    assert search.seeds_per_rung(("d", 4, 4, 2, (3, 2, 1, 1)), 4) == [3, 2, 1, 1]


def test_every_design_names_one_seed_count_per_rung(search):
    for design in search.DESIGNS:
        seeds = design[4]
        assert isinstance(seeds, int) or len(seeds) == design[2], design[0]


def test_draw_zero_takes_the_first_seeds_and_later_draws_distinct_ones(search):
    values = [0.1, 0.2, 0.3]
    rng = np.random.default_rng(0)
    assert search.pick(values, 2, 0, rng) == [0.1, 0.2]
    seen = set()
    for draw in range(1, 30):
        picked = search.pick(values, 2, draw, np.random.default_rng(draw))
        assert len(picked) == 2 and len(set(picked)) == 2 and set(picked) <= set(values)
        seen.add(tuple(sorted(picked)))
    assert len(seen) == 3  # every pair of the three seeds turns up


def _law_cells(search, budget: int, noise: float) -> dict:
    """Evidence from CNLL = 0.5 + 20·B^-0.5 per method (seed noise ±noise around it), truth at the budget."""
    rng = np.random.default_rng(1)
    law = lambda b: 0.5 + 20.0 * b ** -0.5  # noqa: E731
    cells = {}
    for method in search.METHODS:
        cells[f"truth/{method}/{budget}"] = {"values": [law(budget)] * 3, "params": budget}
        for size in search.GRID:
            cells[f"grid/{method}/{size}"] = {"values": list(law(size) + noise * rng.standard_normal(3)),
                                              "params": size}
    return cells


def test_a_design_on_an_exact_power_law_predicts_the_truth(search):
    budget = 80_000
    cells = _law_cells(search, budget, noise=1e-4)
    design = ("P/32 … P/4", 4, 4, 2, (2, 2, 1, 1))
    scored = search.score(cells, budget, design)
    assert scored["methods"] == len(search.METHODS)
    assert scored["rmse"] < 5e-3 and scored["regret"] == 0.0
    rungs = search.rungs(budget, 4, 4, 2)
    assert rungs == sorted(rungs) and len(rungs) == 4
    assert math.isclose(scored["flops"], (2 * rungs[0] + 2 * rungs[1] + rungs[2] + rungs[3]) / budget)


def test_mean_score_is_the_mean_over_draws(search):
    budget = 23_050
    cells = _law_cells(search, budget, noise=0.02)
    design = ("P/32 … P/4", 4, 4, 2, 1)
    draws = [search.score(cells, budget, design, d) for d in range(3)]
    mean = search.mean_score(cells, budget, design, 3)
    for key in ("rmse", "coverage", "width", "flops"):
        assert math.isclose(mean[key], float(np.mean([d[key] for d in draws])), rel_tol=1e-12)
    assert draws[0] != draws[1]  # the draws differ: the seeds they pick do
