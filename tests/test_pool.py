"""Pool-based estimates: the vectorised computation equals a plain loop over ensembles (float64)."""

import numpy as np
import pytest
import torch

from ensplit.errors import EnsplitError
from ensplit.metrics import (
    METRICS,
    classification_metrics,
    cnll_ttcv,
    curve_sizes,
    disjoint_ensembles,
    ensemble_log_probs,
    pool_curve,
    pool_metrics,
)


def _pool(networks=9, objects=120, classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (objects,), generator=generator)
    signal = torch.randn(objects, classes, generator=generator, dtype=torch.float64)
    signal += 1.5 * torch.nn.functional.one_hot(labels, classes)
    noise = torch.randn(networks, objects, classes, generator=generator, dtype=torch.float64)
    return torch.log_softmax(2 * (signal + noise), -1), labels


def test_disjoint_ensembles_are_disjoint_seeded_blocks():
    index = disjoint_ensembles(10, 3, seed=5)
    assert index.shape == (3, 3) and len(set(index.flatten().tolist())) == 9
    assert torch.equal(index, disjoint_ensembles(10, 3, seed=5))
    assert not torch.equal(index, disjoint_ensembles(10, 3, seed=6))
    with pytest.raises(EnsplitError):
        disjoint_ensembles(4, 5)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_pool_metrics_equal_a_loop_over_ensembles(mode):
    pool, labels = _pool()
    estimate = pool_metrics(pool, labels, n=2, mode=mode, splits=3, seed=7)
    per_ensemble = {name: [] for name in METRICS}
    for members in disjoint_ensembles(len(pool), 2, seed=7):  # the plain way: one ensemble at a time
        values = classification_metrics(ensemble_log_probs(pool[members]), labels)
        values["cnll"] = cnll_ttcv(pool[members], labels, mode, splits=3, seed=7)
        for name in METRICS:
            per_ensemble[name].append(float(values[name]))
    assert estimate.n == 2 and estimate.ensembles == 4
    for name in METRICS:
        assert estimate.mean[name] == pytest.approx(np.mean(per_ensemble[name]), abs=1e-10)
        assert estimate.std[name] == pytest.approx(np.std(per_ensemble[name]), abs=1e-10)


def test_pool_curve_keeps_points_with_enough_ensembles_and_matches_pool_metrics():
    pool, labels = _pool(networks=10, objects=60)
    curve = pool_curve(pool, labels, splits=2, seed=3)
    assert [e.n for e in curve] == [1, 2, 3]  # ⌊10/4⌋ = 2 < 3 ensembles
    assert [e.ensembles for e in curve] == [10, 5, 3]
    for estimate in curve:
        single = pool_metrics(pool, labels, estimate.n, splits=2, seed=3)
        for name in METRICS:
            assert estimate.mean[name] == pytest.approx(single.mean[name], abs=1e-10)
    assert [e.n for e in pool_curve(pool, labels, sizes=[1, 5, 10], min_ensembles=1, splits=1)] == [1, 5, 10]
    assert curve[0].to_dict()["mean"]["cnll"] == curve[0].mean["cnll"]


def test_curve_sizes_always_keeps_n_equals_one():
    assert curve_sizes(2, min_ensembles=5) == [1]
    assert curve_sizes(12) == [1, 2, 3, 4]
    with pytest.raises(EnsplitError):
        curve_sizes(4, sizes=[0, 1])


def test_ensembles_improve_with_size_on_average():
    pool, labels = _pool(networks=12, objects=200)
    curve = pool_curve(pool, labels, splits=2)
    cnll = [e.mean["cnll"] for e in curve]
    assert cnll[0] > cnll[1] > cnll[-1]


def test_pool_rejects_bad_input():
    pool, labels = _pool(networks=3, objects=10)
    pool[0, 0, 0] = float("nan")
    with pytest.raises(EnsplitError):
        pool_metrics(pool, labels, 1)
    with pytest.raises(EnsplitError):
        pool_curve(_pool(networks=3, objects=10)[0][0], labels)  # a single network [N, C] is not a pool
