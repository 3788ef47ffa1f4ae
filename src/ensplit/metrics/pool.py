"""Pool-based estimates: metrics of ⌊ℓ/n⌋ disjoint n-ensembles from a pool of ℓ networks (science.md §1).

All ensembles of one n, and all n of a curve, are scored at once: every ensemble's averaged probabilities
are computed once (averaging.py) and shared by the uncalibrated metrics and, after averaging, by the
temperature search (temperature_after.py); before averaging, one batched grid search per pool shares the
per-member softmax work across n (temperature_search.py).

Result type: `PoolEstimate`, a frozen dataclass per ensemble size n with `mean` and `std` dicts keyed by
METRICS ('accuracy', 'nll', 'brier', 'ece', 'cnll'); accuracy/nll/brier/ece are of the uncalibrated
ensemble (τ = 1), ece in percent, cnll by test-time cross-validation; std is the population std over the
ensembles (0 for a single ensemble).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from ensplit.errors import EnsplitError
from ensplit.metrics.averaging import MemberSums, average_ensembles
from ensplit.metrics.calibration import Mode, cnll_ttcv_indexed
from ensplit.metrics.validation import ArrayLike, validate_predictions

METRICS = ("accuracy", "nll", "brier", "ece", "cnll")
MIN_ENSEMBLES = 3


@dataclass(frozen=True)
class PoolEstimate:
    """Mean and std over `ensembles` disjoint ensembles of `n` networks, per metric name in METRICS."""

    n: int
    ensembles: int
    mean: dict[str, float]
    std: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def disjoint_ensembles(pool_size: int, n: int, seed: int = 0) -> torch.Tensor:
    """⌊ℓ/n⌋ ensembles of n distinct networks, no network in two of them: long `[⌊ℓ/n⌋, n]`.

    A seeded random permutation of the pool cut into consecutive blocks of n.
    """
    if n < 1 or n > pool_size:
        raise EnsplitError(f"ensemble size must be in [1, {pool_size}] for a pool of {pool_size}, got {n}")
    order = torch.randperm(pool_size, generator=torch.Generator().manual_seed(seed))
    count = pool_size // n
    return order[: count * n].reshape(count, n)


def ensemble_metrics(pool_log_probs: torch.Tensor, labels: torch.Tensor, index_sets: Sequence[torch.Tensor],
                     mode: Mode = "before", splits: int = 5, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Per-ensemble metrics for each index set `[E_k, n_k]` into a validated pool `[ℓ, N, C]`.

    Returns one dict per set: metric name -> `[E_k]`.
    """
    sums = MemberSums(index_sets, pool_log_probs.shape[0])
    averaged = average_ensembles(pool_log_probs, labels, sums, keep_gaps=mode == "after")
    cnll = cnll_ttcv_indexed(pool_log_probs, labels, index_sets, mode, splits, seed, sums=sums, gaps=averaged.gaps)
    per_set = {name: sums.split(values.to(pool_log_probs.dtype)) for name, values in averaged.metrics.items()}
    return [{**{name: per_set[name][k] for name in per_set}, "cnll": cnll_values.to(pool_log_probs.dtype)}
            for k, (cnll_values, _) in enumerate(cnll)]


def _summarise(n: int, values: dict[str, torch.Tensor]) -> PoolEstimate:
    count = len(values["cnll"])
    return PoolEstimate(n=n, ensembles=count,
                        mean={name: float(values[name].mean()) for name in METRICS},
                        std={name: float(values[name].std(unbiased=False)) for name in METRICS})


def pool_metrics(pool_log_probs: ArrayLike, labels: ArrayLike, n: int, mode: Mode = "before", splits: int = 5,
                 seed: int = 0) -> PoolEstimate:
    """Mean and std of accuracy, NLL, Brier, ECE and CNLL over the ⌊ℓ/n⌋ disjoint n-ensembles of a pool
    `[ℓ, N, C]` (member log-probabilities), labels `[N]`."""
    pool, labels = validate_predictions(pool_log_probs, labels)
    if pool.dim() != 3:
        raise EnsplitError(f"a pool must be [networks, N, classes], got shape {tuple(pool.shape)}")
    index = disjoint_ensembles(pool.shape[0], n, seed)
    return _summarise(n, ensemble_metrics(pool, labels, [index], mode, splits, seed)[0])


def curve_sizes(pool_size: int, sizes: Sequence[int] | None = None, min_ensembles: int = MIN_ENSEMBLES
                ) -> list[int]:
    """Ensemble sizes kept for a pool: n = 1 always, others only if ⌊ℓ/n⌋ ≥ min_ensembles."""
    candidates = range(1, pool_size + 1) if sizes is None else sorted(set(sizes))
    for n in candidates:
        if n < 1 or n > pool_size:
            raise EnsplitError(f"ensemble size {n} is outside [1, {pool_size}] for a pool of {pool_size}")
    return [n for n in candidates if n == 1 or pool_size // n >= min_ensembles]


def pool_curve(pool_log_probs: ArrayLike, labels: ArrayLike, sizes: Sequence[int] | None = None,
               min_ensembles: int = MIN_ENSEMBLES, mode: Mode = "before", splits: int = 5, seed: int = 0
               ) -> list[PoolEstimate]:
    """Pool estimates for each ensemble size n (default 1..ℓ), keeping n only if it averages at least
    `min_ensembles` disjoint ensembles (n = 1 always kept). One `PoolEstimate` per kept n, ascending."""
    pool, labels = validate_predictions(pool_log_probs, labels)
    if pool.dim() != 3:
        raise EnsplitError(f"a pool must be [networks, N, classes], got shape {tuple(pool.shape)}")
    kept = curve_sizes(pool.shape[0], sizes, min_ensembles)
    index_sets = [disjoint_ensembles(pool.shape[0], n, seed) for n in kept]
    per_size = ensemble_metrics(pool, labels, index_sets, mode, splits, seed)
    return [_summarise(n, values) for n, values in zip(kept, per_size, strict=True)]
