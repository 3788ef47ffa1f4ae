"""Training FLOPs counted from the models against closed forms, and `recommend`'s cost against a naive sum."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import statistics

import pytest
import torch

from ensplit.commands.recommend import render
from ensplit.data.spec import load_data
from ensplit.ensembles import build_method, deep_ensemble
from ensplit.ensembles.cost import forward_flops, training_flops_per_example
from ensplit.experiments import recommend_cost
from ensplit.experiments.recommend import run_recommend
from ensplit.experiments.recommend_cost import (
    Cost,
    brute_force_flops,
    cost_of,
    job_training_flops,
    per_example_training_flops,
)
from ensplit.experiments.recommend_plan import (
    RecommendConfig,
    candidates,
    plan_ladder_jobs,
    plan_pool_jobs,
    verify_job,
)
from ensplit.models import create
from ensplit.recipe import Recipe
from ensplit.reports.cost_text import cost_line
from ensplit.runs.plan import TrainJob

torch.set_num_threads(1)
RECIPE = Recipe.from_mapping({"num_samples": 300, "epochs": 1})
DATA = load_data(RECIPE.data)
IN, CLASSES = 40, 10


def mlp_layers(width: int, depth: int, inputs: int = IN, outputs: int = CLASSES) -> list[tuple[int, int]]:
    return [(inputs, width)] + [(width, width)] * (depth - 1) + [(width, outputs)]


def mlp_training_flops(width: int, depth: int, inputs: int = IN, outputs: int = CLASSES,
                       input_grad: bool = False) -> int:
    """By hand, per example: each linear's forward (x·Wᵀ), weight gradient (gᵀ·x) and input gradient (g·W) are
    2·in·out FLOPs each, except the first layer's input gradient, which autograd skips unless x needs one."""
    layers = mlp_layers(width, depth, inputs, outputs)
    total = sum(3 * 2 * i * o for i, o in layers)
    return total if input_grad else total - 2 * layers[0][0] * layers[0][1]


def mlp_forward_flops(width: int, depth: int, inputs: int = IN, outputs: int = CLASSES) -> int:
    return sum(2 * i * o for i, o in mlp_layers(width, depth, inputs, outputs))


def labels(members: int, rows: int) -> torch.Tensor:
    return torch.randint(0, CLASSES, (members, rows))


@pytest.mark.parametrize(("width", "depth"), [(1, 1), (7, 2), (33, 3)])
def test_one_mlp_matches_the_hand_count(width, depth):
    model = create("mlp", width=width, depth=depth, in_shape=(IN,), num_classes=CLASSES)
    wrapped = lambda x: model(x).unsqueeze(0)  # noqa: E731 - logits [1, B, C] as every ensemble returns
    module = torch.nn.Module()
    module.forward = wrapped  # type: ignore[method-assign]
    module.register_module("net", model)
    x = torch.randn(16, IN)
    got = training_flops_per_example(module, x, labels(1, 16))
    assert got == mlp_training_flops(width, depth)
    # 3 × the forward pass, less the first layer's input gradient (which only BatchEnsemble needs, see below)
    assert got == 3 * forward_flops(module, x) - 2 * IN * width
    assert not any(p.grad is not None for p in model.parameters())  # counting leaves no gradients behind


@pytest.mark.parametrize("members", [1, 3])
def test_member_batched_networks_cost_what_they_would_alone(members):
    model = deep_ensemble("mlp", list(range(members)), width=12, depth=2, in_shape=(IN,), num_classes=CLASSES)
    x = torch.randn(members, 32, IN) if members > 1 else torch.randn(32, IN)
    assert training_flops_per_example(model, x, labels(members, 32)) == members * mlp_training_flops(12, 2)


def test_batchensemble_trains_at_exactly_three_forward_passes():
    """Its first layer scales the input by a trainable r before the matmul, so that layer's input gradient is
    computed: every matmul runs three times, and the elementwise r, s products are not counted."""
    model = build_method("batchensemble", "mlp", 4, 20, 2, (IN,), CLASSES)
    x = torch.randn(24, IN)
    assert training_flops_per_example(model, x, labels(4, 24)) == 3 * forward_flops(model, x) \
        == 3 * 4 * mlp_forward_flops(20, 2)


def job(method: str = "deep", width: int = 10, seeds: tuple[int, ...] = (1,), members: int = 0,
        options: tuple[tuple[str, object], ...] = (), epochs: int = 3) -> TrainJob:
    train = dataclasses.replace(RECIPE.train, epochs=epochs)
    return TrainJob("test", "mlp", width, None, (), RECIPE.data, tuple(sorted(dataclasses.asdict(train).items())),
                    seeds, 0, method, members, options)


