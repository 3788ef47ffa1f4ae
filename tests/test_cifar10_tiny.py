"""CIFAR-10 end to end on the shared Parquet files (issue 25): a tiny memory-split study and a tiny `recommend`
with a small ResNet on the CPU, each from `../shared/data/cifar10` (skipped, saying why, when it is absent).

The sizes are the smallest that still exercise every stage (decode and cache the Parquet images, augment,
member-batched channels-last training, pools, power laws, the recommender's cheap runs, predictions and the
verification); the setting measured at scale is in benchmarks/results/cifar10_cpu.md.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

import ensplit
from ensplit.ensembles.methods import build_method

CIFAR = Path(os.environ.get("ENSPLIT_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "cifar10"
needs_cifar = pytest.mark.skipif(not (CIFAR / "train.parquet").exists(),
                                 reason=f"shared CIFAR-10 not found at {CIFAR} (set ENSPLIT_TEST_DATA to its parent)")

# the recipe of the documented setting, shrunk: ResNet-8, 200 training and 100 test images, one epoch
RECIPE = {"dataset": str(CIFAR), "family": "resnet", "depth": 8, "train_subset": 200, "test_subset": 100,
          "epochs": 1, "batch_size": 50, "lr": 0.1, "augment": True, "channels_last": True, "threads": 1}


@needs_cifar
def test_tiny_cifar10_study(tmp_path):
    result = ensplit.study(out=tmp_path / "study", progress=False, report=False, widths="2,4", pool_min=3,
                           pool_max=3, bootstrap=0, **RECIPE)
    answer = result.to_json()
    assert answer["recipe"]["dataset"] == str(CIFAR) and answer["recipe"]["family"] == "resnet"
    budgets = answer["budgets"]
    assert budgets, "no budget in the study's answer"
    for row in budgets:
        # one epoch on 200 images: near chance (CNLL ≈ ln 10), finite, and the advantage is what it says
        assert 1.0 < row["best_cnll"] < 3.5 and 1.0 < row["single_cnll"] < 3.5
        assert math.isclose(row["advantage"], row["single_cnll"] - row["best_cnll"], abs_tol=1e-9)
    store = result.store
    assert store.labels().shape == (100,) and store.labels().max() < 10
    pool, _ = store.pool(4)
    assert pool.shape == (3, 100, 10)


@needs_cifar
def test_tiny_cifar10_recommend(tmp_path):
    result = ensplit.recommend(out=tmp_path / "recommend", progress=False, report=False, budget=24_000,
                               methods="batchensemble", members_max=3, pool=4, bootstrap=10, **RECIPE)
    answer = result.to_json()
    best = answer["recommendation"]
    assert best["params"] <= 24_000 and math.isfinite(best["predicted_cnll"])
    low, high = best["interval"]
    assert low <= best["predicted_cnll"] <= high
    verified = answer["verification"]
    assert verified is not None and math.isfinite(verified["measured_cnll"])
    assert math.isfinite(verified["single_measured_cnll"])
    names = {(c["method"], c["members"]) for c in answer["candidates"]}
    assert ("single", 1) in names and ("batchensemble", 4) in names


def test_mixture_resnet_converts_to_channels_last(float64_default):
    """recommend's default methods include mixture, whose 2-d conv templates are 5-d `[t, out, in, kh, kw]`:
    `Module.to(memory_format=torch.channels_last)` (what `--channels-last` training calls) refused them. The bank
    keeps its shape and values, and the model computes what it did."""
    model = build_method("mixture", "resnet", 2, 4, 14, in_shape=(3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    before = model(x)
    banks = {n: p.clone() for n, p in model.named_parameters() if p.dim() == 5}
    assert banks, "no 5-d template bank: the test no longer covers the case"
    model.to(memory_format=torch.channels_last)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in banks.items())
    torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), before, rtol=0, atol=1e-10)
