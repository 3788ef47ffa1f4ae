"""Diversity and loss-landscape analyses of Fort et al. (2019), each a function returning arrays.

Checkpoints are plain-network states (see `ensplit.ensembles.states`), listed init-major with an `inits`
label per checkpoint. Function-space quantities are on the test set; diversity follows science.md §1
(disagreement = fraction of differing argmaxes; normalised diversity = disagreement / (1 − accuracy of
the reference member); weight similarity = cosine of the flattened parameters, batch-norm buffers excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from torch import nn

from ensplit.ensembles.states import State, flatten_states, parameter_names
from ensplit.metrics import (
    accuracy,
    cosine_similarity_matrix,
    disagreement_matrix,
    ensemble_metrics,
    normalized_diversity,
    validate_predictions,
)


def checkpoint_cosine(template: nn.Module, states: Sequence[State], skip_norm: bool = False) -> np.ndarray:
    """Cosine similarity `[S, S]` of the checkpoints' flattened parameters (optionally without batch-norm
    scales and shifts, see `parameter_names`)."""
    return cosine_similarity_matrix(flatten_states(states, parameter_names(template, skip_norm))).numpy()


def checkpoint_disagreement(log_probs: torch.Tensor) -> np.ndarray:
    """Fraction of test objects on which two checkpoints' predictions differ: `[S, S]`."""
    return disagreement_matrix(log_probs).numpy()


def within_across(matrix: np.ndarray, inits: Sequence[int]) -> tuple[float, float]:
    """Mean off-diagonal entry over pairs from the same trajectory, and over pairs from different ones."""
    inits = np.asarray(inits)
    same = inits[:, None] == inits[None, :]
    off_diagonal = ~np.eye(len(inits), dtype=bool)
    within = matrix[same & off_diagonal]
    across = matrix[~same]
    return (float(within.mean()) if within.size else float("nan"),
            float(across.mean()) if across.size else float("nan"))


def to_final(matrix: np.ndarray, inits: Sequence[int]) -> np.ndarray:
    """Each checkpoint's entry with its own trajectory's last checkpoint: `[K, T]` (equal T per init)."""
    inits = np.asarray(inits)
    rows = []
    for k in np.unique(inits):
        sel = np.flatnonzero(inits == k)
        rows.append(matrix[sel, sel[-1]])
    return np.stack(rows)