def test_a_deep_job_counts_every_network_every_epoch_every_example():
    n = DATA.x_train.shape[0]
    got = job_training_flops(job(width=9, seeds=(1, 2, 3), epochs=3), DATA)
    assert got == mlp_training_flops(9, 2) * 3 * n * 3


def test_mimo_pays_for_its_batch_repetitions_per_example():
    """MIMO's step stacks the M members' inputs into one network (stem M·40 inputs, head M·10 outputs) and
    repeats each of the B examples r = 4 times: per example drawn, r rows through the widened network."""
    members, width, r = 4, 13, 4
    per_row = mlp_training_flops(width, 2, inputs=members * IN, outputs=members * CLASSES)
    mimo = job("mimo", width, seeds=(5, 6), members=members)
    assert per_example_training_flops(mimo, DATA) == r * per_row
    assert job_training_flops(mimo, DATA) == r * per_row * 3 * DATA.x_train.shape[0] * 2


def test_a_split_batch_shares_each_example_among_the_members():
    """BatchEnsemble with split_batch gives each member its own share of the batch: M times cheaper per example
    than tiling every example to every member."""
    tiled = per_example_training_flops(job("batchensemble", 16, members=4), DATA)
    split = per_example_training_flops(job("batchensemble", 16, members=4, options=(("split_batch", True),)), DATA)
    assert tiled == 4 * 3 * mlp_forward_flops(16, 2) and split * 4 == tiled


def test_counts_are_cached_per_model_shape(monkeypatch):
    built = []
    original = recommend_cost._network
    monkeypatch.setattr(recommend_cost, "_network", lambda j, d: built.append(j) or original(j, d))
    jobs = [job(width=11, seeds=(seed,), epochs=2) for seed in range(100)] + [job(width=12, epochs=2)]
    total = sum(job_training_flops(j, DATA) for j in jobs)
    assert len(built) <= 2
    assert total == (100 * mlp_training_flops(11, 2) + mlp_training_flops(12, 2)) * 2 * DATA.x_train.shape[0]


def test_the_brute_force_is_one_seed_of_every_candidate_at_the_budget():
    config = RecommendConfig(recipe=RECIPE, budget=2000, members_max=3, methods=("mimo",))
    found = candidates(config, DATA)
    n, epochs = DATA.x_train.shape[0], RECIPE.train.epochs
    naive = 0
    for c in found:
        if c.method in ("single", "deep"):
            naive += c.members * mlp_training_flops(c.width, 2) * epochs * n
        else:
            naive += 4 * mlp_training_flops(c.width, 2, c.members * IN, c.members * CLASSES) * epochs * n
    assert brute_force_flops(found, config, DATA) == naive


def test_cost_of_counts_each_planned_job_once_and_verification_apart():
    config = RecommendConfig(recipe=RECIPE, budget=2000, members_max=2, methods=())
    found = candidates(config, DATA)
    a, b = job(width=8, seeds=(1, 2)), job(width=9)
    check = verify_job(config, found[0])
    cost = cost_of([a, b, a], [check], found, config, DATA, 12.34, 2)
    assert cost.training_flops == job_training_flops(a, DATA) + job_training_flops(b, DATA)
    assert cost.verification_flops == job_training_flops(check, DATA)
    assert cost.ratio == pytest.approx(cost.training_flops / brute_force_flops(found, config, DATA))
    assert cost.to_json() == {"training_flops": cost.training_flops, "brute_force_flops": cost.brute_force_flops,
                              "ratio": round(cost.ratio, 4), "seconds": 12.3, "jobs": 2,
                              "verification_flops": cost.verification_flops, "brute_force_cells": 1,
                              "training_seconds": 0.0, "brute_force_seconds": 0.0, "time_ratio": None}
    tuned = RecommendConfig(recipe=RECIPE, budget=2000, members_max=2, methods=(), tune=True,
                            tune_lrs=(0.1, 0.2, 0.4), tune_weight_decays=(0.0, 5e-4))
    six = cost_of([a, b], [], found, tuned, DATA, 1.0, 2)  # a tuned brute force trains every cell: 3 × 2
    assert six.brute_force_cells == 6 and six.brute_force_flops == 6 * brute_force_flops(found, tuned, DATA)


