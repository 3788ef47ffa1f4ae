"""Temperature scaling of ensembles and calibrated NLL with test-time cross-validation (science.md §1).

Temperature *before* averaging (default, Lobacheva et al. §4): p̄(τ) = (1/n) Σ_i softmax(ℓ_i / τ).
Temperature *after* averaging: p̄(τ) = softmax(log((1/n) Σ_i p_i) / τ).
CNLL (Ashukha et al. 2020; Lobacheva et al. eq. 3): split the objects into random halves; fit τ on one half,
measure the NLL on the other; swap; average; repeat over `splits` seeded splits and average.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from ensplit.errors import EnsplitError
from ensplit.metrics.averaging import Gaps, MemberSums, average_ensembles
from ensplit.metrics.temperature_after import fit_after_averaging
from ensplit.metrics.temperature_search import minimise_temperature
from ensplit.metrics.validation import ArrayLike, as_float_tensor

Mode = Literal["before", "after"]
MODES = ("before", "after")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise EnsplitError(f"temperature mode must be 'before' or 'after', got {mode!r}")


def mean_log_probs(member_log_probs: torch.Tensor) -> torch.Tensor:
    """log((1/n) Σ_i p_i) over the members axis: `[..., n, N, C]` -> `[..., N, C]`."""
    return torch.logsumexp(member_log_probs, dim=-3) - math.log(member_log_probs.shape[-3])


def ensemble_log_probs(member_log_probs: ArrayLike, temperature: float | ArrayLike = 1.0,
                       mode: Mode = "before") -> torch.Tensor:
    """Ensemble log-probabilities `[..., N, C]` of members `[..., n, N, C]` at temperature τ.

    `temperature` is a number or a tensor broadcast over the leading ensemble dims `[...]`.
    """
    _check_mode(mode)
    log_probs = as_float_tensor(member_log_probs)
    if log_probs.dim() < 3:
        raise EnsplitError(f"member log-probabilities must be [..., n, N, C], got {tuple(log_probs.shape)}")
    tau = torch.as_tensor(temperature, dtype=log_probs.dtype)
    if not bool((tau > 0).all()) or not bool(torch.isfinite(tau).all()):
        raise EnsplitError("temperature must be positive and finite")
    if mode == "before":
        scaled = torch.log_softmax(log_probs / tau.reshape(*tau.shape, 1, 1, 1), dim=-1)
        return mean_log_probs(scaled)
    return torch.log_softmax(mean_log_probs(log_probs) / tau.reshape(*tau.shape, 1, 1), dim=-1)


def split_masks(num_objects: int, splits: int = 5, seed: int = 0) -> torch.Tensor:
    """Random halves for test-time cross-validation: bool `[2·splits, N]`, rows (split 0 half A, half B, ...).

    Half A holds ⌊N/2⌋ objects of a seeded permutation, half B the rest.
    """
    if splits < 1 or num_objects < 2:
        raise EnsplitError(f"test-time cross-validation needs splits >= 1 and N >= 2, got {splits} and {num_objects}")
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(2 * splits, num_objects, dtype=torch.bool)
    for split in range(splits):
        order = torch.randperm(num_objects, generator=generator)
        masks[2 * split, order[: num_objects // 2]] = True
        masks[2 * split + 1, order[num_objects // 2:]] = True
    return masks


def _held_out(fits: list[tuple[torch.Tensor, torch.Tensor]], splits: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(log τ* `[E, H]`, F of every mask at it `[E, H, H]`) -> (CNLL `[E]`, τ `[E, splits, 2]`) per set."""
    partner = torch.arange(2 * splits) ^ 1  # half A <-> half B of the same split
    results = []
    for log_tau, values in fits:
        held_out = values[:, partner, torch.arange(2 * splits)]  # fitted on h, measured on partner(h)
        results.append((held_out.mean(-1), log_tau.exp().reshape(-1, splits, 2)))
    return results


