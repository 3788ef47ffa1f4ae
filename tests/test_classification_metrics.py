"""Accuracy, NLL, Brier and ECE against naive per-object loops (float64); input validation."""

import math

import numpy as np
import pytest
import torch

from ensplit.errors import EnsplitError
from ensplit.metrics import accuracy, brier, ece, log_softmax, nll, validate_predictions


def _random(batch=3, objects=60, classes=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(batch, objects, classes, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (objects,), generator=generator)
    return torch.log_softmax(logits, -1), labels


def _naive(log_probs, labels, bins=15):
    probs = np.exp(log_probs.numpy())
    y = labels.numpy()
    hits, nlls, briers, confidences = [], [], [], []
    for j in range(len(y)):
        p = probs[j]
        hits.append(float(np.argmax(p) == y[j]))
        nlls.append(-math.log(p[y[j]]))
        onehot = np.zeros_like(p)
        onehot[y[j]] = 1
        briers.append(float(np.sum((p - onehot) ** 2)))
        confidences.append(float(p.max()))
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [j for j, c in enumerate(confidences) if (low < c <= high) or (b == 0 and c == 0)]
        if members:
            gap = np.mean([hits[j] for j in members]) - np.mean([confidences[j] for j in members])
            total += len(members) / len(y) * abs(gap)
    return np.mean(hits), np.mean(nlls), np.mean(briers), 100 * total


def test_metrics_match_naive_loops_over_a_batch():
    log_probs, labels = _random()
    values = [accuracy(log_probs, labels), nll(log_probs, labels), brier(log_probs, labels), ece(log_probs, labels)]
    assert all(v.shape == (3,) and v.dtype == torch.float64 for v in values)
    for i in range(3):
        expected = _naive(log_probs[i], labels)
        np.testing.assert_allclose([float(v[i]) for v in values], expected, rtol=1e-12, atol=1e-12)


def test_ece_known_value_and_numpy_input():
    # Every object predicted class 0 with confidence 0.9; half are right: ECE = |0.5 − 0.9| = 40 %.
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0, 1] * 5)
    assert float(ece(np.log(probs), labels)) == pytest.approx(40.0, abs=1e-9)
    assert float(accuracy(np.log(probs), labels)) == pytest.approx(0.5)


def test_ece_handles_confidence_one_and_one_half():
    certain = torch.log(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    assert float(ece(certain, torch.tensor([0]))) == pytest.approx(0.0, abs=1e-12)
    assert float(ece(certain, torch.tensor([1]))) == pytest.approx(100.0, abs=1e-9)
    # conf 0.9 right and conf 0.55 wrong fall in different bins: (0.1 + 0.55) / 2.
    two = torch.log(torch.tensor([[0.9, 0.1], [0.55, 0.45]], dtype=torch.float64))
    assert float(ece(two, torch.tensor([0, 1]))) == pytest.approx(32.5, abs=1e-9)


def test_validate_accepts_log_probs_and_logits_via_log_softmax():
    log_probs, labels = _random(batch=2, objects=5, classes=3)
    checked, checked_labels = validate_predictions(log_probs.numpy(), labels.numpy())
    assert checked.dtype == torch.float64 and checked_labels.dtype == torch.long
    logits = torch.randn(2, 5, 3)
    validate_predictions(log_softmax(logits), labels)
    validate_predictions(log_softmax(logits).half(), labels)  # float16 storage rounding is tolerated


@pytest.mark.parametrize("case", ["shape", "nan", "sum", "probabilities", "range", "negative", "float_labels", "1d"])
def test_validate_rejects_bad_input(case):
    log_probs, labels = _random(batch=2, objects=5, classes=3)
    if case == "shape":
        labels = labels[:4]
    elif case == "nan":
        log_probs[0, 1, 2] = float("nan")
    elif case == "sum":
        log_probs = log_probs - 0.1
    elif case == "probabilities":
        log_probs = log_probs.exp()
    elif case == "range":
        labels[0] = 3
    elif case == "negative":
        labels[0] = -1
    elif case == "float_labels":
        labels = labels.double() + 0.5
    elif case == "1d":
        log_probs = log_probs[0, 0]
    with pytest.raises(EnsplitError) as error:
        validate_predictions(log_probs, labels)
    assert "\n" not in str(error.value)


def test_log_softmax_rejects_nan_logits():
    with pytest.raises(EnsplitError):
        log_softmax(torch.tensor([[0.0, float("nan")]]))
