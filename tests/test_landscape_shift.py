"""SWA against ensembles under dataset shift: the summary equals plain loops over corrupted sets, members and
ensembles."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import torch

from ensplit.analysis.landscape import shift_curves
from ensplit.data import load_dataset
from ensplit.data.corruptions import corrupted_test_sets
from ensplit.ensembles import build_member
from ensplit.experiments.landscape_shift import corrupted_log_probs
from ensplit.metrics import cnll_ttcv


def _naive(pool: torch.Tensor, labels: torch.Tensor) -> dict[str, list[float]]:
    """Accuracy, NLL and CNLL against ensemble size n, averaged over every n-subset, one ensemble at a time."""
    members, count = pool.shape[0], pool.shape[1]
    out: dict[str, list[float]] = {"accuracy": [], "nll": [], "cnll": []}
    for n in range(1, members + 1):
        acc, nll, cnll = [], [], []
        for subset in combinations(range(members), n):
            hits, loss = 0, 0.0
            for i in range(count):
                probs = [sum(math.exp(float(pool[j, i, c])) for j in subset) / n for c in range(pool.shape[2])]
                hits += int(int(np.argmax(probs)) == int(labels[i]))
                loss -= math.log(probs[int(labels[i])])
            acc.append(hits / count)
            nll.append(loss / count)
            cnll.append(float(cnll_ttcv(pool[list(subset)], labels)))
        for key, values in (("accuracy", acc), ("nll", nll), ("cnll", cnll)):
            out[key].append(sum(values) / len(values))
    return out


def test_shift_curves_match_a_plain_loop_over_corrupted_sets() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (40,), generator=g)

    def pool() -> torch.Tensor:
        return torch.log_softmax(2 * torch.randn(3, 40, 4, generator=g, dtype=torch.float64), -1)

    per_set = {(name, severity): {"independent": pool(), "SWA": pool()}
               for name in ("noise", "shift") for severity in (1, 2)}
    shift = shift_curves(per_set, labels)
    assert shift["sizes"] == [1, 2, 3]
    naive = {key: {pool: _naive(lp, labels) for pool, lp in pools.items()} for key, pools in per_set.items()}
    for entry in shift["sets"]:
        key = (entry["corruption"], entry["severity"])
        for pool in ("independent", "SWA"):
            for metric in ("accuracy", "nll", "cnll"):
                assert entry[pool][metric] == pytest.approx(naive[key][pool][metric], abs=1e-9)

    def average(keys: list[tuple[str, int]], pool: str, metric: str) -> list[float]:
        return [sum(naive[k][pool][metric][i] for k in keys) / len(keys) for i in range(3)]

    groups = {"mean": [("all", list(naive))],
              "by_corruption": [(c, [k for k in naive if k[0] == c]) for c in ("noise", "shift")],
              "by_severity": [(str(s), [k for k in naive if k[1] == s]) for s in (1, 2)]}
    for where, entries in groups.items():
        for name, keys in entries:
            got = shift[where] if where == "mean" else shift[where][name]
            for pool in ("independent", "SWA"):
                for metric in ("accuracy", "nll", "cnll"):
                    assert got[pool][metric] == pytest.approx(average(keys, pool, metric), abs=1e-9)
    assert shift_curves({}, labels) == {}


def test_corrupted_predictions_match_a_loop_over_states() -> None:
    data = load_dataset("mnist1d").subset(train=50, test=30, seed=0)
    models = [build_member("mlp", s, width=6, depth=1, in_shape=(40,), num_classes=10) for s in range(3)]
    states = [m.state_dict() for m in models]
    per_set = corrupted_log_probs(models[0], {"independent": states[:2], "SWA": states[2:]}, data)
    expected_sets = list(corrupted_test_sets(data))
    assert list(per_set) == [(name, severity) for name, severity, _ in expected_sets] and len(per_set) == 10
    for name, severity, x in expected_sets:
        for pool, members in (("independent", models[:2]), ("SWA", models[2:])):
            got = per_set[(name, severity)][pool]
            assert got.shape == (len(members), 30, 10)
            for k, model in enumerate(members):
                with torch.no_grad():
                    want = torch.log_softmax(model.eval()(data.prepare(x)), -1)
                torch.testing.assert_close(got[k].float(), want, atol=1e-5, rtol=1e-5)
