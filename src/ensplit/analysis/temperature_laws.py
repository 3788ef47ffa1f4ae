"""Power laws of NLL at a fixed temperature and their lower envelope, per member size (Lobacheva et al. §2 and §4).

For one pool: NLL_n(τ) on a grid of τ (pool-averaged over the ⌊ℓ/n⌋ disjoint n-ensembles that the CNLL
curve uses), a power law c(τ) + b(τ)·n^a(τ) per τ (Fig. 2), the optimal temperature τ* = argmin_τ c(τ) of
the grid (the asymptote of the best infinite ensemble), and LE-NLL_n = min_τ NLL_n(τ) (eqs. 4–5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ensplit.analysis.fixed_temperature import TemperatureScorer, lower_envelope_nll
from ensplit.analysis.powerlaw import Objective, PowerLaw, fit_power_law_or_none
from ensplit.metrics import disjoint_ensembles

DEFAULT_TAUS = tuple(float(2.0 ** (k / 6)) for k in range(-12, 13))  # 0.25 … 4, 25 log-spaced values


@dataclass(frozen=True)
class TemperatureLaws:
    """One member size: NLL_n(τ) `[K, T]` for n `[K]` and τ `[T]`, a power law in n per τ (None with fewer
    than 3 values of n), and LE-NLL_n `[K]` with its τ (geometric mean over the halves) `[K]`."""

    params: int
    n: np.ndarray
    taus: np.ndarray
    nll: np.ndarray
    fits: tuple[PowerLaw | None, ...]
    le_nll: np.ndarray
    le_tau: np.ndarray

    @property
    def optimum(self) -> tuple[float, float] | None:
        """(τ*, c(τ*)): the grid temperature whose power law has the lowest asymptote c (None without fits)."""
        fitted = [(fit.c, float(tau)) for tau, fit in zip(self.taus, self.fits, strict=True) if fit is not None]
        if not fitted:
            return None
        c, tau = min(fitted)
        return tau, c

    @property
    def optimum_at_edge(self) -> bool:
        """τ* is the smallest or largest τ of the grid (the true optimum may lie outside it)."""
        best = self.optimum
        return best is not None and best[0] in (float(self.taus.min()), float(self.taus.max()))


def temperature_laws(pool: torch.Tensor, labels: torch.Tensor, params: int, n_values: Sequence[int],
                     taus: Sequence[float] = DEFAULT_TAUS, mode: str = "before", splits: int = 5, seed: int = 0,
                     objective: Objective = "nll") -> TemperatureLaws:
    """NLL_n(τ), its power laws and LE-NLL_n for a pool `[ℓ, N, C]` (float64 log-probabilities), labels `[N]`.

    n_values: the ensemble sizes (those of the pool's CNLL curve); ensembles are `disjoint_ensembles(ℓ, n,
    seed)`, the very ensembles CNLL is averaged over, and the halves are CNLL's (`splits`, `seed`).
    """
    n = np.asarray(list(n_values), dtype=int)
    index_sets = [disjoint_ensembles(pool.shape[0], int(k), seed) for k in n]
    scorer = TemperatureScorer(pool, labels, index_sets, mode)
    tau_grid = np.asarray(sorted(taus), dtype=np.float64)
    nll = torch.stack([scorer.nll(float(tau)) for tau in tau_grid], 1).numpy()  # [K, T]
    fits = tuple(fit_power_law_or_none(n, nll[:, t], objective) for t in range(len(tau_grid)))
    envelope = lower_envelope_nll(scorer, splits, seed)
    return TemperatureLaws(int(params), n, tau_grid, nll, fits, envelope.le_nll, envelope.tau_mean)
