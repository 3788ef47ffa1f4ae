"""`analyze_pools`, the study's answer, checked against a plain loop over the measured (n, s) cells."""

import numpy as np
import pytest

from ensplit.analysis.study_pools import analyze_pools, summary_dict
from ensplit.metrics import pool_metrics
from ensplit.reports.study_text import render_summary
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
    from ensplit.reports.study_report import _at_budget

    pools, labels = pools
    analysis = analyze_pools(pools, labels, splits=2, bootstrap=0)
    curve = dict(_at_budget(analysis.sizes, 1_600))
    # 1 × 1,600, 4 × 400 and 16 × 100 (measured: pool of 24 keeps n ≤ 8, so 16 × 100 is left out)
    assert sorted(curve) == [1, 4]
    assert curve[4] == pytest.approx(float(analysis.sizes[1].cnll[3]))


def test_per_n_prediction_rmse_matches_a_loop_over_repeats(pools):
    pools, labels = pools
    analysis = analyze_pools(pools, labels, splits=2, bootstrap=5)
    for p in analysis.predictions:
        n, rmse = p.rmse_per_n()
        assert list(n) == list(p.measured_n)
        for j, (k, measured) in enumerate(zip(p.measured_n, p.measured, strict=True)):
            squares = [(fit.c + fit.b * float(k) ** fit.a - measured) ** 2 for fit in p.fits]
            assert rmse[j] == pytest.approx(np.sqrt(sum(squares) / len(squares)), rel=1e-12)
    without = analyze_pools(pools, labels, splits=2, bootstrap=0).predictions[0]
    n, rmse = without.rmse_per_n()  # no repeats: the point prediction's absolute error
    assert rmse == pytest.approx(np.abs(without.fit.predict(n) - without.measured), rel=1e-12)


def test_fit_objective_and_resampling_reach_every_fit(pools):
    from ensplit.analysis.prediction import predict_size

    pools, labels = pools
    analysis = analyze_pools(pools, labels, splits=2, bootstrap=3, objective="log2", resample="subsets",
                             taus=(0.5, 1.0, 2.0))
    fits = [s.fit for s in analysis.sizes] + [s.nll_fit for s in analysis.sizes] + [analysis.fit_s, analysis.fit_b,
                                                                                    analysis.nll_fit_s]
    fits += [f for law in analysis.temperature_laws for f in law.fits] + [p.fit for p in analysis.predictions]
    assert fits and all(f is None or f.objective == "log2" for f in fits)
    _, params, lp = pools[0]
    direct = predict_size(lp, labels, params, max_n=24, repeats=3, resample="subsets", splits=2, objective="log2")
    assert analysis.predictions[0].predicted == pytest.approx(direct.predicted, abs=1e-12)
    summary = summary_dict(analysis)
    assert summary["fit_objective"] == {"objective": "log2", "rmse_units": "log2 units (Lobacheva et al. eq. 6)"}
    assert {p["resample"] for p in summary["prediction"]} == {"subsets"}


def test_summary_holds_nll_fits_temperature_fits_and_le_nll(pools):
    from ensplit.analysis.powerlaw import fit_power_law

    pools, labels = pools
    rule = {"rule": "x", "formula": "ℓ = 24"}
    analysis = analyze_pools(pools, labels, splits=2, bootstrap=0, taus=(0.5, 1.0, 2.0), pool_rule=rule)
    summary = summary_dict(analysis)
    assert summary["pool_rule"] == rule
    for entry, size in zip(summary["nll_fits"]["n"], analysis.sizes, strict=True):
        want = fit_power_law(size.n, size.nll)
        assert (entry["a"], entry["b"], entry["c"]) == pytest.approx((want.a, want.b, want.c), rel=1e-12)
    nll_s = [float(s.nll[0]) for s in analysis.sizes]
    assert summary["nll_fits"]["nll_s"] == nll_s
    assert summary["nll_fits"]["nll_s_rises"] == any(b > a for a, b in zip(nll_s, nll_s[1:], strict=False))
    assert summary["nll_fits"]["s"]["c"] == pytest.approx(fit_power_law([100, 400, 1_600], nll_s).c, rel=1e-12)
    # NLL_n(τ) fits at the largest size (all three pools hold ≥ 9 networks, so every size is fitted)
    assert [f["tau"] for f in summary["temperature_fits"]] == [0.5, 1.0, 2.0]
    assert {f["params"] for f in summary["temperature_fits"]} == {1_600}
    at_one = summary["temperature_fits"][1]
    assert at_one["c"] == pytest.approx(analysis.sizes[-1].nll_fit.c, abs=1e-9)  # τ = 1 is the uncalibrated NLL
    for entry, size in zip(summary["le_nll"], analysis.sizes, strict=True):
        assert list(entry["n"]) == list(size.n)
        assert entry["le_nll_minus_cnll"] == pytest.approx(entry["le_nll"] - size.cnll, abs=1e-15)
    optimum = summary["temperature_optimum"][-1]
    assert optimum["c"] == min(f["c"] for f in summary["temperature_fits"])
    text = render_summary(summary)
    assert "LE-NLL − CNLL per n" in text and "τ* =" in text and "NLL_s of single networks" in text
    assert "Pool rule: x, ℓ = 24" in text