def test_the_cost_line():
    cost = Cost(1_234_000_000, 3_900_000_000, 41.2, 17).to_json()
    assert cost_line(cost, 13) == ("Cost: 1.2e9 training FLOPs, 0.32x a one-seed brute force of the 13 candidates "
                                   "(3.9e9); 41 s, 17 jobs")


def test_the_cost_line_weighs_training_time_when_measured():
    cost = Cost(1_234_000_000, 3_900_000_000, 41.2, 17, training_seconds=34.4, brute_force_seconds=21.5).to_json()
    assert cost["time_ratio"] == pytest.approx(34.4 / 21.5, abs=1e-4)
    assert cost_line(cost, 13) == ("Cost: 1.2e9 training FLOPs, 0.32x a one-seed brute force of the 13 candidates "
                                   "(3.9e9); 41 s, 17 jobs; training 34 s against an estimated 22 s for that "
                                   "brute force (1.60x); training every candidate once would have taken less "
                                   "time")


@pytest.mark.parametrize(("flops", "seconds", "says"), [
    (3_000_000_000, 20.0, ""),  # cheaper on both counts
    (3_000_000_000, 24.0, ""),  # 1.20x the time: within the estimate's error, not claimed
    (3_000_000_000, 26.0, "; training every candidate once would have taken less time"),
    (1_000_000_000, 20.0, "; training every candidate once would have taken fewer FLOPs"),
    (1_000_000_000, 40.0, "; training every candidate once would have taken fewer FLOPs and less time")])
def test_the_cost_line_says_when_the_brute_force_would_have_been_cheaper(flops, seconds, says):
    cost = Cost(1_234_000_000, flops, 41.2, 17, training_seconds=seconds, brute_force_seconds=20.0).to_json()
    line = cost_line(cost, 13)
    assert line.endswith(f"({seconds / 20.0:.2f}x){says}")


def _recorded_by_hand(folder, job_ids) -> float:
    """Each job's epoch seconds read straight from the folder's SQLite: the median after the first epoch (all
    of them for a one-epoch job), times the epochs."""
    total = 0.0
    with sqlite3.connect(folder / "results.sqlite") as conn:
        for job_id, spe in conn.execute("SELECT job_id, seconds_per_epoch FROM jobs"):
            epochs = json.loads(spe)
            if job_id in job_ids:
                total += statistics.median(epochs[1:] or epochs) * len(epochs)
    return total


def test_recommend_reports_its_cost_from_scratch(tmp_path):
    values = {"budget": 3000, "epochs": 1, "num_samples": 300, "members_max": 2, "methods": ("batchensemble",),
              "rungs": 4, "pool": 4, "bootstrap": 10, "cnll_splits": 2, "threads": 1}
    config = RecommendConfig.from_mapping(values)
    first = run_recommend(config, tmp_path / "r", progress=False)
    cost = first.to_json()["cost"]
    data = load_data(config.recipe.data)
    planned = plan_pool_jobs(config, data) + [j for js in plan_ladder_jobs(config, data).values() for j in js]
    assert cost["training_flops"] == sum(job_training_flops(j, data) for j in planned)
    assert cost["verification_flops"] > 0 and cost["jobs"] == first.trained_jobs
    assert cost["brute_force_flops"] == brute_force_flops([a.candidate for a in first.ranked], config, data)
    assert cost["ratio"] == pytest.approx(cost["training_flops"] / cost["brute_force_flops"], rel=1e-3)
    assert f"{cost['ratio']:.2f}x a one-seed brute force of the {len(first.ranked)}" in render(first.to_json())
    assert cost["training_seconds"] == pytest.approx(_recorded_by_hand(tmp_path / "r", {j.job_id for j in planned}),
                                                     abs=2e-3) and cost["training_seconds"] > 0
    per_epoch = [c["seconds_per_epoch"] for c in first.to_json()["candidates"]]
    assert cost["brute_force_seconds"] == pytest.approx(sum(per_epoch) * config.recipe.train.epochs, abs=2e-3)
    assert cost["time_ratio"] == pytest.approx(first.cost.training_seconds / first.cost.brute_force_seconds, 1e-3)
    assert f"({cost['time_ratio']:.2f}x)" in render(first.to_json())
    again = run_recommend(config, tmp_path / "r", progress=False)
    assert again.trained_jobs == 0 and again.cost.training_flops == cost["training_flops"]  # from scratch
    assert again.cost.training_seconds == pytest.approx(first.cost.training_seconds)  # the folder's record
