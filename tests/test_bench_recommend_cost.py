"""The recommend benchmarks' scoring of their peers (benchmarks/bench_recommend_cost.py and
bench_recommend_tune.py): the 1-seed brute force's own regret, and the Markdown rendered from saved results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

SAVED = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "recommend_cost.json"


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_recommend_cost")


def _regret(bench, pairs: dict[str, tuple[float | None, float | None]]) -> float:
    """`one_seed_regret` of candidates given as name: (seed 1, 3-seed mean)."""
    return bench.one_seed_regret({n: one for n, (one, _) in pairs.items()},
                                 {n: three for n, (_, three) in pairs.items()})


def test_the_peer_regret_is_its_seed_1_pick_against_the_3_seed_best(bench):
    regret = _regret(bench, {"a": (0.78, 0.77), "b": (0.77, 0.81), "c": (0.90, 0.76)})
    assert regret == pytest.approx(0.81 - 0.76)  # seed 1 picks b; c is best over 3 seeds


def test_the_peer_regret_cannot_pick_a_diverged_seed_but_still_counts_it_as_the_best(bench):
    regret = _regret(bench, {"a": (math.nan, 0.70), "b": (0.75, 0.74), "c": (0.80, 0.79), "d": (None, None)})
    assert regret == pytest.approx(0.74 - 0.70)  # a diverged at seed 1, not over 3 seeds


def test_the_peer_regret_is_zero_when_seed_1_picks_the_best(bench):
    assert _regret(bench, {"a": (0.70, 0.72), "b": (0.75, 0.74)}) == 0.0


def test_the_saved_results_render_with_the_peer_regret_by_hand(bench):
    saved = json.loads(SAVED.read_text())
    text = bench.markdown(saved["runs"], saved["machine"])
    for run in saved["runs"]:
        best_seed_1 = min((c for c in run["candidates"] if math.isfinite(c["brute_force_seed_1"])),
                          key=lambda c: c["brute_force_seed_1"])
        by_hand = best_seed_1["brute_force_3_seeds"] - min(c["brute_force_3_seeds"] for c in run["candidates"])
        row = next(line for line in text.splitlines() if line.startswith(f"| {run['budget']:,} |"))
        assert row.rstrip(" |").endswith(f"{by_hand:.4f}")


def test_the_tuned_peer_regret_reads_seed_1_in_each_chosen_cell(benchmark_script):
    tune = benchmark_script("bench_recommend_tune")
    cells = {"a": {"seeds": [0.70, 0.80, 0.81]}, "b": {"seeds": [0.72, 0.70, 0.71]}}
    truth = {name: sum(c["seeds"]) / 3 for name, c in cells.items()}
    seed_1 = {name: c["seeds"][0] for name, c in cells.items()}  # as the tuned benchmark calls it
    assert tune.one_seed_regret(seed_1, truth) == pytest.approx(truth["a"] - truth["b"])  # seed 1 picks a


def test_tuned_results_from_before_the_own_settings_still_render(benchmark_script):
    tune = benchmark_script("bench_recommend_tune")
    saved = json.loads((SAVED.parent / "recommend_tune.json").read_text())
    for run in saved["runs"]:
        for key in ("own_settings", "regret_at_own_settings", "one_seed_brute_force_regret"):
            run.pop(key, None)
    text = tune.markdown(saved["runs"], "a machine.")
    assert "as a user would follow it" not in text
    assert all(f"| {run['budget']:,} | {run['recommendation']} |" in text for run in saved["runs"])


def test_the_pools_winners_curse_is_the_choosing_ensemble_minus_a_fresh_one_by_hand(benchmark_script, tmp_path):
    import torch

    from ensplit.data.spec import load_data
    from ensplit.experiments.recommend_plan import RecommendConfig
    from ensplit.experiments.recommend_tune import tune_cheap_runs
    from ensplit.metrics import cnll_ttcv
    from ensplit.recipe import Recipe
    from ensplit.runs.executors import make_executor
    from ensplit.runs.folder import open_folder
    from ensplit.train.config import TrainConfig

    tune = benchmark_script("bench_recommend_tune")
    config = RecommendConfig(recipe=Recipe(num_samples=300, train=TrainConfig(epochs=1), threads=1), budget=3000,
                             methods=(), members_max=3, pool=7, tune=True, tune_lrs=(0.05, 0.1),
                             tune_weight_decays=(0.0,), tune_extensions=0, cnll_splits=2)
    data = load_data(config.recipe.data)
    run = open_folder(config, tmp_path / "r", "recommend")
    _, _, result = tune_cheap_runs(config, data, run, make_executor("local", "cpu", 1, None, False, 0.25), {},
                                   progress=False)
    run.store.save_labels("test", data.y_test.cpu().numpy())
    curse = tune.pool_winners_curse(tmp_path / "r", result, config.cnll_splits)
    labels = torch.as_tensor(run.store.labels()).long()

    def test_cnll(jobs, count):
        ids = {job.job_id for job in jobs}
        rows = sorted((r for r in run.store.networks("pool") if r["job_id"] in ids), key=lambda r: r["member"])
        assert len(rows) == count
        return float(cnll_ttcv(torch.as_tensor(run.store.log_probs(rows[:3])).double(), labels, splits=2))

    sizes = sorted(result.families["deep"].sizes, key=lambda s: s.params)
    assert len(curse["sizes"]) == len(sizes) >= 3  # every size holds 7 networks: 3 choosing, 4 fresh
    for s, measured in zip(sizes, curse["sizes"], strict=True):
        best = s.search.best
        assert measured["choosing"] == pytest.approx(test_cnll(s.jobs(best), 3), abs=1e-12)
        assert measured["fresh"] == pytest.approx(test_cnll(s.rest(best), 4), abs=1e-12)  # its first three
    assert curse["mean_gap"] == pytest.approx(sum(m["gap"] for m in curse["sizes"]) / len(sizes), abs=1e-12)


def test_a_flops_budget_run_names_it_in_the_command_it_renders(bench):
    saved = json.loads(SAVED.read_text())
    runs = [dict(run, flops_budget=30000) for run in saved["runs"]]
    assert "--flops-budget 30000" in bench.markdown(runs, saved["machine"]).splitlines()[2]
    assert "--flops-budget" not in bench.markdown(saved["runs"], saved["machine"])  # results from before it
