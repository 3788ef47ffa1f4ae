"""Every score of one ensemble from its member log-probabilities, as one flat dict (compare, designspace,
collegial; `evaluate` of `.npz` ensembles)."""

from __future__ import annotations

import torch

from ensplit.metrics import (
    accuracy,
    classification_metrics,
    cnll_ttcv,
    disagreement_matrix,
    ensemble_log_probs,
    normalized_diversity,
)


def off_diagonal_mean(matrix: torch.Tensor) -> float | None:
    """Mean over pairs i ≠ j of a square matrix (None for a single member)."""
    m = matrix.shape[0]
    if m < 2:
        return None
    return float((matrix.sum() - matrix.diagonal().sum()) / (m * (m - 1)))


def ensemble_metrics(log_probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, NLL, Brier and ECE (τ = 1) of the ensemble (mean member probability) of `[M, N, C]`."""
    return {k: float(v) for k, v in classification_metrics(ensemble_log_probs(log_probs), labels).items()}


def score_before_after(log_probs: torch.Tensor, labels: torch.Tensor, splits: int = 5,
                       seed: int = 0) -> dict[str, float | None]:
    """`ensemble_metrics` and the CNLL with τ fitted before and after averaging (`cnll_before`, `cnll_after`;
    None for one member), test-time cross-validation over `splits` seeded halvings; no cast of `log_probs`."""
    metrics: dict[str, float | None] = dict(ensemble_metrics(log_probs, labels))
    single = log_probs.shape[0] == 1
    metrics["cnll_before"] = None if single else float(cnll_ttcv(log_probs, labels, "before", splits, seed))
    metrics["cnll_after"] = None if single else float(cnll_ttcv(log_probs, labels, "after", splits, seed))
    return metrics


def score(log_probs: torch.Tensor, labels: torch.Tensor, splits: int = 5) -> dict[str, float | None]:
    """Member log-probabilities `[M, N, C]` -> the ensemble's accuracy, NLL, Brier, ECE (τ = 1), its CNLL
    (test-time cross-validation), the mean accuracy of single members, and pairwise disagreement and
    normalised diversity (None for one member)."""
    lp = log_probs.double()
    metrics: dict[str, float | None] = dict(ensemble_metrics(lp, labels))
    metrics["cnll"] = float(cnll_ttcv(lp, labels, splits=splits))
    metrics["member_accuracy"] = float(accuracy(lp, labels).mean())
    metrics["disagreement"] = off_diagonal_mean(disagreement_matrix(lp))
    metrics["diversity"] = off_diagonal_mean(normalized_diversity(lp, labels)) if lp.shape[0] > 1 else None
    return metrics
