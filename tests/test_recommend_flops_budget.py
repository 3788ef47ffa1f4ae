"""`recommend --flops-budget`: every candidate the widest that fits both budgets (against a brute-force check on
CPU models; the mixture the largest of its own sizing, as its ladder trains it), the ones that fit at no size
dropped, bad values refused, and the params × FLOPs Pareto front."""

from __future__ import annotations

import random
import sqlite3

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ensplit import reports
from ensplit.analysis.pareto import pareto_front
from ensplit.cli import main
from ensplit.data.spec import load_data
from ensplit.ensembles import build_method, method_param_count
from ensplit.ensembles.cost import forward_flops
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend import run_recommend
from ensplit.experiments.recommend_plan import (
    Candidate,
    RecommendConfig,
    candidates,
    flops_sizing,
    plan_ladder_jobs,
    plan_pool_jobs,
    pool_planning_config,
    sharing_candidate,
)
from ensplit.experiments.recommend_sizing import at_width, inference_flops
from ensplit.models import count_params
from ensplit.recipe import Recipe
from ensplit.reports.recommend_pareto import front_flags

torch.set_num_threads(1)
RECIPE = Recipe.from_mapping({"num_samples": 300, "epochs": 1})
DATA = load_data(RECIPE.data)
METHODS = ("batchensemble", "mimo", "mixture", "grouped", "multihead")


def cpu_flops(c: Candidate) -> int:
    """Independently of the sizing's cache and meta device: the real model on the CPU, 64 test inputs."""
    model = build_method(c.method, "mlp", c.members, c.width, None, (40,), 10, 0, {}, **dict(c.options))
    return forward_flops(model, DATA.prepare(DATA.x_test[:64]).float())


def cpu_params(c: Candidate) -> int:
    if c.method in ("single", "deep"):
        return c.members * count_params("mlp", c.width)
    return method_param_count(c.method, "mlp", c.members, c.width, **dict(c.options))


def fits(c: Candidate, budget: int, flops_budget: int) -> bool:
    try:
        return cpu_params(c) <= budget and cpu_flops(c) <= flops_budget
    except EnsplitError:  # a width the method cannot build
        return False


def config(budget: int, flops_budget: int | None) -> RecommendConfig:
    return RecommendConfig(recipe=RECIPE, budget=budget, members_max=3, flops_budget=flops_budget)


@pytest.mark.parametrize(("budget", "flops_budget"), [(2000, 900), (2000, 2500), (6000, 1000), (6000, 6000),
                                                     (6000, 300)])
def test_every_candidate_is_the_widest_that_fits_both_budgets(budget, flops_budget):
    by_params = candidates(config(budget, None), DATA)
    sizing = flops_sizing(config(budget, flops_budget), DATA)
    assert len(sizing.kept) + len(sizing.dropped) == len(by_params)
    for c in sizing.kept:
        assert fits(c, budget, flops_budget), c.name
        assert c.params == cpu_params(c) and inference_flops(c, RECIPE, DATA) == cpu_flops(c)
        if c.method == "mixture":  # the largest of its own sizing: the network its ladder trains at that budget
            knob = dict(c.options)["budget"]
            assert c == sharing_candidate(RECIPE, DATA, "mixture", c.members, knob)
            larger = sharing_candidate(RECIPE, DATA, "mixture", c.members, knob + 1)
            assert knob == budget or not fits(larger, budget, flops_budget)
        else:
            wider = Candidate(c.method, c.members, c.width + 1, 0, c.options)
            assert not fits(wider, budget, flops_budget), c.name  # one width more breaks a budget
    for c in sizing.dropped:
        assert c.width == 1 and cpu_flops(c) > flops_budget


def test_the_mixture_narrowed_by_flops_is_a_network_its_ladder_trains():
    """Its backbone narrowed with the bank kept at P was a network no ladder rung measures, predicted as the
    mixture at P (0.693 against a measured 0.863 at 23,050 and 30,000 FLOPs): now it is the ladder's own."""
    sized = {c.method: c for c in candidates(config(6000, 1000), DATA)}["mixture"]
    budget = dict(sized.options)["budget"]
    assert sized.params <= budget < 6000
    assert sized.width == sharing_candidate(RECIPE, DATA, "mixture", 4, budget).width  # the single width at it


def test_a_candidate_that_fits_at_no_size_is_dropped():
    sizing = flops_sizing(config(6000, 300), DATA)
    assert [c.name for c in sizing.dropped] == ["deep 3×w1", "batchensemble(4) w1", "mimo(4) w1", "mixture(4) w1",
                                                "grouped(4) w1"]
    assert dict(sizing.dropped[3].options)["budget"] == sizing.dropped[3].params  # its smallest buildable budget
    assert [(c.method, c.members) for c in sizing.kept] == [("single", 1), ("deep", 2), ("multihead", 4)]
    assert "mixture" not in {c.method for c in candidates(config(6000, 300), DATA)}


