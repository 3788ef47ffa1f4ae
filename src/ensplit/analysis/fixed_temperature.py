"""NLL of pooled ensembles at a fixed temperature τ, and its minimum over τ (Lobacheva et al. §2, eqs. 4–5; §4).

NLL_n(τ) is the NLL at temperature τ averaged over the ⌊ℓ/n⌋ disjoint n-ensembles of a pool of ℓ networks.
Temperature before averaging (the paper's and ensplit's default): p̄(τ) = (1/n) Σ_i softmax(ℓ_i / τ);
after averaging: softmax(log p̄ / τ). Only the true class enters the NLL, so before averaging each member's
log p_y(τ) is computed once per τ and shared by every ensemble and every ensemble size.

LE-NLL_n = min_τ NLL_n(τ) (eq. 5: the mean over ensembles inside the minimum, CNLL has it outside). To
compare it with CNLL on equal terms it uses CNLL's test-time cross-validation: τ is chosen on one half of
the objects (the same seeded halves as `cnll_ttcv`) and the pooled NLL measured on the other half, swapped
and averaged over the splits. LE-NLL − CNLL then measures only the order of the minimum and the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ensplit.errors import EnsplitError
from ensplit.metrics import mean_log_probs, split_masks

LOG_TAU_RANGE = (math.log(0.01), math.log(100.0))  # the same search range as CNLL
_GRID_POINTS = 41
_LOG_TAU_TOLERANCE = 1e-5


class TemperatureScorer:
    """Pool-averaged NLL at any τ for index sets `[E_k, n_k]` into one pool `[ℓ, N, C]` (log-probabilities).

    mode: "before" or "after" averaging. After averaging, each ensemble's averaged log-probabilities are
    computed once (`[E_k, N, C]` per set) and only rescaled per τ.
    """

    def __init__(self, pool: torch.Tensor, labels: torch.Tensor, index_sets: Sequence[torch.Tensor],
                 mode: str = "before") -> None:
        if mode not in ("before", "after"):
            raise EnsplitError(f"temperature mode must be 'before' or 'after', got {mode!r}")
        self.pool, self.labels, self.mode = pool, labels.long(), mode
        self.index_sets = [torch.as_tensor(ix).long() for ix in index_sets]
        self._true = pool.gather(-1, self.labels.expand(pool.shape[0], -1).unsqueeze(-1)).squeeze(-1)  # [ℓ, N]
        self._means = [mean_log_probs(pool[ix]) for ix in self.index_sets] if mode == "after" else None

    def true_log_probs(self, tau: float, sets: Sequence[int] | None = None, objects: torch.Tensor | None = None
                       ) -> list[torch.Tensor]:
        """log p̄_y(τ) of every ensemble of the chosen sets (default all), on the chosen objects (default all):
        one `[E_k, N']` per set."""
        sets = range(len(self.index_sets)) if sets is None else sets
        labels = self.labels if objects is None else self.labels[objects]
        if self.mode == "after":
            out = []
            for k in sets:
                scaled = (self._means[k] if objects is None else self._means[k][:, objects]) / tau
                true = scaled.gather(-1, labels.expand(scaled.shape[:-1]).unsqueeze(-1)).squeeze(-1)
                out.append(true - torch.logsumexp(scaled, -1))
            return out
        pool, true = (self.pool, self._true) if objects is None else (self.pool[:, objects], self._true[:, objects])
        member = true / tau - torch.logsumexp(pool / tau, -1)  # log softmax(ℓ_i/τ)_y: [ℓ, N']
        return [torch.logsumexp(member[self.index_sets[k]], 1) - math.log(self.index_sets[k].shape[1])
                for k in sets]

    def nll(self, tau: float, weights: torch.Tensor | None = None, sets: Sequence[int] | None = None,
            objects: torch.Tensor | None = None) -> torch.Tensor:
        """Pool-averaged NLL at τ: `[K]` over all (or the chosen) objects, or `[K, H]` with `weights` `[N, H]`
        (each column a mean over a subset of the objects)."""
        values = []
        for true in self.true_log_probs(tau, sets, objects):
            per_ensemble = -true.mean(-1) if weights is None else -(true @ weights)
            values.append(per_ensemble.mean(0))
        return torch.stack(values)


@dataclass(frozen=True)
class LowerEnvelope:
    """LE-NLL_n per index set `[K]` and the τ chosen on each half `[K, splits, 2]`."""

    le_nll: np.ndarray
    tau: np.ndarray

    @property
    def tau_mean(self) -> np.ndarray:
        """Geometric mean over the halves of the chosen τ: `[K]`."""
        return np.exp(np.log(self.tau).reshape(len(self.tau), -1).mean(1))


def _minimise(objective, grid: np.ndarray, values: np.ndarray) -> float:
    """log τ minimising a smooth 1-D function: the best grid point, refined by bounded Brent in its cell."""
    best = int(values.argmin())
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    refined = minimize_scalar(objective, bounds=bracket, method="bounded", options={"xatol": _LOG_TAU_TOLERANCE})
    return float(refined.x) if refined.fun <= values[best] else float(grid[best])


def lower_envelope_nll(scorer: TemperatureScorer, splits: int = 5, seed: int = 0) -> LowerEnvelope:
    """LE-NLL_n of every index set of `scorer` with test-time cross-validation (see the module doc).

    Per set and half: a grid over log τ ∈ [log 0.01, log 100] (all sets and halves at once), then bounded
    Brent in the best grid cell to 1e-5 in log τ, on that half's objects only.
    """
    masks = split_masks(scorer.pool.shape[1], splits, seed)
    halves = [torch.nonzero(mask).squeeze(1) for mask in masks]
    weights = (masks.to(scorer.pool.dtype) / masks.sum(1, keepdim=True)).T  # [N, H]: column h = mean over half h
    grid = np.linspace(*LOG_TAU_RANGE, _GRID_POINTS)
    on_grid = torch.stack([scorer.nll(math.exp(g), weights) for g in grid]).numpy()  # [G, K, H]
    partner = np.arange(len(halves)) ^ 1  # half A <-> half B of the same split
    le_nll, taus = np.empty(len(scorer.index_sets)), np.empty((len(scorer.index_sets), len(halves)))
    for k in range(len(scorer.index_sets)):
        held_out = []
        for h, objects in enumerate(halves):
            def objective(log_tau: float, k: int = k, objects: torch.Tensor = objects) -> float:
                return float(scorer.nll(math.exp(log_tau), sets=[k], objects=objects)[0])

            taus[k, h] = math.exp(_minimise(objective, grid, on_grid[:, k, h]))
            held_out.append(float(scorer.nll(taus[k, h], sets=[k], objects=halves[partner[h]])[0]))
        le_nll[k] = float(np.mean(held_out))
    return LowerEnvelope(le_nll, taus.reshape(len(taus), splits, 2))
