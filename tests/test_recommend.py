"""`ensplit recommend`: candidates against a brute-force loop, the shared grid of cheap runs, and a tiny run end
to end (JSON schema, report, resume, a second budget reusing the first's runs)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest
import torch

import ensplit.experiments.recommend as recommend_module
import ensplit.experiments.recommend_measured as recommend_measured
import ensplit.experiments.recommend_plan as plan_module
from ensplit.cli import main
from ensplit.data.spec import load_data
from ensplit.ensembles import method_param_count
from ensplit.experiments.recommend_plan import (
    RecommendConfig,
    candidates,
    grid_size,
    ladder_budgets,
    method_ladder_budgets,
    plan_ladder_jobs,
    plan_pool_jobs,
    pool_sizes,
)
from ensplit.models import count_params
from ensplit.recipe import Recipe
from ensplit.train.config import TrainConfig
from studies import cli_stdout

DATA = load_data(RecommendConfig().recipe.data)


def brute_force(budget: int, members_max: int, methods: tuple[str, ...], sharing: tuple[int, ...]) -> set:
    """Every candidate by scanning every width: the widest that fits, exact counts."""
    found = set()
    for n in range(1, members_max + 1):
        fitting = [w for w in range(1, 600) if n * count_params("mlp", w) <= budget]
        if fitting:
            w = max(fitting)
            found.add(("single" if n == 1 else "deep", n, w, n * count_params("mlp", w)))
    single = max(w for w in range(1, 600) if count_params("mlp", w) <= budget)
    for method in methods:
        for m in sharing:
            if method == "mixture":
                try:
                    params = method_param_count("mixture", "mlp", m, single, budget=budget)
                except Exception:  # noqa: BLE001 - too small a bank for this many members
                    continue
                found.add(("mixture", m, single, params))
                continue
            fitting = [w for w in range(1, 600) if method_param_count(method, "mlp", m, w) <= budget]
            if fitting:
                w = max(fitting)
                found.add((method, m, w, method_param_count(method, "mlp", m, w)))
    return found


@pytest.mark.parametrize("budget", [3000, 23_050, 80_000])
def test_candidates_match_a_brute_force_loop(budget):
    config = RecommendConfig(budget=budget, members_max=6, sharing_members=(2, 4))
    got = {(c.method, c.members, c.width, c.params) for c in candidates(config, DATA)}
    assert got == brute_force(budget, 6, config.methods, (2, 4))
    assert all(params <= budget for *_, params in got)


def test_cheap_runs_sit_on_one_grid_shared_by_every_budget():
    assert [grid_size(b) for b in (1024, 1500, 2048, 2896, 2897)] == [1024, 1448, 2048, 2048, 2896]
    small, large = RecommendConfig(budget=80_000), RecommendConfig(budget=160_000)
    assert ladder_budgets(small) == [2048, 4096, 8192, 16384]  # 2× apart, the top at or below P/4
    assert ladder_budgets(large) == [4096, 8192, 16384, 32768]
    assert pool_sizes(small) == [8192, 16384, 32768]  # 2× apart, from P/2 down to P/16 (or P/8/√2)
    sizes = pool_sizes(small)
    assert max(sizes) <= 40_000 and set(sizes) & set(pool_sizes(large))
    shared = {j.job_id for j in plan_pool_jobs(small, DATA)} & {j.job_id for j in plan_pool_jobs(large, DATA)}
    assert len(shared) >= 1  # the second budget reuses the first's deep pools (the top pools of 3 networks)
    ladders_small = {j.job_id for jobs in plan_ladder_jobs(small, DATA).values() for j in jobs}
    ladders_large = {j.job_id for jobs in plan_ladder_jobs(large, DATA).values() for j in jobs}
    assert len(ladders_small & ladders_large) == 3 * len(small.methods)  # three of four rungs, one job each


def test_the_folder_identity_ignores_the_budget():
    assert RecommendConfig(budget=3000).fingerprint() == RecommendConfig(budget=90_000, seeds=5).fingerprint()
    assert RecommendConfig().fingerprint() != RecommendConfig.from_mapping({"epochs": 3}).fingerprint()


TINY = ["--epochs", "2", "--train-subset", "300", "--test-subset", "200", "--members-max", "3", "--methods",
        "batchensemble,multihead", "--bootstrap", "20", "--cnll-splits", "2", "--quiet"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recommend") / "r"
    return folder, json.loads(cli_stdout(["recommend", "--budget", "6k", "--out", str(folder), *TINY, "--json"]))


def test_the_json_answers_the_question(tiny):
    folder, result = tiny
    assert result["budget"] == 6000 and result["recipe"]["train"]["epochs"] == 2
    keys = {"method", "members", "width", "params", "flops_per_example", "predicted_cnll", "interval"}
    assert keys <= set(result["recommendation"])
    ranked = result["candidates"]
    assert ranked[0]["name"] == result["recommendation"]["name"]
    assert [c["predicted_cnll"] for c in ranked] == sorted(c["predicted_cnll"] for c in ranked)
    for c in ranked:
        assert keys | {"measured_cnll", "seconds_per_epoch"} <= set(c)
        assert c["params"] <= 6000 and c["interval"][0] <= c["predicted_cnll"] <= c["interval"][1]
        assert c["flops_per_example"] > 0 and c["seconds_per_epoch"] > 0
    methods = {c["method"] for c in ranked}
    assert {"single", "deep"} <= methods
    verification = result["verification"]
    assert verification["measured_cnll"] is not None and verification["single_measured_cnll"] is not None
    assert verification["within_interval"] == (verification["interval"][0] <= verification["measured_cnll"]
                                               <= verification["interval"][1])
    page = (folder / "report.html").read_text()
    assert page.count("<img") >= 3 and "Recommended:" in page and "Black stars: measured at the budget" in page


def test_a_rerun_trains_nothing_and_a_second_budget_reuses_the_first(tiny, capsys):
    folder, first = tiny
    assert main(["recommend", "--budget", "6k", "--out", str(folder), *TINY, "--json", "--no-report"]) == 0
    again = json.loads(capsys.readouterr().out)
    stable = ("name", "params", "flops_per_example", "predicted_cnll", "interval", "measured_cnll")  # not timings
    assert again["trained_jobs"] == 0
    assert [{k: c[k] for k in stable} for c in again["candidates"]] == \
        [{k: c[k] for k in stable} for c in first["candidates"]]
    assert main(["recommend", "--budget", "12k", "--out", str(folder), *TINY, "--json", "--no-verify"]) == 0
    larger = json.loads(capsys.readouterr().out)
    assert "Black stars" not in (folder / "report.html").read_text()  # nothing was measured at the budget
    fresh = RecommendConfig(budget=12_000, members_max=3, methods=("batchensemble", "multihead"))
    fresh_jobs = len(plan_pool_jobs(fresh, DATA)) + sum(len(j) for j in plan_ladder_jobs(fresh, DATA).values())
    assert larger["verification"] is None and larger["trained_jobs"] < fresh_jobs  # some reused from 6k


def test_a_rerun_takes_the_costs_it_measured_and_measures_them_again_in_other_conditions(tiny, capsys,
                                                                                          monkeypatch):
    folder, first = tiny
    measured = []
    original = recommend_module.assess_costs

    def counting(candidate, config, data):  # noqa: ANN001, ANN202
        measured.append(candidate.name)
        return original(candidate, config, data)

    monkeypatch.setattr(recommend_module, "assess_costs", counting)
    timings = ("seconds_per_epoch", "inference_ms_per_example", "flops_per_example")
    assert main(["recommend", "--budget", "6k", "--out", str(folder), *TINY, "--json", "--no-report"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert measured == []  # every cost was stored by the first run
    assert [[c[k] for k in timings] for c in again["candidates"]] == \
        [[c[k] for k in timings] for c in first["candidates"]]
    default = torch.get_num_threads()
    threads = 2 if default == 1 else 1  # other conditions: measured anew
    try:
        assert main(["recommend", "--budget", "6k", "--out", str(folder), *TINY, "--threads", str(threads), "--json",
                     "--no-report", "--no-verify"]) == 0
    finally:
        torch.set_num_threads(default)  # --threads sets this process's threads
    capsys.readouterr()
    assert sorted(measured) == sorted(c["name"] for c in first["candidates"])
    stored = [json.loads(key) for key in recommend_measured.stored_costs(folder)]
    for name in (c["name"] for c in first["candidates"]):  # both conditions kept, each candidate in each
        params = next(c["params"] for c in first["candidates"] if c["name"] == name)
        assert {k["threads"] for k in stored if k["candidate"][3] == params} >= {default, threads}
    with sqlite3.connect(folder / "results.sqlite") as conn:  # an edited record is ignored, never trusted
        conn.execute("UPDATE meta SET value = '[1, 2' WHERE key = 'candidate_costs'")
    assert recommend_measured.stored_costs(folder) == {}


def test_a_flops_budget_narrows_the_costly_candidates(tiny, capsys):
    folder, first = tiny
    cheapest = min(c["flops_per_example"] for c in first["candidates"])
    limit = str(int(cheapest * 1.5))
    assert main(["recommend", "--budget", "6k", "--out", str(folder), *TINY, "--json", "--no-report",
                 "--flops-budget", limit]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dropped"] == []  # narrowed to fit, not dropped (tests/test_recommend_flops_budget.py)
    assert all(c["flops_per_example"] <= int(limit) for c in result["candidates"])
    narrowed = {c["name"].split(" w")[0] for c in first["candidates"] if c["flops_per_example"] > int(limit)}
    assert narrowed and narrowed <= {c["name"].split(" w")[0] for c in result["candidates"]}
    assert main(["recommend", "--budget", "6k", "--out", str(folder), *TINY, "--flops-budget", "1"]) == 2
    assert "every candidate needs more inference FLOPs" in capsys.readouterr().err


def test_a_method_too_large_for_the_small_rungs_climbs_its_ladder_up_to_half_the_budget():
    """Grouped members of width 1 hold 252 parameters: at P = 6,000 the P/32 rung (181) cannot hold them, so
    the ladder adds the next rung up (2,896 ≤ P/2) instead of leaving grouped(4) unpredicted."""
    config = RecommendConfig(recipe=Recipe(num_samples=300, train=TrainConfig(epochs=1), threads=1), budget=6000,
                             methods=("grouped", "multihead"))
    data = load_data(config.recipe.data)
    assert ladder_budgets(config) == [181, 362, 724, 1448]
    assert method_ladder_budgets(config, data, "multihead", 4) == [181, 362, 724, 1448]  # fits: unchanged
    assert method_ladder_budgets(config, data, "grouped", 4) == [362, 724, 1448, 2896]
    small = dataclasses.replace(config, budget=3000)
    assert method_ladder_budgets(small, data, "grouped", 4) == [362, 724, 1448]  # never above P/2
    rungs = {(m, b) for m, _, b in plan_ladder_jobs(config, data)}
    assert ("grouped", 2896) in rungs and ("grouped", 181) not in rungs and ("multihead", 2896) not in rungs


def coarse(budget_per_width_squared: int):
    """A stand-in for `sharing_candidate` of a coarse family (a ResNet's members at widths 1, 2, 3 …): the widest
    w with w² · `budget_per_width_squared` parameters within the budget; None below width 1."""
    def sized(recipe, data, method, members, budget):
        width = int((budget / budget_per_width_squared) ** 0.5)
        if width < 1:
            return None
        return plan_module.Candidate(method, members, width, width * width * budget_per_width_squared)
    return sized


def test_a_ladder_holds_distinct_networks_and_climbs_past_half_the_budget_for_a_third(monkeypatch):
    """CIFAR-10's grouped(4) at P = 70,000 (the case that left it unpredicted): widths 1, 1, 2 on the rungs up
    to P/2 are two networks, not three. The repeated width is trained once, and the ladder climbs the √2 grid
    past P/2 to width 3, still below the candidate's width 4 at P."""
    monkeypatch.setattr(plan_module, "sharing_candidate", coarse(4300))
    config = RecommendConfig(recipe=Recipe(threads=1), budget=70_000, methods=("grouped",))
    assert ladder_budgets(config) == [2048, 4096, 8192, 16384]
    assert method_ladder_budgets(config, DATA, "grouped", 4) == [8192, 32768, 46340]  # w1, w2, w3 (38,700)
    by_width = {plan_module.sharing_candidate(None, None, "grouped", 4, b).width
                for b in method_ladder_budgets(config, DATA, "grouped", 4)}
    assert by_width == {1, 2, 3}


def test_a_ladder_never_climbs_to_the_candidates_own_network(monkeypatch):
    """When the only network between P/2 and P is the candidate itself, the ladder stops short (two sizes: the
    method is then left out, with the note) rather than train the candidate and call it a cheap run."""
    monkeypatch.setattr(plan_module, "sharing_candidate", coarse(4300))
    config = RecommendConfig(recipe=Recipe(threads=1), budget=40_000, methods=("grouped",))  # w3 at P: 38,700
    budgets = method_ladder_budgets(config, DATA, "grouped", 4)
    widths = [plan_module.sharing_candidate(None, None, "grouped", 4, b).width for b in budgets]
    assert widths == [1, 2] and max(budgets) < 40_000
