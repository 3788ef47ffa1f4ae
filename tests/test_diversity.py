"""Diversity measures against naive loops (float64)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ensplit.errors import EnsplitError
from ensplit.metrics import (
    cosine_similarity_matrix,
    disagreement_matrix,
    flatten_parameters,
    mean_pairwise_kl,
    normalized_diversity,
    pairwise_kl_matrix,
)


def _members(members=4, objects=50, classes=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(2 * torch.randn(members, objects, classes, generator=generator,
                                                  dtype=torch.float64), -1)
    return log_probs, torch.randint(0, classes, (objects,), generator=generator)


def test_disagreement_and_normalised_diversity_match_loops():
    log_probs, labels = _members()
    predicted = log_probs.argmax(-1).numpy()
    members = len(predicted)
    expected = np.array([[np.mean(predicted[i] != predicted[j]) for j in range(members)] for i in range(members)])
    np.testing.assert_allclose(disagreement_matrix(log_probs).numpy(), expected, atol=1e-12)
    errors = [1 - np.mean(predicted[i] == labels.numpy()) for i in range(members)]
    normalised = np.array([[expected[i, j] / errors[i] for j in range(members)] for i in range(members)])
    np.testing.assert_allclose(normalized_diversity(log_probs, labels).numpy(), normalised, atol=1e-12)


def test_pairwise_kl_matches_loop():
    log_probs, _ = _members(members=3, objects=20)
    p = log_probs.exp().numpy()
    members, objects, _ = p.shape
    expected = np.zeros((members, members))
    for i in range(members):
        for j in range(members):
            expected[i, j] = np.mean([sum(p[i, k, c] * math.log(p[i, k, c] / p[j, k, c]) for c in range(p.shape[2]))
                                      for k in range(objects)])
    np.testing.assert_allclose(pairwise_kl_matrix(log_probs).numpy(), expected, atol=1e-10)
    off_diagonal = expected[~np.eye(members, dtype=bool)].mean()
    assert float(mean_pairwise_kl(log_probs)) == pytest.approx(off_diagonal, abs=1e-10)
    assert float(mean_pairwise_kl(log_probs[:1])) == 0.0


def test_kl_with_zero_probabilities_is_finite():
    log_probs = torch.log(torch.tensor([[[1.0, 0.0]], [[0.5, 0.5]]], dtype=torch.float64))
    kl = pairwise_kl_matrix(log_probs)
    assert torch.isfinite(kl).all() and float(kl[0, 1]) == pytest.approx(math.log(2), abs=1e-9)


def test_cosine_similarity_of_models_matches_loop():
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)) for _ in range(3)]
    vectors = torch.stack([flatten_parameters(m) for m in models]).double()
    assert vectors.shape == (3, 4 * 3 + 3 + 3 * 2 + 2)
    expected = [[float(a @ b / (a.norm() * b.norm())) for b in vectors] for a in vectors]
    np.testing.assert_allclose(cosine_similarity_matrix(vectors).numpy(), expected, atol=1e-12)
    assert torch.equal(flatten_parameters(models[0].state_dict()), flatten_parameters(models[0]))


def test_cosine_rejects_zero_vectors():
    with pytest.raises(EnsplitError):
        cosine_similarity_matrix(torch.zeros(2, 3))