def _fit(pool: torch.Tensor, labels: torch.Tensor, sums: MemberSums, masks: torch.Tensor, mode: Mode,
         gaps: Gaps | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(log τ* `[E_k, H]`, F of every mask at it `[E_k, H, H]`) per index set of `sums`."""
    if mode == "before":
        return minimise_temperature(pool, labels, sums.index_sets, masks, sums)
    if gaps is None:
        gaps = average_ensembles(pool, labels, sums, keep_gaps=True).gaps
    log_tau, values = fit_after_averaging(gaps, masks)
    return list(zip(sums.split(log_tau), sums.split(values), strict=True))


def cnll_ttcv_indexed(pool_log_probs: torch.Tensor, labels: torch.Tensor, index_sets: Sequence[torch.Tensor],
                      mode: Mode = "before", splits: int = 5, seed: int = 0, *, sums: MemberSums | None = None,
                      gaps: Gaps | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """CNLL of many ensembles drawn from one pool, all at once.

    pool_log_probs `[M, N, C]`, labels `[N]`, index_sets: member indices `[E_k, n_k]` per set.
    Returns per set (CNLL `[E_k]`, fitted τ `[E_k, splits, 2]`). Inputs must already be validated.
    `sums` and `gaps` (after averaging) may be passed when the caller has them for these sets.
    """
    _check_mode(mode)
    masks = split_masks(pool_log_probs.shape[1], splits, seed)
    sums = MemberSums(index_sets, pool_log_probs.shape[0]) if sums is None else sums
    return _held_out(_fit(pool_log_probs, labels, sums, masks, mode, gaps), splits)


def _flatten_ensembles(member_log_probs: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """`[..., n, N, C]` -> pool `[E·n, N, C]`, index `[E, n]`, leading shape."""
    log_probs = as_float_tensor(member_log_probs)
    if log_probs.dim() < 3:
        raise EnsplitError(f"member log-probabilities must be [..., n, N, C], got {tuple(log_probs.shape)}")
    leading, n = log_probs.shape[:-3], log_probs.shape[-3]
    pool = log_probs.reshape(-1, *log_probs.shape[-2:])
    return pool, torch.arange(pool.shape[0]).reshape(-1, n), leading


def cnll_ttcv(member_log_probs: ArrayLike, labels: ArrayLike, mode: Mode = "before", splits: int = 5,
              seed: int = 0) -> torch.Tensor:
    """Calibrated NLL by test-time cross-validation of ensembles `[..., n, N, C]` -> `[...]` (nats).

    Every ensemble uses the same seeded splits. τ is searched in log τ ∈ [log 0.01, log 100].
    """
    pool, index, leading = _flatten_ensembles(member_log_probs)
    cnll, _ = cnll_ttcv_indexed(pool, torch.as_tensor(labels).long(), [index], mode, splits, seed)[0]
    return cnll.to(pool.dtype).reshape(leading)


def optimal_temperature(member_log_probs: ArrayLike, labels: ArrayLike, mode: Mode = "before") -> torch.Tensor:
    """τ minimising the NLL on all objects, for ensembles `[..., n, N, C]` -> `[...]`."""
    _check_mode(mode)
    pool, index, leading = _flatten_ensembles(member_log_probs)
    labels = torch.as_tensor(labels).long()
    everything = torch.ones(1, pool.shape[1], dtype=torch.bool)
    (log_tau, _), = _fit(pool, labels, MemberSums([index], pool.shape[0]), everything, mode)
    return log_tau[:, 0].exp().to(pool.dtype).reshape(leading)


def calibrated_nll(member_log_probs: ArrayLike, labels: ArrayLike, mode: Mode = "before") -> torch.Tensor:
    """min_τ NLL on all objects (no cross-validation; optimistic): `[..., n, N, C]` -> `[...]`."""
    tau = optimal_temperature(member_log_probs, labels, mode)
    log_probs = ensemble_log_probs(member_log_probs, tau, mode)
    labels = torch.as_tensor(labels).long()
    return -log_probs.gather(-1, labels.expand(*log_probs.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)
