"""Successive refinement (`recommend_refine`): what the FLOPs cap leaves after the ladders buys a rung at P/2 for
the best predicted sharing families, in order, never past the cap; and a run stays within it end to end."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from ensplit.data.spec import load_data
from ensplit.experiments.recommend import run_recommend
from ensplit.experiments.recommend_cost import brute_force_flops, job_training_flops
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig, candidates, ladder_job
from ensplit.experiments.recommend_refine import plan_refinement, refine_budget
from ensplit.recipe import Recipe
from ensplit.train.config import TrainConfig

CONFIG = RecommendConfig(recipe=Recipe(num_samples=300, train=TrainConfig(epochs=1), threads=1), budget=20_000,
                         methods=("batchensemble", "multihead", "mimo"), members_max=3)
DATA = load_data(CONFIG.recipe.data)
FAMILIES = {(m, 4): dataclasses.replace(CONFIG, methods=(m,)) for m in CONFIG.methods}


def _ranked(names: list[str]) -> list[SimpleNamespace]:
    found = {c.method: c for c in candidates(CONFIG, DATA)}
    return [SimpleNamespace(candidate=found[name]) for name in names]


def _cost(method: str) -> int:
    return sum(job_training_flops(j, DATA) for j in ladder_job(CONFIG, DATA, method, 4, refine_budget(CONFIG)))


def test_the_rung_is_the_grid_size_at_or_below_half_the_budget_unless_the_ladder_has_it():
    assert refine_budget(CONFIG) == 8192  # 20,000 / 2 = 10,000 -> 8,192 on the √2 grid
    assert refine_budget(dataclasses.replace(CONFIG, ladder_top=2)) is None  # the ladder's top is already there
    tuned = dataclasses.replace(CONFIG, tune=True)  # a local grid: the rung moves to P/√2 = 14,142 -> 11,585
    assert refine_budget(tuned) == 11585 and refine_budget(dataclasses.replace(tuned, budget=23_050)) == 11585


def test_a_rung_costing_a_fraction_more_than_its_jobs_is_charged_so():
    order = ["mimo"]
    brute = brute_force_flops([r.candidate for r in _ranked(order)], CONFIG, DATA)
    cost = _cost("mimo")
    for cells in (1, 3.5):  # e.g. three local cells and two replicates of a one-seed rung
        fits = int(cost * cells) + 1
        spent = int(CONFIG.cost_cap * brute) - fits
        assert list(plan_refinement(CONFIG, DATA, _ranked(order), spent, brute, FAMILIES, cells)) != []
        assert plan_refinement(CONFIG, DATA, _ranked(order), spent + 2, brute, FAMILIES, cells) == {}


def test_families_are_refined_best_first_while_the_cap_pays_and_never_beyond():
    order = ["mimo", "single", "batchensemble", "multihead"]
    brute = brute_force_flops([r.candidate for r in _ranked(order)], CONFIG, DATA)
    costs = {m: _cost(m) for m in CONFIG.methods}
    for spent in (0, int(0.3 * brute), int(0.45 * brute), int(0.6 * brute)):
        plan = plan_refinement(CONFIG, DATA, _ranked(order), spent, brute, FAMILIES)
        allowed, expected = int(CONFIG.cost_cap * brute) - spent, []
        for name in ("mimo", "batchensemble", "multihead"):  # the plain loop: best first, skip what does not fit
            if costs[name] <= allowed:
                expected.append(name)
                allowed -= costs[name]
        assert [m for m, _, _ in plan] == expected
        assert spent + sum(costs[m] for m, _, _ in plan) <= CONFIG.cost_cap * brute or not plan
        assert all(budget == 8192 for _, _, budget in plan)
    assert plan_refinement(dataclasses.replace(CONFIG, cost_cap=0.0), DATA, _ranked(order), 0, brute, FAMILIES) == {}


def test_a_family_whose_candidate_is_no_larger_than_the_rung_is_not_refined():
    """Under a flops_budget a candidate can be narrowed below P/2: a rung there would sit above it."""
    found = _ranked(["mimo"])[0].candidate
    rung = ladder_job(CONFIG, DATA, "mimo", 4, refine_budget(CONFIG))[0]
    narrowed = dataclasses.replace(found, width=rung.width, params=found.params // 4)
    assert narrowed.params < 8192
    assert plan_refinement(CONFIG, DATA, [SimpleNamespace(candidate=narrowed)], 0, 10**15, FAMILIES) == {}
    assert list(plan_refinement(CONFIG, DATA, [SimpleNamespace(candidate=found)], 0, 10**15, FAMILIES)) == [
        ("mimo", 4, 8192)]


def test_a_family_without_a_ladder_config_is_not_refined():
    single = Candidate("single", 1, 10, 1000)
    assert plan_refinement(CONFIG, DATA, [SimpleNamespace(candidate=single)], 0, 10**15, FAMILIES) == {}


@pytest.mark.slow
def test_a_run_spends_at_most_the_cap_once_refined(tmp_path):
    config = dataclasses.replace(CONFIG, verify=False, bootstrap=10, cnll_splits=2, budget=12_000, cost_cap=1.0)
    result = run_recommend(config, tmp_path / "r", progress=False)
    ladder_only = run_recommend(dataclasses.replace(config, cost_cap=0.0), tmp_path / "r", progress=False)
    assert ladder_only.trained_jobs == 0  # the ladders were stored by the first run
    assert result.cost.ratio <= max(config.cost_cap, ladder_only.cost.ratio) + 1e-9
    reach = {family: max(ladder) for family, ladder in result.evidence.ladders.items()}
    assert any(reach[f] > max(ladder) for f, ladder in ladder_only.evidence.ladders.items())  # refined: further


@pytest.mark.parametrize("args, needle", [
    (["--cost-cap", "-1"], "cost_cap = -1.0: must be >= 0.0"),
    (["--cost-cap", "inf"], "cost_cap = inf: input should be a finite number"),
    (["--ladder-top", "1"], "ladder_top = 1: must be >= 2"),
    (["--seeds", "0"], "seeds = 0: must be >= 1"),
    (["--rungs", "3", "--seeds", "1"], "rungs × seeds = 3 × 1: a ladder needs 4 runs at least"),
])
def test_bad_design_options_are_refused_in_one_line_before_any_work(args, needle, tmp_path, capsys):
    from ensplit.cli import main

    out = tmp_path / "r"
    assert main(["recommend", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and not out.exists()


def test_a_rung_the_ladder_already_holds_is_not_bought_again_and_tuning_pays_per_cell():
    order = ["mimo", "batchensemble", "multihead"]
    brute = brute_force_flops([r.candidate for r in _ranked(order)], CONFIG, DATA)
    plan = plan_refinement(CONFIG, DATA, _ranked(order), 0, 10 * brute, FAMILIES, planned={("mimo", 4, 8192)})
    assert [m for m, _, _ in plan] == ["batchensemble", "multihead"]
    allowed = int(CONFIG.cost_cap * brute)
    for cells in (1, 3, 12):  # --tune: a rung is tried in every cell of the grid
        plan = plan_refinement(CONFIG, DATA, _ranked(order), 0, brute, FAMILIES, cells)
        left, expected = allowed, []
        for name in order:
            if cells * _cost(name) <= left:
                expected.append(name)
                left -= cells * _cost(name)
        assert [m for m, _, _ in plan] == expected