def tsne_embedding(log_probs: torch.Tensor, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """t-SNE (scikit-learn) of the checkpoints' prediction vectors (probabilities, `[S, N·C]`): `[S, 2]`."""
    from sklearn.manifold import TSNE

    vectors = log_probs.exp().reshape(log_probs.shape[0], -1).double().numpy()
    count = vectors.shape[0]
    if count < 3:
        raise ValueError("t-SNE needs at least 3 checkpoints")
    perplexity = perplexity if perplexity is not None else float(min(30.0, max(1.0, (count - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(vectors)


@dataclass
class SamplerSweep:
    """Samples around one solution at increasing scale: `accuracy`, `diversity` (normalised) `[L, S]`."""

    name: str
    scales: np.ndarray
    accuracy: np.ndarray
    diversity: np.ndarray


def accuracy_and_diversity(reference: torch.Tensor, samples: torch.Tensor,
                            labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of each sample and its normalised diversity relative to the reference `[N, C]`."""
    stacked = torch.cat([reference.unsqueeze(0), samples])
    diversity = normalized_diversity(stacked, labels)[0, 1:]
    return accuracy(samples, labels).numpy(), diversity.numpy()


def independent_points(solution_log_probs: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """For every ordered pair (i, j ≠ i) of independent solutions: accuracy of j and the normalised
    diversity of j relative to i. Arrays `[K(K−1)]`."""
    div = normalized_diversity(solution_log_probs, labels).numpy()
    acc = accuracy(solution_log_probs, labels).numpy()
    count = len(acc)
    pairs = [(i, j) for i in range(count) for j in range(count) if i != j]
    return np.array([acc[j] for _, j in pairs]), np.array([div[i, j] for i, j in pairs])


def diversity_at_accuracy(sweep: SamplerSweep, target: float) -> tuple[float, bool]:
    """The sampler's mean normalised diversity where its mean accuracy equals `target` (linear
    interpolation between scales). If no scale is that accurate, the diversity of its most accurate scale
    and False."""
    acc, div = sweep.accuracy.mean(1), sweep.diversity.mean(1)
    if acc.max() < target:
        return float(div[acc.argmax()]), False
    order = np.argsort(acc)
    return float(np.interp(target, acc[order], div[order])), True


def accuracy_at_diversity(sweep: SamplerSweep, target: float) -> tuple[float, bool]:
    """The sampler's mean accuracy where its mean normalised diversity equals `target` (linear
    interpolation between scales): the accuracy it gives up to be as diverse as independent inits. If no
    scale is that diverse, the accuracy of its most diverse scale and False."""
    acc, div = sweep.accuracy.mean(1), sweep.diversity.mean(1)
    if div.max() < target:
        return float(acc[div.argmax()]), False
    order = np.argsort(div)
    return float(np.interp(target, div[order], acc[order])), True


def ensemble_size_curves(pools: dict[str, torch.Tensor], labels: torch.Tensor, limit: int = 20,
                         seed: int = 0) -> tuple[list[int], dict[str, dict[str, list[float]]]]:
    """Accuracy, NLL and CNLL (TTCV, temperature before averaging) vs ensemble size n for each pool of
    member log-probabilities `[K, N, C]`, averaged over up to `limit` n-subsets of the K members (they
    overlap: with few inits, disjoint ensembles would leave one per size)."""
    results: dict[str, dict[str, list[float]]] = {}
    sizes: list[int] = []
    for name, pool in pools.items():
        pool, checked = validate_predictions(pool, labels)
        sizes = list(range(1, pool.shape[0] + 1))
        index_sets = [torch.tensor(ensemble_subsets(pool.shape[0], n, limit, seed)) for n in sizes]
        per_size = ensemble_metrics(pool, checked, index_sets, seed=seed)
        results[name] = {m: [float(v[m].mean()) for v in per_size] for m in ("accuracy", "nll", "cnll")}
    return sizes, results


def ensemble_subsets(pool: int, size: int, limit: int = 20, seed: int = 0) -> list[tuple[int, ...]]:
    """Up to `limit` distinct `size`-subsets of `range(pool)` (all of them when there are few enough)."""
    subsets = list(combinations(range(pool), size))
    if len(subsets) <= limit:
        return subsets
    order = np.random.default_rng(seed).permutation(len(subsets))[:limit]
    return [subsets[i] for i in sorted(order)]


def _mean_curves(sets: Sequence[dict[str, dict[str, list[float]]]], pools: Sequence[str]
                 ) -> dict[str, dict[str, list[float]]]:
    """Element-wise mean over sets of each pool's metric-vs-size lists."""
    return {pool: {m: np.mean([s[pool][m] for s in sets], axis=0).tolist() for m in ("accuracy", "nll", "cnll")}
            for pool in pools}


def shift_curves(per_set: dict[tuple[str, int], dict[str, torch.Tensor]], labels: torch.Tensor, limit: int = 20,
                 seed: int = 0) -> dict[str, object]:
    """Ensembles under dataset shift: `ensemble_size_curves` on every corrupted test set (pools of member
    log-probabilities `[K, N, C]` keyed by (corruption, severity)), then averaged over every set ("mean"),
    per corruption over severities ("by_corruption") and per severity over corruptions ("by_severity")."""
    if not per_set:
        return {}
    sets, sizes = [], []
    for (name, severity), pools in per_set.items():
        sizes, curves = ensemble_size_curves(pools, labels, limit, seed)
        sets.append({"corruption": name, "severity": int(severity), **curves})
    pools = list(next(iter(per_set.values())))
    names = list(dict.fromkeys(s["corruption"] for s in sets))
    severities = sorted({s["severity"] for s in sets})
    return {"sizes": sizes, "mean": _mean_curves(sets, pools),
            "by_corruption": {c: _mean_curves([s for s in sets if s["corruption"] == c], pools) for c in names},
            "by_severity": {str(v): _mean_curves([s for s in sets if s["severity"] == v], pools) for v in severities},
            "sets": sets}