def test_a_generous_flops_budget_changes_nothing():
    assert candidates(config(6000, 10**9), DATA) == candidates(config(6000, None), DATA)


@pytest.mark.parametrize("method", ["single", "deep", *METHODS])
def test_flops_grow_with_width(method):
    """What makes the bisection return the widest fitting width (see recommend_sizing)."""
    members = 1 if method == "single" else 4
    options = (("budget", 6000),) if method == "mixture" else ()
    counts = [inference_flops(at_width(Candidate(method, members, w, 0, options), w, RECIPE, DATA), RECIPE, DATA)
              for w in range(1, 41)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_the_mixture_flops_grow_with_its_budget():
    """What makes the bisection down the mixture's own sizing return the largest fitting budget."""
    sized = [sharing_candidate(RECIPE, DATA, "mixture", 4, b) for b in range(97, 3000, 37)]
    counts = [inference_flops(c, RECIPE, DATA) for c in sized if c is not None]
    assert len(counts) > 50 and counts == sorted(counts)


def test_the_meta_device_counts_what_the_cpu_counts():
    for method in ("single", "deep", *METHODS):
        c = at_width(Candidate(method, 1 if method == "single" else 3, 9, 0,
                               (("budget", 3000),) if method == "mixture" else ()), 9, RECIPE, DATA)
        assert inference_flops(c, RECIPE, DATA) == cpu_flops(c), method


TINY = ["--budget", "2k", "--num-samples", "300", "--epochs", "1", "--members-max", "2", "--quiet", "--threads", "1"]


@pytest.mark.parametrize(("value", "says"), [("0", "flops_budget = '0'"), ("-5", "flops_budget = '-5'"),
                                             ("abc", "flops_budget = 'abc'"),
                                             ("10", "every candidate needs more inference FLOPs per example")])
def test_bad_flops_budgets_are_refused_before_any_work(value, says, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["recommend", *TINY, "--out", str(out), f"--flops-budget={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and not out.exists()


def brute_force_front(points: list[tuple[int, ...]]) -> list[bool]:
    return [not any(all(q[k] <= p[k] for k in range(len(p))) and q != p for q in points) for p in points]


def test_the_front_against_every_pair():
    rng = random.Random(0)
    for _ in range(200):
        points = [tuple(rng.randint(0, 4) for _ in range(3)) for _ in range(rng.randint(0, 12))]
        assert pareto_front(points) == brute_force_front(points)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.floats(0, 3, allow_nan=False)), max_size=15))
def test_the_front_property(points):
    assert pareto_front(points) == brute_force_front(points)


def test_a_tiny_run_sizes_plans_the_pools_below_p_draws_the_front_and_states_its_cost(tmp_path):
    values = {"budget": 6000, "flops_budget": 1000, "epochs": 1, "num_samples": 300, "members_max": 3,
              "methods": ("multihead", "mixture"), "rungs": 4, "pool": 4, "bootstrap": 10, "cnll_splits": 2,
              "threads": 1, "verify": False}
    config = RecommendConfig.from_mapping(values)
    result = run_recommend(config, tmp_path / "r", progress=False)
    answer = result.to_json()
    assert answer["flops_budget"] == 1000 and answer["budget"] == 6000
    assert all(c["flops_per_example"] <= 1000 and c["params"] <= 6000 for c in answer["candidates"])
    memory = max(c["params"] for c in answer["candidates"] if c["method"] in ("single", "deep"))
    pools = pool_planning_config(config, [a.candidate for a in result.ranked])
    assert pools.budget == 2 * memory < 6000 and pools.flops_budget == 1000
    stored = stored_job_ids(tmp_path / "r")
    assert {job.job_id for job in plan_pool_jobs(pools, DATA)} <= stored  # the pools reach the narrowed members
    assert not {job.job_id for job in plan_pool_jobs(config, DATA)} <= stored  # P's top pool is not trained
    ladders = {job.job_id for rung in plan_ladder_jobs(config, DATA).values() for job in rung}
    assert ladders <= stored  # the ladders stay planned at P
    points = [(a.candidate.params, a.flops, a.prediction.value) for a in result.ranked]
    assert front_flags(result.ranked) == brute_force_front(points)
    assert result.report is None  # the experiment writes no page; its caller does
    assert reports.write(result, tmp_path / "r") == result.report == tmp_path / "r" / "report.html"


def stored_job_ids(folder) -> set[str]:
    with sqlite3.connect(folder / "results.sqlite") as conn:
        return {row[0] for row in conn.execute("SELECT job_id FROM jobs")}


def test_without_a_flops_budget_the_pools_are_planned_at_p():
    plain = config(6000, None)
    assert pool_planning_config(plain, candidates(plain, DATA)) is plain


def test_a_flops_budget_too_tight_for_the_pools_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["recommend", *TINY, "--budget", "6000", "--out", str(out), "--flops-budget", "300"]) == 2
    err = capsys.readouterr().err.strip()
    assert "flops_budget = 300" in err and "raise --flops-budget" in err and len(err.splitlines()) == 1
    assert not out.exists()
