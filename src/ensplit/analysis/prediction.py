"""Predict large ensembles and the optimal memory split from a few networks (Lobacheva et al. §7, science.md §2).

Per member size s: from a small pool (default 6 networks), CNLL_n for n = 1..4 is the mean over all
ensembles of n distinct networks of that small pool (every combination: 6, 15, 20, 15 ensembles); a power
law fitted to those 4 points predicts CNLL_n up to `max_n`. The measured curve comes from the whole pool
(⌊ℓ/n⌋ disjoint ensembles, ≥ 3 per point).
- The point prediction (`fit`, `point`) uses the first `small_pool` networks: what a user who trained
  only those networks would predict.
- Its uncertainty comes from repeating the prediction on resampled small pools (seeded):
  "bootstrap" (default) draws the small pool with replacement, and an ensemble never holds the same
  network twice (combinations that repeat a network are skipped); "subsets" draws `small_pool` distinct
  networks from the whole pool, the paper's repeated independent sets.
- The bands (`lower`, `upper`) are 5–95% predictive intervals for the CNLL of one new ensemble of n networks,
  built by the recommender's method (`ensplit.analysis.intervals`, see `ensemble_band`); plain percentiles of
  the resampled curves held a fresh ensemble only 60–80% of the time (tests/test_intervals_coverage.py).
The predicted OMS per budget is taken on the point-predicted (n, s)-plane, by default over the same (n, s)
cells that were measured (so it can be checked), and compared with the measured OMS.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ensplit.analysis.intervals import predictive_interval, t_quantile
from ensplit.analysis.memory_split import SplitPoint, default_budgets, optimal_split
from ensplit.analysis.powerlaw import Objective, PowerLaw, fit_power_law
from ensplit.errors import EnsplitError
from ensplit.metrics.calibration import Mode, cnll_ttcv_indexed
from ensplit.metrics.pool import PoolEstimate, pool_curve
from ensplit.metrics.validation import ArrayLike, validate_predictions

Resample = Literal["bootstrap", "subsets"]


@dataclass(frozen=True)
class SizePrediction:
    """Predicted CNLL_n (n = 1..max_n) for one member size, with its spread over repeats, vs measured.

    predicted, std: mean and std of the resampled curves, `[max_n]`. lower, upper: the 5–95% predictive interval
    of one new n-network ensemble's CNLL around the point prediction (`ensemble_band`), `[max_n]`; both equal
    the point prediction when no resample could be fitted. single_std: std of one network's CNLL over the
    small pool (σ₁); quantile: the Student-t quantile of the bands (small_pool − 1 degrees of freedom).
    rmse: mean over repeats of the RMSE against the measured points with n > fit_max_n (nan if none).
    fits: the power law of each usable repeat; small_curves: CNLL_n, n = 1..fit_max_n, per repeat
    `[repeats, fit_max_n]` (nan where a resample had too few distinct networks).
    fit, point, point_rmse: the power law fitted on the first `small_pool` networks, its curve `[max_n]`
    and its RMSE against the measured points with n > fit_max_n (None / nan when not computed).
    """

    params: int
    n: np.ndarray
    predicted: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    measured_n: np.ndarray
    measured: np.ndarray
    rmse: float
    rmse_std: float
    fits: tuple[PowerLaw, ...]
    small_curves: np.ndarray
    fit: PowerLaw | None = None
    point: np.ndarray | None = None
    point_rmse: float = float("nan")
    small_pool: int = 0
    single_std: float = float("nan")
    quantile: float = float("nan")

    def rmse_per_n(self) -> tuple[np.ndarray, np.ndarray]:
        """Seed 000 Fig. 6 left: per measured n, the RMSE over the repeats of predicted − measured CNLL_n,
        √(mean_r (fit_r(n) − measured(n))²): (n `[M]`, RMSE `[M]`). Without repeats, |point(n) − measured(n)|."""
        fits = self.fits or ((self.fit,) if self.fit is not None else ())
        if not fits:
            return self.measured_n, np.full(len(self.measured_n), np.nan)
        errors = np.stack([fit.predict(self.measured_n) for fit in fits]) - self.measured  # [R, M]
        return self.measured_n, np.sqrt(np.mean(errors ** 2, axis=0))

    @property
    def plane(self) -> np.ndarray:
        """The curve the predicted OMS is read from: the point prediction, else the mean over repeats."""
        return self.predicted if self.point is None else self.point


@dataclass(frozen=True)
class SplitComparison:
    """Predicted vs measured optimal memory split at one budget (cnll of `predicted` is the prediction)."""

    budget: int
    predicted: SplitPoint
    measured: SplitPoint
    predicted_n_per_repeat: tuple[int, ...]

    @property
    def exact(self) -> bool:
        return (self.predicted.n, self.predicted.params) == (self.measured.n, self.measured.params)


@dataclass(frozen=True)
class PredictionResult:
    sizes: tuple[SizePrediction, ...]
    splits: tuple[SplitComparison, ...]


def _small_pools(pool_size: int, small_pool: int, repeats: int, resample: Resample, seed: int) -> list[np.ndarray]:
    if pool_size < small_pool:
        raise EnsplitError(f"the pool has {pool_size} networks, fewer than the small pool of {small_pool}")
    rng = np.random.default_rng(seed)
    if resample == "bootstrap":
        return [rng.integers(0, small_pool, small_pool) for _ in range(repeats)]
    if resample == "subsets":
        return [rng.choice(pool_size, small_pool, replace=False) for _ in range(repeats)]
    raise EnsplitError(f"resample must be 'bootstrap' or 'subsets', got {resample!r}")


def _distinct_ensembles(networks: np.ndarray, n: int) -> torch.Tensor:
    """All combinations of n draws whose networks are distinct: `[E, n]` (E may be 0)."""
    rows = [c for c in itertools.combinations(networks.tolist(), n) if len(set(c)) == n]
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), n)


def ensemble_band(point: np.ndarray, curves: np.ndarray, n: np.ndarray, single_std: float,
                  networks: int) -> tuple[np.ndarray, np.ndarray, float]:
    """5–95% predictive interval of the CNLL of one new ensemble of n networks: (lower, upper, q), `[len(n)]`.

    point ± q·√(var_r curves + σ₁²/n): the variance of the resampled small pools' curves `[R, len(n)]` says how
    well `networks` networks pin the law down; σ₁/√n, one network's CNLL spread over the small pool scaled to
    n members, is the new ensemble's own luck; q is Student's t with networks − 1 degrees of freedom (σ₁ is
    estimated from them). This is recommend's `plane_prediction` at a trained size. The bootstrap variance is
    not inflated by N/(N−3) as a ladder's residual bootstrap is: a network resample that skips repeated
    networks already fits on fewer distinct networks than the small pool, and simulated pools cover a fresh
    ensemble about 90% of the time without it, mostly over 95% with it. σ₁/√n is a little narrower than the spread
    measured between fresh ensembles (which shrinks slower than 1/√n), but the bootstrap term dominates.
    Neither term covers a power law that misfits the curve beyond n ≤ fit_max_n.
    """
    quantile = t_quantile(networks - 1)
    lower, upper = predictive_interval(point, curves.var(axis=0), single_std / np.sqrt(n), quantile)
    return lower, upper, quantile


def _small_pool_curves(pool: torch.Tensor, labels: torch.Tensor, draws: list[np.ndarray], fit_max_n: int,
                       mode: Mode, splits: int, seed: int) -> tuple[np.ndarray, float]:
    """CNLL_n (n = 1..fit_max_n) of each draw, the mean over its ensembles of distinct networks
    `[draws, fit_max_n]` (nan where a draw has too few), and the std of the first draw's single networks.

    Every distinct ensemble is scored once (all draws share the same seeded splits, so an ensemble's CNLL does
    not depend on the draw it is in): a hundred bootstrap draws of 6 networks hold about 5,600 ensembles but
    only the 56 distinct ones up to n = 4."""
    index_sets = [_distinct_ensembles(d, n) for d in draws for n in range(1, fit_max_n + 1)]
    distinct: dict[int, dict[tuple[int, ...], int]] = {}  # n -> {sorted members: row}
    for ix in index_sets:
        for row in ix.tolist():
            rows = distinct.setdefault(len(row), {})
            rows.setdefault(tuple(sorted(row)), len(rows))
    sizes = sorted(distinct)
    scored = cnll_ttcv_indexed(pool, labels, [torch.tensor(list(distinct[n]), dtype=torch.long) for n in sizes],
                               mode, splits, seed)
    cnll = {n: result[0] for n, result in zip(sizes, scored, strict=True)}
    values = [cnll[ix.shape[1]][[distinct[ix.shape[1]][tuple(sorted(r))] for r in ix.tolist()]] if len(ix) else None
              for ix in index_sets]
    small = np.array([np.nan if v is None else float(v.mean()) for v in values]).reshape(len(draws), fit_max_n)
    singles = values[0]
    single_std = float(singles.std()) if singles is not None and len(singles) > 1 else float("nan")
    return small, single_std


def predict_size(pool_log_probs: ArrayLike, labels: ArrayLike, params: int, max_n: int | None = None,
                 small_pool: int = 6, fit_max_n: int = 4, repeats: int = 20, resample: Resample = "bootstrap",
                 mode: Mode = "before", splits: int = 5, seed: int = 0, objective: Objective = "nll",
                 measured: Sequence[PoolEstimate] | None = None) -> SizePrediction:
    """The §7 protocol for one member size: pool `[ℓ, N, C]`, labels `[N]` -> `SizePrediction`.

    `repeats` may be 0: then the bands collapse onto the point prediction. They collapse too when no
    resample had three distinct networks (a bootstrap of a 3-network small pool often has fewer); `fits`
    is then empty, which callers can report. `measured`: the pool's `pool_curve` with the same mode, splits
    and seed, if the caller has it already (else computed here).
    """
    pool, labels = validate_predictions(pool_log_probs, labels)
    max_n = pool.shape[0] if max_n is None else max_n
    if min(small_pool, fit_max_n) < 3:
        raise EnsplitError(f"a power law needs n = 1..3 at least: small_pool={small_pool}, fit_max_n={fit_max_n}")
    if measured is None:
        measured = pool_curve(pool, labels, mode=mode, splits=splits, seed=seed)
    draws = [np.arange(min(small_pool, pool.shape[0]))] + _small_pools(pool.shape[0], small_pool, repeats,
                                                                        resample, seed)
    small, single_std = _small_pool_curves(pool, labels, draws, fit_max_n, mode, splits, seed)
    n_grid = np.arange(1, max_n + 1)
    fit_n = np.arange(1, fit_max_n + 1)
    measured_n = np.array([e.n for e in measured])
    measured_cnll = np.array([e.mean["cnll"] for e in measured])
    beyond = measured_n > fit_max_n

    def error(fit: PowerLaw) -> float:
        if not beyond.any():
            return float("nan")
        return float(np.sqrt(np.mean((fit.predict(measured_n[beyond]) - measured_cnll[beyond]) ** 2)))

    point_fit = fit_power_law(fit_n, small[0], objective)
    # too few distinct networks in a resample to fit three parameters: left out
    fits = [fit_power_law(fit_n[~np.isnan(row)], row[~np.isnan(row)], objective)
            for row in small[1:] if (~np.isnan(row)).sum() >= 3]
    point = point_fit.predict(n_grid)
    curves = np.array([fit.predict(n_grid) for fit in fits]) if fits else point[None]
    lower, upper, quantile = (point, point, float("nan")) if not fits else \
        ensemble_band(point, curves, n_grid, single_std, len(draws[0]))
    errors = [e for e in map(error, fits) if not np.isnan(e)]
    return SizePrediction(
        params=int(params), n=n_grid, predicted=curves.mean(0), std=curves.std(0), lower=lower, upper=upper,
        measured_n=measured_n, measured=measured_cnll,
        rmse=float(np.mean(errors)) if errors else float("nan"), rmse_std=float(np.std(errors)) if errors else 0.0,
        fits=tuple(fits), small_curves=small[1:], fit=point_fit, point=point, point_rmse=error(point_fit),
        small_pool=len(draws[0]), single_std=single_std, quantile=quantile)


def subset_fit_variance(pool_log_probs: ArrayLike, labels: ArrayLike, networks: int, max_n: int, repeats: int,
                        mode: Mode = "before", splits: int = 5, seed: int = 0,
                        objective: Objective = "nll") -> np.ndarray:
    """Variance at n = 1..max_n of the CNLL_n law fitted on `networks` networks, from a larger pool `[N, …]`:
    the law fitted on every subset of `networks` of its N networks (on `repeats` random ones when there are
    more; the paper's repeated independent sets), its variance over them times (N − 1)/(N − networks), the
    finite-population factor (subsets of one pool share networks, fresh draws do not; exact for a mean). `[max_n]`.

    What a pool of fewer than 4 networks cannot say of itself: each bootstrap resample of distinct networks is
    the pool, so its refits never vary (recommend's pools above P/8 hold 3 networks)."""
    pool, labels = validate_predictions(pool_log_probs, labels)
    count = pool.shape[0]
    if not 3 <= networks < count - 1:
        raise EnsplitError(f"subsets of {networks} networks need a pool of more than {networks + 1}, and at least "
                           f"3 to fit a law: the pool has {count}")
    if math.comb(count, networks) <= repeats:
        draws = [np.array(c) for c in itertools.combinations(range(count), networks)]
    else:
        rng = np.random.default_rng(seed)
        draws = [rng.choice(count, networks, replace=False) for _ in range(repeats)]
    small, _ = _small_pool_curves(pool, labels, draws, networks, mode, splits, seed)
    fit_n, n = np.arange(1, networks + 1), np.arange(1, max_n + 1)
    curves = np.array([fit_power_law(fit_n, row, objective).predict(n) for row in small])
    return curves.var(axis=0) * (count - 1) / (count - networks)


def _plane(prediction: SizePrediction, curve: np.ndarray, within_measured: bool) -> list[SplitPoint]:
    keep = set(prediction.measured_n.tolist()) if within_measured else None
    return [SplitPoint(int(n), prediction.params, float(y)) for n, y in zip(prediction.n, curve, strict=True)
            if keep is None or int(n) in keep]


def compare_splits(predictions: tuple[SizePrediction, ...], budgets: list[int] | None = None,
                   within_measured: bool = True) -> tuple[SplitComparison, ...]:
    """Predicted OMS (point-predicted plane, and per repeat) vs measured OMS for each budget.

    within_measured: predicted candidates are the measured (n, s) cells only, so the predicted split can
    be compared with what was measured; False reads the whole predicted plane (n up to max_n).
    """
    measured = [SplitPoint(int(n), p.params, float(y)) for p in predictions for n, y in zip(p.measured_n, p.measured,
                                                                                              strict=True)]
    predicted = [point for p in predictions for point in _plane(p, p.plane, within_measured)]
    repeats = min(len(p.fits) for p in predictions)
    per_repeat = [[point for p in predictions for point in _plane(p, p.fits[r].predict(p.n), within_measured)]
                  for r in range(repeats)]
    comparisons = []
    for budget in default_budgets(measured) if budgets is None else budgets:
        comparisons.append(SplitComparison(
            budget=int(budget), predicted=optimal_split(predicted, budget).best,
            measured=optimal_split(measured, budget).best,
            predicted_n_per_repeat=tuple(optimal_split(points, budget).best.n for points in per_repeat)))
    return tuple(comparisons)


def predict_memory_splits(pools: Mapping[int, ArrayLike], labels: ArrayLike, max_n: int | None = None,
                          budgets: list[int] | None = None, **options) -> PredictionResult:
    """The whole §7 protocol over member sizes: pools `{params per member: [ℓ_s, N, C]}`.

    max_n defaults to the largest pool; `options` go to `predict_size` (small_pool, fit_max_n, repeats,
    resample, mode, splits, seed, objective); `within_measured` to `compare_splits`.
    """
    if not pools:
        raise EnsplitError("prediction needs at least one pool")
    within_measured = options.pop("within_measured", True)
    max_n = max(len(p) for p in pools.values()) if max_n is None else max_n
    sizes = tuple(predict_size(pool, labels, params, max_n=max_n, **options) for params, pool in sorted(pools.items()))
    return PredictionResult(sizes=sizes, splits=compare_splits(sizes, budgets, within_measured))
