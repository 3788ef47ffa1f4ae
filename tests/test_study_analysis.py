"""`analyze_pools`, the study's answer, checked against a plain loop over the measured (n, s) cells."""

import numpy as np
import pytest

from ensplit.analysis.study_pools import analyze_pools, summary_dict
from ensplit.metrics import pool_metrics
from ensplit.report.study_text import render_summary
from synthetic import synthetic_pool


@pytest.fixture(scope="module")
def pools():
    # bigger members are better and less diverse: splitting pays at the larger budgets
    sizes = [(8, 100, 24, 1.6), (16, 400, 18, 1.2), (32, 1_600, 12, 1.0)]
    labels = synthetic_pool(1, objects=120, data_seed=8)[1]
    pools = [(w, p, synthetic_pool(count, objects=120, noise=noise, seed=w, data_seed=8)[0])
             for w, p, count, noise in sizes]
    return pools, labels


def test_budgets_match_a_brute_force_loop(pools):
    pools, labels = pools
    analysis = analyze_pools(pools, labels, splits=2, bootstrap=4)
    cells = {}
    for _, params, lp in pools:
        for n in range(1, len(lp) + 1):
            if n == 1 or len(lp) // n >= 3:
                cells[(n, params)] = pool_metrics(lp, labels, n, splits=2).mean["cnll"]
    assert [b.budget for b in analysis.budgets] == [100, 400, 1_600]
    for row in analysis.budgets:
        candidates = {k: v for k, v in cells.items() if k[0] * k[1] <= row.budget}
        best = min(candidates, key=lambda k: (candidates[k], k[0]))
        assert (row.best_n, row.best_params) == best
        assert row.best_cnll == pytest.approx(cells[best], abs=1e-12)
        assert row.single_cnll == pytest.approx(cells[(1, row.budget)], abs=1e-12)
        assert row.advantage == pytest.approx(cells[(1, row.budget)] - cells[best], abs=1e-12)
        assert (row.predicted_n, row.predicted_width) in {(k[0], {100: 8, 400: 16, 1_600: 32}[k[1]])
                                                          for k in candidates}
        assert row.predicted_regret == pytest.approx(cells[(row.predicted_n, {8: 100, 16: 400, 32: 1_600}[
            row.predicted_width])] - cells[best], abs=1e-12)
        lo, hi = row.predicted_n_range
        assert 1 <= lo <= hi
    # the envelope's corners are cells, each better than every cell of smaller or equal total
    for total, cnll in analysis.envelope:
        assert cnll == min(v for k, v in cells.items() if k[0] * k[1] <= total)


def test_summary_renders_and_sizes_below_three_networks_are_not_predicted(pools):
    pools, labels = pools
    tiny = pools + [(64, 6_400, pools[-1][2][:2])]
    analysis = analyze_pools(tiny, labels, splits=2, bootstrap=2)
    assert [p.params for p in analysis.predictions] == [100, 400, 1_600]
    assert all(b.predicted_n is None for b in analysis.budgets)  # the predicted plane misses one size
    text = render_summary(summary_dict(analysis))
    assert "6,400" in text and "RMSE vs measured larger n" in text
    assert np.isfinite(analysis.sizes[0].fit.c)


def test_memory_split_curves_spend_the_budget(pools):
    from ensplit.report.study_report import _at_budget

    pools, labels = pools
    analysis = analyze_pools(pools, labels, splits=2, bootstrap=0)
    curve = dict(_at_budget(analysis.sizes, 1_600))
    # 1 × 1,600, 4 × 400 and 16 × 100 (measured: pool of 24 keeps n ≤ 8, so 16 × 100 is left out)
    assert sorted(curve) == [1, 4]
    assert curve[4] == pytest.approx(float(analysis.sizes[1].cnll[3]))
