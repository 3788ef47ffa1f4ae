"""Input checks shared by every metric: shapes, finiteness, normalisation, label range.

Convention: member log-probabilities `[members, N, classes]` (or ensemble log-probabilities `[..., N, C]`)
and integer labels `[N]`. Bad input raises `EnsplitError` with a one-line message.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ensplit.errors import EnsplitError

ArrayLike = torch.Tensor | np.ndarray

# float16 on disk carries ~3 significant digits, so a stored row may sum to 1 only within ~1e-2.
_SUM_TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 2e-2, torch.float32: 1e-3, torch.float64: 1e-6}


def as_float_tensor(values: ArrayLike) -> torch.Tensor:
    """A float tensor on the CPU: float64 stays float64, anything else becomes float32."""
    tensor = torch.as_tensor(values)
    if not (tensor.is_floating_point()):
        raise EnsplitError(f"predictions must be floating point, got dtype {tensor.dtype}")
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def log_softmax(logits: ArrayLike) -> torch.Tensor:
    """Log-probabilities from logits `[..., C]` (float64 stays float64); NaN/inf logits are rejected."""
    tensor = torch.as_tensor(logits)
    if not tensor.is_floating_point():
        raise EnsplitError(f"logits must be floating point, got dtype {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise EnsplitError("logits contain NaN or infinite values")
    return torch.log_softmax(as_float_tensor(tensor), dim=-1)


def validate_labels(labels: ArrayLike, num_objects: int, num_classes: int) -> torch.Tensor:
    """Labels as a long tensor `[N]`, checked for shape and range [0, num_classes)."""
    if isinstance(labels, np.ndarray) and labels.dtype.kind == "u" and labels.size \
            and int(labels.max()) >= num_classes:  # checked before the int64 cast can wrap it negative
        raise EnsplitError(f"labels must lie in [0, {num_classes}), found range [{int(labels.min())}, "
                           f"{int(labels.max())}]")
    tensor = torch.as_tensor(labels)
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        if tensor.is_floating_point() and torch.equal(tensor, tensor.round()):
            tensor = tensor.long()
        else:
            raise EnsplitError(f"labels must be integers, got dtype {tensor.dtype}")
    if tensor.dim() != 1:
        raise EnsplitError(f"labels must be 1-D [N], got shape {tuple(tensor.shape)}")
    if tensor.shape[0] != num_objects:
        raise EnsplitError(f"labels have {tensor.shape[0]} entries but predictions cover {num_objects} objects")
    tensor = tensor.long()
    if num_objects and (int(tensor.min()) < 0 or int(tensor.max()) >= num_classes):
        raise EnsplitError(f"labels must lie in [0, {num_classes}), found range "
                           f"[{int(tensor.min())}, {int(tensor.max())}]")
    return tensor


def validate_predictions(log_probs: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Check log-probabilities `[..., N, C]` against labels `[N]`; return (float tensor, long labels).

    Rejects: fewer than 2 dims, no objects or classes, NaN or +inf, rows whose probabilities do not sum
    to one (tolerance by dtype: 2e-2 float16, 1e-3 float32, 1e-6 float64), labels of the wrong length,
    non-integer labels or labels out of range. -inf (probability exactly 0) is allowed. For logits,
    call `log_softmax` first.
    """
    raw = torch.as_tensor(log_probs)
    if raw.dim() < 2:
        raise EnsplitError(f"log-probabilities must be [..., N, classes], got shape {tuple(raw.shape)}")
    if raw.shape[-1] < 2 or raw.shape[-2] < 1:
        raise EnsplitError(f"need at least one object and two classes, got shape {tuple(raw.shape)}")
    tolerance = _SUM_TOLERANCE.get(raw.dtype, 1e-3)
    tensor = as_float_tensor(raw)
    if tensor.numel() == 0:
        return tensor, validate_labels(labels, tensor.shape[-2], tensor.shape[-1])
    top = float(tensor.max())  # one pass for three checks: max propagates NaN
    if math.isnan(top):
        raise EnsplitError("predictions contain NaN")
    if top == math.inf:
        raise EnsplitError("log-probabilities contain +inf")
    if top > tolerance:
        raise EnsplitError("log-probabilities must be <= 0 (did you pass probabilities or logits?)")
    total = tensor.exp().sum(-1)  # no overflow: every entry is <= tolerance
    worst = float((total - 1).abs().max())
    if worst > tolerance:
        raise EnsplitError(f"probabilities do not sum to one (worst row is off by {worst:.3g}); "
                           "pass log-probabilities, or logits through log_softmax")
    return tensor, validate_labels(labels, tensor.shape[-2], tensor.shape[-1])
