"""Diversity of ensemble members in function space and weight space (Fort et al.; science.md §1).

Function space works on member log-probabilities `[M, N, C]`; weight space on flattened parameter vectors
`[K, P]` (use `flatten_parameters` to build one row from a module or state dict).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ensplit.errors import EnsplitError
from ensplit.metrics.validation import ArrayLike, as_float_tensor


def _members(member_log_probs: ArrayLike) -> torch.Tensor:
    log_probs = as_float_tensor(member_log_probs)
    if log_probs.dim() != 3:
        raise EnsplitError(f"member log-probabilities must be [M, N, C], got {tuple(log_probs.shape)}")
    return log_probs


def disagreement_matrix(member_log_probs: ArrayLike) -> torch.Tensor:
    """D[i, j] = fraction of objects whose argmax differs between members i and j: `[M, N, C]` -> `[M, M]`."""
    log_probs = _members(member_log_probs)
    predicted = torch.nn.functional.one_hot(log_probs.argmax(-1), log_probs.shape[-1]).to(log_probs.dtype)
    agreement = torch.einsum("inc,jnc->ij", predicted, predicted) / log_probs.shape[1]
    return 1 - agreement


def normalized_diversity(member_log_probs: ArrayLike, labels: ArrayLike) -> torch.Tensor:
    """D[i, j] / (1 − accuracy of member i), the reference member being the row: `[M, M]`.

    A member with no errors has undefined normalised diversity (inf or nan in its row).
    """
    log_probs = _members(member_log_probs)
    labels = torch.as_tensor(labels).long()
    error = 1 - (log_probs.argmax(-1) == labels).to(log_probs.dtype).mean(-1)
    return disagreement_matrix(log_probs) / error.unsqueeze(1)


def pairwise_kl_matrix(member_log_probs: ArrayLike) -> torch.Tensor:
    """K[i, j] = mean over objects of KL(p_i || p_j) in nats: `[M, N, C]` -> `[M, M]`, zero diagonal.

    Log-probabilities are floored at the smallest normal number's log so that p = 0 contributes 0.
    """
    log_probs = _members(member_log_probs)
    floor = torch.finfo(log_probs.dtype).tiny
    log_probs = log_probs.clamp(min=float(torch.log(torch.tensor(floor, dtype=log_probs.dtype))))
    probs = log_probs.exp()
    self_term = (probs * log_probs).sum(-1).mean(-1)  # −entropy of each member
    cross = torch.einsum("inc,jnc->ij", probs, log_probs) / log_probs.shape[1]
    kl = self_term.unsqueeze(1) - cross
    return kl.fill_diagonal_(0)


def mean_pairwise_kl(member_log_probs: ArrayLike) -> torch.Tensor:
    """Mean of KL(p_i || p_j) over ordered pairs i ≠ j (nats), a scalar tensor; 0 for one member."""
    kl = pairwise_kl_matrix(member_log_probs)
    members = kl.shape[0]
    return kl.sum() / max(members * (members - 1), 1)


def flatten_parameters(model: nn.Module | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """All floating-point parameters (or state-dict entries) of a model concatenated: `[P]`.

    Order is the module's (or mapping's) order; compare only models of one architecture.
    """
    tensors = model.parameters() if isinstance(model, nn.Module) else model.values()
    flat = [t.detach().reshape(-1) for t in tensors if t.is_floating_point()]
    if not flat:
        raise EnsplitError("the model has no floating-point parameters")
    return torch.cat(flat)


def cosine_similarity_matrix(parameters: ArrayLike) -> torch.Tensor:
    """S[i, j] = cos(θ_i, θ_j) of flattened parameter vectors `[K, P]` -> `[K, K]`."""
    vectors = as_float_tensor(parameters)
    if vectors.dim() != 2:
        raise EnsplitError(f"parameter vectors must be [K, P], got {tuple(vectors.shape)}")
    norms = vectors.norm(dim=1)
    if bool((norms == 0).any()):
        raise EnsplitError("a parameter vector is all zeros; its cosine similarity is undefined")
    unit = vectors / norms.unsqueeze(1)
    return (unit @ unit.T).clamp(-1, 1)
