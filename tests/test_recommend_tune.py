"""`recommend --tune`: the grid-edge rule against a fake scorer, the families, the settings' validation, the
carry rule against a closed form, job ids without --tune, and a tiny search that never reads the test split."""

from __future__ import annotations

import json
import math

import pytest

from ensplit.cli import main
from ensplit.data.spec import load_data
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend import Assessed, run_recommend
from ensplit.experiments.recommend_evidence import gather
from ensplit.experiments.recommend_grid import Grid, open_edges, search_grid
from ensplit.experiments.recommend_plan import (
    Candidate,
    RecommendConfig,
    _job,
    candidates,
    plan_ladder_jobs,
    plan_pool_jobs,
    pool_networks,
    pool_sizes,
    pool_widths,
    sharing_candidate,
    verify_job,
)
from ensplit.experiments.recommend_tune import (
    LOCAL_LR_STEPS,
    TUNE_NETWORKS,
    TUNE_REPLICATES,
    TuneResult,
    carry,
    family_key,
    local_grid,
    pool_searches,
    refinement_cost,
    rung_searches,
    tune_cheap_runs,
    tuned_train,
)
from ensplit.jsonable import to_jsonable
from ensplit.recipe import Recipe
from ensplit.reports.recommend_report import tuning_section
from ensplit.runs.executors import make_executor
from ensplit.runs.folder import open_folder
from ensplit.runs.plan import network_seed
from ensplit.store import ResultStore
from ensplit.train.config import TrainConfig

START = Grid((0.05, 0.1, 0.2, 0.4), (0.0, 5e-4, 2e-3))


def bowl(lr_best: float, wd_best: float, calls: list[list]) -> callable:
    """A fake scorer: a quadratic bowl in log lr and log(wd + 1e-6), recording which cells it was asked for."""

    def score(cells: list) -> dict:
        calls.append(list(cells))
        return {(lr, wd): math.log(lr / lr_best) ** 2 + 0.1 * math.log((wd + 1e-6) / (wd_best + 1e-6)) ** 2
                for lr, wd in cells}

    return score


def test_an_interior_optimum_is_found_without_extending():
    calls = []
    search = search_grid(START, bowl(0.1, 5e-4, calls), extensions=2)
    assert search.best == (0.1, 5e-4) and search.edges == [] and search.extended == []
    assert calls == [START.cells()]


