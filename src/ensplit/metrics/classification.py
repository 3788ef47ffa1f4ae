"""Accuracy, NLL, Brier score and ECE of (ensemble) log-probabilities (science.md §1).

Every function takes log-probabilities `[..., N, C]` and labels `[N]` and returns a tensor `[...]`, so a
batch of ensembles `[E, N, C]` is scored at once. For an ensemble of members, first average the
probabilities with `ensemble_log_probs` (calibration.py). Inputs are not re-validated here (hot path);
call `validate_predictions` at the boundary.
"""

from __future__ import annotations

import torch

from ensplit.metrics.validation import ArrayLike, as_float_tensor

ECE_BINS = 15


def _inputs(log_probs: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    return as_float_tensor(log_probs), torch.as_tensor(labels).long()


def _true_class(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p_y per object: `[..., N]`."""
    index = labels.expand(*log_probs.shape[:-1]).unsqueeze(-1)
    return log_probs.gather(-1, index).squeeze(-1)


def accuracy(log_probs: ArrayLike, labels: ArrayLike) -> torch.Tensor:
    """Fraction of objects whose argmax is the label: `[..., N, C]` -> `[...]`."""
    log_probs, labels = _inputs(log_probs, labels)
    return (log_probs.argmax(-1) == labels).to(log_probs.dtype).mean(-1)


def nll(log_probs: ArrayLike, labels: ArrayLike) -> torch.Tensor:
    """Mean negative log-likelihood −(1/N) Σ log p_y (nats): `[..., N, C]` -> `[...]`."""
    log_probs, labels = _inputs(log_probs, labels)
    return -_true_class(log_probs, labels).mean(-1)


def brier(log_probs: ArrayLike, labels: ArrayLike) -> torch.Tensor:
    """Brier score (1/N) Σ ||p − onehot(y)||² (range [0, 2]): `[..., N, C]` -> `[...]`."""
    log_probs, labels = _inputs(log_probs, labels)
    probs = log_probs.exp()
    p_true = _true_class(probs, labels)
    # ||p − e_y||² = Σ_c p_c² − 2 p_y + 1, which avoids building the one-hot tensor.
    return ((probs * probs).sum(-1) - 2 * p_true + 1).mean(-1)


def ece(log_probs: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> torch.Tensor:
    """Expected calibration error in percent, top-label, `bins` equal-width confidence bins.

    ECE = 100 · Σ_b (|B_b|/N) · |acc(B_b) − conf(B_b)|, bin b holds confidences in (b/bins, (b+1)/bins]
    (the first bin also holds 0). `[..., N, C]` -> `[...]`.
    """
    log_probs, labels = _inputs(log_probs, labels)
    confidence, predicted = log_probs.max(-1)
    return ece_from_confidence(confidence.exp(), (predicted == labels).to(log_probs.dtype), bins)


def ece_from_confidence(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> torch.Tensor:
    """ECE in percent from top-label confidences and 0/1 correctness, both `[..., N]` -> `[...]`."""
    bin_index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    batch_shape, num_objects = confidence.shape[:-1], confidence.shape[-1]
    flat_bins = bin_index.reshape(-1, num_objects)
    zeros = torch.zeros(flat_bins.shape[0], bins, dtype=confidence.dtype)
    # Σ over a bin of (confidence − correct); |.| of the sum is |B|·|conf − acc|.
    gap = zeros.scatter_add(1, flat_bins, (confidence - correct).reshape(-1, num_objects))
    return (100.0 * gap.abs().sum(-1) / num_objects).reshape(batch_shape)


def classification_metrics(log_probs: ArrayLike, labels: ArrayLike) -> dict[str, torch.Tensor]:
    """All four metrics of `[..., N, C]` at once: {'accuracy', 'nll', 'brier', 'ece'} -> each `[...]`."""
    return {"accuracy": accuracy(log_probs, labels), "nll": nll(log_probs, labels),
            "brier": brier(log_probs, labels), "ece": ece(log_probs, labels)}