def test_a_best_lr_on_the_high_edge_grows_the_grid_until_it_is_interior():
    calls = []
    search = search_grid(START, bowl(1.6, 5e-4, calls), extensions=3)
    assert search.grid.lrs == (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
    assert search.best == (1.6, 5e-4) and search.edges == []
    assert search.extended == [["lr_high"]] * 3
    assert [len(c) for c in calls] == [12, 3, 3, 3]  # only the new cells are scored
    assert all(cell[0] > 0.4 for c in calls[1:] for cell in c)


def test_the_cap_leaves_the_optimum_on_the_edge_and_says_so():
    search = search_grid(START, bowl(1.6, 5e-4, []), extensions=1)
    assert search.grid.lrs[-1] == 0.8 and search.best[0] == 0.8
    assert search.edges == ["lr_high"] and search.extensions_left == 0


def test_low_lr_and_weight_decay_edges_step_down_and_weight_decay_zero_is_a_true_edge():
    search = search_grid(Grid((0.1, 0.2), (5e-4, 2e-3)), bowl(0.03, 1e-5, []), extensions=1)
    assert search.extended == [["lr_low", "wd_low"]]
    assert search.grid.lrs == (0.05, 0.1, 0.2) and search.grid.weight_decays == (1.25e-4, 5e-4, 2e-3)
    assert open_edges(START, (0.1, 0.0)) == []  # best at weight decay 0: nothing below to try
    assert open_edges(START, (0.1, 2e-3)) == ["wd_high"]
    assert search_grid(START, bowl(0.1, 0.1, []), 1).grid.weight_decays == (0.0, 5e-4, 2e-3, 8e-3)


def test_an_axis_of_one_value_is_fixed():
    search = search_grid(Grid((0.1,), (0.0, 1e-3)), bowl(5.0, 1e-3, []), extensions=3)
    assert search.grid.lrs == (0.1,) and search.grid.weight_decays == (0.0, 1e-3, 4e-3)
    assert search.best == (0.1, 1e-3) and search.edges == []


def test_family_keys():
    assert family_key(Candidate("single", 1, 128, 23050)) == "single"
    assert family_key(Candidate("deep", 4, 54, 22936)) == "deep"
    assert family_key(Candidate("batchensemble", 4, 118, 22896)) == "batchensemble×4"
    assert family_key(Candidate("mimo", 2, 90, 22000)) == "mimo×2"


@pytest.mark.parametrize("values, field", [
    ({"tune_lrs": "0"}, "tune_lrs"), ({"tune_lrs": "-1"}, "tune_lrs"), ({"tune_lrs": ""}, "tune_lrs"),
    ({"tune_lrs": "0.1,0.1"}, "tune_lrs"), ({"tune_weight_decays": "-1e-4"}, "tune_weight_decays"),
    ({"tune_weight_decays": "0,0"}, "tune_weight_decays"), ({"tune_extensions": "-1"}, "tune_extensions"),
    ({"tune_extensions": "11"}, "tune_extensions")])
def test_bad_tuning_values_are_refused_in_one_line(values, field):
    with pytest.raises(EnsplitError) as error:
        RecommendConfig.from_mapping(values)
    assert field in str(error.value) and "\n" not in str(error.value)


def test_bad_tuning_values_exit_2_from_the_cli_before_any_work(tmp_path, capsys):
    assert main(["recommend", "--tune", "--tune-lrs", "0", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "tune_lrs" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_tuning_forces_a_validation_split_and_leaves_the_untuned_identity_alone():
    assert RecommendConfig(tune=True).recipe.validation_fraction == 0.1
    assert RecommendConfig(tune=True, recipe=Recipe(validation_fraction=0.3)).recipe.validation_fraction == 0.3
    assert RecommendConfig().recipe.validation_fraction == 0.0
    old = RecommendConfig(recipe=Recipe(train=TrainConfig(lr=0.05)))  # the recipe before lr 0.1 became default
    assert old.fingerprint() == "3a0055fee38b50f5"  # computed before --tune existed


TINY = dict(recipe=Recipe(num_samples=300, train=TrainConfig(epochs=1, lr=0.05), threads=1), budget=3000,
            methods=("batchensemble",), members_max=3, seeds=3, rungs=3, pool=4)


def test_job_ids_without_tune_are_unchanged():
    """The same job has the same id as before --tune and the cheaper plan existed: an old folder's runs are found
    again whenever a plan asks for them (ids computed at commit 3749347)."""
    config = RecommendConfig(**TINY)
    data = load_data(config.recipe.data)
    pool = _job(config, "pool", 3, tuple(network_seed(0, "pool", 3, i) for i in range(4)), 0)
    assert pool.job_id == "6ecf9aeb056fcf2790b5"
    rung = sharing_candidate(config.recipe, data, "batchensemble", 4, 512)
    ladder = _job(config, "ladder", rung.width, (network_seed(0, "ladder batchensemble×4", 512, 0),), 0,
                  "batchensemble", 4, rung.options)
    assert ladder.job_id == "6254e6471394cdbe0b19"
    assert config.fingerprint() == "07690e7e88a614cc"
    assert plan_pool_jobs(config, data)[0].job_id == "85c2076a598835f9ee83"  # the redesigned plan's, pinned
    assert next(iter(plan_ladder_jobs(config, data).values()))[0].job_id == "1b81c78b8e24fc545b26"


def test_tuned_pools_hold_pool_networks_at_every_size_and_untuned_ones_three_above_an_eighth():
    """Without --tune the pools above P/8 keep three networks (the plan and its cost are today's); with it every
    size holds `pool`, so the P/2 and P/4 pools are not read from the three networks that chose their cell alone."""
    plain, tuned = RecommendConfig(**{**TINY, "pool": 5}), RecommendConfig(**{**TINY, "pool": 5, "tune": True})
    sizes = pool_sizes(plain)
    assert any(size > plain.budget / 8 for size in sizes) and any(size <= plain.budget / 8 for size in sizes)
    for size in sizes:
        assert pool_networks(plain, size) == (5 if size <= plain.budget / 8 else 3)
        assert pool_networks(tuned, size) == 5
    data = load_data(plain.recipe.data)
    by_width = {job.width: len(job.seeds) for job in plan_pool_jobs(plain, data)}
    assert by_width == {w: pool_networks(plain, size) for size, w in pool_widths(plain, data).items()}


def test_the_carry_rule_gives_each_family_its_settings_at_the_budget():
    config = RecommendConfig(**TINY)
    data = load_data(config.recipe.data)
    settings = {"single": {"lr": 0.4, "weight_decay": 2e-3}, "deep": {"lr": 0.4, "weight_decay": 0.0},
                "batchensemble×4": {"lr": 0.2, "weight_decay": 2e-3}}
    for candidate in candidates(config, data):
        train = tuned_train(config.recipe.train, settings, candidate)
        assert {"lr": train.lr, "weight_decay": train.weight_decay} == settings[family_key(candidate)]
        assert train.epochs == config.recipe.train.epochs  # nothing else changes
        tuned = RecommendConfig(**{**TINY, "recipe": Recipe(**{**TINY["recipe"].__dict__, "train": train})})
        job = verify_job(tuned, candidate)
        assert (job.train_dict["lr"], job.train_dict["weight_decay"]) == (train.lr, train.weight_decay)
    other = Candidate("mimo", 4, 10, 2000)
    assert tuned_train(config.recipe.train, settings, other) == config.recipe.train  # untuned: the recipe's


def test_the_lr_carried_to_the_budget_follows_a_power_of_size():
    # lr doubling for every 4× in size: lr = 0.05 · (s / 1000)^0.5 exactly, read at P = 256,000
    points = [(1000, 0.05, 0.0), (4000, 0.1, 5e-4), (16000, 0.2, 2e-3)]
    lr, wd, gamma = carry(points, 256_000)
    assert gamma == pytest.approx(0.5) and lr == pytest.approx(0.05 * 256 ** 0.5) and wd == 2e-3
    # a least-squares line through noisy choices, checked against the normal equations
    noisy = [(500, 0.1, 0.0), (1000, 0.05, 0.0), (2000, 0.2, 0.0), (4000, 0.2, 5e-4)]
    x, y = [math.log2(p[0]) for p in noisy], [math.log2(p[1]) for p in noisy]
    mx, my = sum(x) / 4, sum(y) / 4
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)
    lr, wd, gamma = carry(noisy, 8000)
    assert gamma == pytest.approx(slope) and lr == pytest.approx(2 ** (my + slope * (math.log2(8000) - mx)), rel=1e-3)
    assert carry([(1000, 0.4, 0.0), (4000, 0.1, 0.0)], 8000)[2] == 0.0  # a falling lr is clipped to γ = 0
    assert carry([(1000, 0.4, 0.0), (4000, 0.1, 0.0)], 8000)[0] == pytest.approx(0.2)  # the geometric mean
    assert carry([(1000, 0.1, 0.0), (2000, 0.8, 0.0)], 8000)[2] == 1.0  # and a steep one to γ = 1
    assert carry([(1000, 0.1, 5e-4)], 8000) == (0.1, 5e-4, 0.0)  # one size: its cell


def test_every_cheap_size_is_tuned_on_paired_seeds():
    config = RecommendConfig(**TINY, tune=True)
    data = load_data(config.recipe.data)
    pools = pool_searches(config, data)
    deep = [s for s in pools if s.family == "deep"]
    single = [s for s in pools if s.family == "single"]
    assert deep and len(single) == len(deep) == len(pools) // 2
    for s in deep:  # the first networks score a cell as one ensemble; the rest trains in the chosen cell only
        first, rest = s.jobs((0.1, 0.0)), s.rest((0.1, 0.0))
        assert len(first[0].seeds) == TUNE_NETWORKS and first[0].first_index == 0 and s.as_ensemble
        assert all(j.first_index == TUNE_NETWORKS for j in rest) and all(j.kind == "pool" for j in first + rest)
        # every size, P/2 included, holds `pool` networks: the choosing three and fresh ones in the chosen cell
        assert sum(len(j.seeds) for j in rest) == config.pool - TUNE_NETWORKS
    for d, s in zip(deep, single, strict=True):  # the single network's search: the same runs, each alone
        assert [j.job_id for j in s.jobs((0.1, 0.0))] == [j.job_id for j in d.jobs((0.1, 0.0))]
        assert s.rest((0.1, 0.0)) == [] and not s.as_ensemble and s.params == d.params
    rungs = rung_searches(config, data, list(plan_ladder_jobs(config, data)))
    assert {s.family for s in rungs} == {"batchensemble×4"} and len(rungs) == len(plan_ladder_jobs(config, data))
    for s in rungs:  # the replicates: fresh seeds after the rung's own, in the chosen cell only, never scored
        method, members, budget = s.rung
        kind = f"ladder {method}×{members}"
        (own,), (fresh,) = s.jobs((0.1, 0.0)), s.rest((0.1, 0.0))
        assert fresh.seeds == tuple(network_seed(config.recipe.seed, kind, budget, i)
                                    for i in range(config.seeds, config.seeds + TUNE_REPLICATES))
        assert fresh.first_index == config.seeds and set(fresh.seeds).isdisjoint(own.seeds)
        assert (fresh.train_dict["lr"], fresh.train_dict["weight_decay"]) == (0.1, 0.0)
    for s in pools + rungs:
        a, b = s.jobs((0.1, 0.0)), s.jobs((0.2, 0.0))
        assert [j.seeds for j in a] == [j.seeds for j in b] and {j.job_id for j in a}.isdisjoint(j.job_id for j in b)
        assert all((j.train_dict["lr"], j.train_dict["weight_decay"]) == (0.2, 0.0) for j in b)


def test_the_refinement_rung_searches_three_lrs_around_its_familys_top_cell():
    config = RecommendConfig(**TINY, tune=True)
    data = load_data(config.recipe.data)
    searches = rung_searches(config, data, list(plan_ladder_jobs(config, data)))
    for i, s in enumerate(searches):  # the top size chose (0.2, 2e-3); the smaller ones something else
        s.search.scores = {cell: 1.0 for cell in s.search.grid.cells()}
        s.search.scores[(0.2, 2e-3) if i == len(searches) - 1 else (0.05, 0.0)] = 0.5
    result = TuneResult()
    result.add(searches, config.budget)
    grid = local_grid(result.families["batchensemble×4"])
    assert grid == Grid(tuple(0.2 * step for step in LOCAL_LR_STEPS), (2e-3,)) and grid.lrs == (0.1, 0.2, 0.4)
    rung = ("batchensemble", 4, 11585)
    (search,) = rung_searches(config, data, [rung], {"batchensemble×4": grid})
    assert search.search.grid == grid and search.rung == rung
    assert {(j.train_dict["lr"], j.train_dict["weight_decay"]) for c in grid.cells() for j in search.jobs(c)} == \
        set(grid.cells())
    assert open_edges(grid, (0.4, 2e-3)) == ["lr_high"]  # the edge rule still grows the lr axis
    # the rung's cost in jobs of it: three cells of `seeds` runs each, and the two replicates
    assert refinement_cost(config) == pytest.approx(3 + TUNE_REPLICATES / config.seeds)
    assert refinement_cost(RecommendConfig(**TINY)) == 1.0


class SplitSpy(ResultStore):
    """A store that records which split every prediction and label read was of."""

    reads: list[str] = []

    def labels(self, split: str = "test"):
        SplitSpy.reads.append(split)
        return super().labels(split)

    def log_probs(self, rows, split: str = "test"):
        SplitSpy.reads.append(split)
        return super().log_probs(rows, split)


def test_a_tiny_search_reads_only_the_validation_split_and_resumes(tmp_path):
    config = RecommendConfig(**TINY, tune=True, tune_lrs=(0.05, 0.1), tune_weight_decays=(0.0,),
                             tune_extensions=1)
    data = load_data(config.recipe.data)
    run = open_folder(config, tmp_path / "r", "recommend")
    run.store.__class__ = SplitSpy
    SplitSpy.reads = []
    executor = make_executor("local", "cpu", 1, None, False, 0.25)
    rungs = plan_ladder_jobs(config, data)
    pool_jobs, ladders, result = tune_cheap_runs(config, data, run, executor, rungs, progress=False)
    assert SplitSpy.reads and set(SplitSpy.reads) == {"val"}
    assert set(result.settings) == {"single", "deep", "batchensemble×4"} and set(ladders) == set(rungs)
    for key, family in result.families.items():
        ordered = sorted(family.sizes, key=lambda s: s.params)
        for s in ordered:
            assert set(s.search.scores) == set(s.search.grid.cells())
            if key == "deep" and s is ordered[-1]:  # the top pool: three lrs around its neighbour's
                lr, wd = ordered[-2].search.best
                assert s.search.grid.weight_decays == (wd,) and {lr / 2, lr, lr * 2} <= set(s.search.grid.lrs)
                assert len(s.search.grid.lrs) in (3, 4)  # one extension
            elif key == "single" and s is ordered[-1]:  # its neighbour's lr, every weight decay
                lr, _ = ordered[-2].search.best
                assert s.search.grid.lrs[:1] == (lr,) and len(s.search.grid.lrs) in (1, 2)
                assert set(config.tune_weight_decays) <= set(s.search.grid.weight_decays)
            else:
                assert s.search.best[0] in s.search.grid.lrs and len(s.search.grid.lrs) in (2, 3)  # one extension
    for key, jobs in ladders.items():  # each rung's runs: its chosen cell's, then the fresh replicates there
        s = next(s for s in result.families["batchensemble×4"].sizes if s.rung == key)
        best = s.search.best
        assert [j.job_id for j in jobs] == [j.job_id for j in s.jobs(best) + s.rest(best)]
    run.store.save_labels("test", data.y_test.cpu().numpy())  # as run_recommend does (the spy saw only val)
    evidence = gather(run.store, config, pool_widths(config, data), ladders, pool_jobs)
    assert evidence.ladders and all(len(values) == config.seeds + TUNE_REPLICATES
                                    for ladder in evidence.ladders.values() for values in ladder.values())
    stored = {r["job_id"] for r in run.store.networks("pool")}
    assert {j.job_id for j in pool_jobs} <= stored
    again = tune_cheap_runs(config, data, run, executor, rungs, progress=False)[2]
    assert again.trained_jobs == 0 and again.settings == result.settings
    text = json.dumps(to_jsonable(result))
    assert '"interior"' in text and '"validation_cnll"' in text and '"lr_exponent"' in text
    rows = tuning_section(result).table
    assert {r["family"] for r in rows} == {"single", "deep", "batchensemble×4"}
    assert sum(r["params"] == "at P (carried)" for r in rows) == 3
    assessed = Assessed(candidates(config, data)[0], 1, 0.1, 0.1, settings=result.settings["deep"])
    assert assessed.to_json()["settings"] == result.settings["deep"]


def test_tuning_needs_a_validation_split(tmp_path):
    config = RecommendConfig(**TINY)
    data = load_data(config.recipe.data)
    run = open_folder(config, tmp_path / "r", "recommend")
    with pytest.raises(EnsplitError, match="validation_fraction"):
        tune_cheap_runs(config, data, run, make_executor("local", "cpu", 1, None, False, 0.25), {}, progress=False)


def test_the_front_door_takes_tune_and_a_flops_budget_together(tmp_path):
    import ensplit

    result = ensplit.recommend(out=tmp_path / "r", progress=False, report=False, budget=6000, flops_budget=9000,
                               tune=True, tune_lrs="0.05,0.1", tune_weight_decays="0", tune_extensions=0,
                               verify=False, methods="batchensemble", members_max=3, num_samples=300,
                               epochs=1, bootstrap=10, cnll_splits=2, threads=1)
    data = result.to_json()
    assert data["tuning"]["settings"].keys() == {"single", "deep", "batchensemble×4"}
    assert all(c["flops_per_example"] <= 9000 for c in data["candidates"])
    assert all(c["settings"] == data["tuning"]["settings"][(c["method"] if c["method"] in ("single", "deep")
                                                            else "batchensemble×4")] for c in data["candidates"])
    assert data["cost"]["training_flops"] > 0 and data["recipe"]["validation_fraction"] == 0.1
    assert data["cost"]["brute_force_cells"] == 2  # the brute force tunes on the same two cells
    # what to train the answer with, in every place a user reads it
    from ensplit.commands.recommend import render
    from ensplit.reports.recommend_report import write_recommend_report

    chosen = data["candidates"][0]["settings"]
    assert data["recommendation"]["settings"] == chosen
    at = f"at lr {chosen['lr']:g}, weight decay {chosen['weight_decay']:g}"
    text = render(data)
    assert text.splitlines()[0].startswith(f"Recommendation at 6,000 parameters and 9,000 FLOPs per example: "
                                           f"{data['recommendation']['name']} {at}")
    assert "carried to its largest candidate within the FLOPs" in text
    assert all(f"{family} at lr {s['lr']:g}, weight decay {s['weight_decay']:g}" in text
               for family, s in data["tuning"]["settings"].items())
    page = write_recommend_report(tmp_path / "report.html", result).read_text()
    assert f"trained at lr {chosen['lr']:g} and weight decay {chosen['weight_decay']:g}" in page
    assert "lr and weight decay tuned per family (--tune)" in page


def test_pools_are_tuned_as_ensembles_for_the_splits_and_alone_for_the_single_network(tmp_path):
    """Each pool size's two searches score the same runs: "deep" as one ensemble, "single" each network alone
    (checked against cnll_ttcv computed here); the single network's ladder reads its own search's cell, the
    (n, s) plane the deep search's."""
    import torch

    from ensplit.experiments.recommend_evidence import network_cnll
    from ensplit.experiments.recommend_tune import validation_score
    from ensplit.metrics import cnll_ttcv

    config = RecommendConfig(**{**TINY, "methods": ()}, tune=True, tune_lrs=(0.05, 0.1), tune_weight_decays=(0.0,),
                             tune_extensions=0)
    data = load_data(config.recipe.data)
    run = open_folder(config, tmp_path / "r", "recommend")
    executor = make_executor("local", "cpu", 1, None, False, 0.25)
    pool_jobs, _, result = tune_cheap_runs(config, data, run, executor, {}, progress=False)
    # the two searches share their runs: each trained (and counted in the cost) once
    assert result.trained_jobs == len(result.tried) == len({j.job_id for j in result.tried})
    labels = torch.as_tensor(run.store.labels("val")).long()

    def val_log_probs(job):
        rows = sorted((r for r in run.store.networks("pool") if r["job_id"] == job.job_id), key=lambda r: r["member"])
        return torch.as_tensor(run.store.log_probs(rows, "val")).double()

    deep, single = result.families["deep"].sizes, result.families["single"].sizes
    for d, s in zip(deep, single, strict=True):
        assert d.params == s.params  # the top size's two grids differ (`top_pool_grids`); the others are one grid
        for search in (d, s):
            for cell in search.search.grid.cells():
                (job,) = search.jobs(cell)
                lp = val_log_probs(job)
                whole = float(cnll_ttcv(lp, labels, splits=config.cnll_splits))
                alone = sum(float(cnll_ttcv(lp[i:i + 1], labels, splits=config.cnll_splits))
                            for i in range(lp.shape[0])) / lp.shape[0]
                assert search.search.scores[cell] == pytest.approx(whole if search is d else alone, abs=1e-12)
                assert validation_score(run.store, [job], labels, config.cnll_splits, as_ensemble=True) == \
                    pytest.approx(whole, abs=1e-12)
    # make each single-network search prefer a cell the deep one did not choose, and read the evidence
    for s, d in zip(single, deep, strict=True):
        other = next(c for c in s.search.grid.cells() if c != d.search.best)
        s.search.scores = {c: (0.0 if c == other else 1.0) for c in s.search.grid.cells()}
    run.store.save_labels("test", data.y_test.cpu().numpy())
    test_labels = torch.as_tensor(run.store.labels()).long()
    evidence = gather(run.store, config, pool_widths(config, data), {}, pool_jobs, single_jobs=result.single_jobs)
    for s, d in zip(single, deep, strict=True):
        (job,) = s.jobs(s.search.best)
        rows = [r for r in run.store.networks("pool") if r["job_id"] == job.job_id]
        lp = torch.as_tensor(run.store.log_probs(rows)).double()
        assert evidence.singles[s.params] == pytest.approx(network_cnll(lp, test_labels, config.cnll_splits))
        assert {j.job_id for j in d.chosen} <= {j.job_id for j in pool_jobs}  # the plane: the deep cell
        assert job.job_id not in {j.job_id for j in d.chosen}
    assert result.settings["single"] != result.settings["deep"]


def test_the_report_explains_the_small_pools_rule_only_when_a_pool_used_it():
    """Untuned, the pools above P/8 hold 3 networks and their laws take a subset variance (`fit_variance`); with
    --tune every pool holds `pool` networks, and the page must not describe a rule no pool used."""
    from types import SimpleNamespace

    from ensplit.reports.recommend_report import _plane_text

    def evidence(*laws):
        return SimpleNamespace(plane_noise=(0.02, 9), laws=[SimpleNamespace(networks=n, fit_variance=v)
                                                               for n, v in laws])

    untuned = _plane_text(evidence((6, ()), (3, (1e-4, 2e-4))))
    assert "σ = 0.0200" in untuned and "a pool of 3 networks, which a bootstrap cannot resample" in untuned
    tuned = _plane_text(evidence((6, ()), (6, ())))
    assert "cannot resample" not in tuned and tuned.endswith("pooled over the pools, 9 degrees of freedom).")


def test_under_a_flops_budget_the_settings_are_carried_to_each_familys_largest_candidate(tmp_path):
    """A flops_budget narrows the candidates below P; each family's settings are carried to its own largest
    candidate, not to P (checked with `carry` called here)."""
    result = run_recommend(RecommendConfig.from_mapping({
        "budget": 6000, "flops_budget": 4000, "tune": True, "tune_lrs": (0.05, 0.1), "tune_weight_decays": (0.0,),
        "tune_extensions": 0, "verify": False, "methods": ("multihead",), "members_max": 3, "num_samples": 300,
        "epochs": 1, "bootstrap": 10, "cnll_splits": 2, "threads": 1}), tmp_path / "r", progress=False)
    largest = {}
    for a in result.ranked:
        key = family_key(a.candidate)
        largest[key] = max(largest.get(key, 0), a.candidate.params)
    assert set(largest) == set(result.tuning.families) and max(largest.values()) < 6000
    for key, family in result.tuning.families.items():
        points = [(s.params, *s.search.best) for s in family.sizes]
        assert family.budget == largest[key]
        assert family.settings["lr"] == carry(points, largest[key])[0]
