"""Predicting a candidate's CNLL at a budget nobody trained, with an interval (Lobacheva et al.'s machinery).

Two kinds of evidence, both from cheap runs on budgets below the target:
- a *ladder*: replicate measurements (seeds, or pool members) of one candidate family at several budgets.
  CNLL(B) = c + b·B^a is fitted to every replicate point and read at the target (`ladder_prediction`);
- a *plane*: per member size s, the power law of CNLL in the number of members n (Lobacheva et al. §7, fitted on a
  small pool and refitted on bootstrap resamples of it), read at (n, s) for any n and, between trained
  sizes, interpolated linearly in log s (`plane_prediction`).

Intervals are predictive, for one new run at the target, and combine two parts: the spread of the
bootstrap predictions (how well the cheap runs pin the law down) and the run-to-run noise σ of one run.
With q the 95% quantile of Student's t (σ is estimated from few runs), the interval is
value ± q·√(var_bootstrap·N/(N−3) + σ²), built by `ensplit.analysis.intervals` (the study's bands use the same
function, `plane_prediction`'s σ and no inflation). Simulated ladders (tests/test_recommend_fit.py) show this covers
a fresh run about 90% of the time, where plain bootstrap percentiles of three seeds cover 80–85%.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ensplit.analysis.intervals import LEVEL, predictive_interval, t_quantile
from ensplit.analysis.powerlaw import PowerLaw, fit_power_law
from ensplit.errors import EnsplitError

Noise = tuple[float, int]  # σ of one run and its degrees of freedom


@dataclass(frozen=True)
class Prediction:
    """A predicted CNLL: point value, 5–95% predictive interval, and (ladders) the law, its bootstrap refits,
    the noise σ, the bootstrap inflation and the t quantile the interval was built with."""

    value: float
    lower: float
    upper: float
    law: PowerLaw | None = None
    replicate_laws: tuple[PowerLaw, ...] = ()
    sigma: float = 0.0
    inflation: float = 1.0
    quantile: float = 1.645
    model_error: float = 0.0  # κ: the law's own error per octave of extrapolation, CNLL
    top: float = 0.0  # the largest budget it was fitted on (extrapolation is measured from there)

    def extrapolation_error(self, budgets: np.ndarray | float) -> np.ndarray:
        """κ times the octaves from the largest fitted budget (0 within the ladder)."""
        octaves = np.log2(np.maximum(np.asarray(budgets, dtype=np.float64), self.top) / self.top) if self.top else 0.0
        return self.model_error * octaves

    @property
    def interval(self) -> tuple[float, float]:
        return (self.lower, self.upper)

    def contains(self, measured: float) -> bool:
        return self.lower <= measured <= self.upper

    def band(self, budgets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same interval at other budgets (a ladder's band, for plots): `[len(budgets)]` each."""
        budgets = np.asarray(budgets, dtype=np.float64)
        if self.law is None or not self.replicate_laws:
            return np.full(budgets.shape, np.nan), np.full(budgets.shape, np.nan)
        spread = np.stack([law.predict(budgets) for law in self.replicate_laws]).var(axis=0)
        return predictive_interval(self.law.predict(budgets), spread, self.sigma, self.quantile, self.inflation,
                                   self.extrapolation_error(budgets))


def _points(values: Mapping[float, Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    budgets = np.concatenate([np.full(len(v), b, dtype=np.float64) for b, v in values.items()])
    return budgets, np.concatenate([np.asarray(v, dtype=np.float64) for v in values.values()])


def ladder_prediction(values: Mapping[float, Sequence[float]], target: float, repeats: int = 100,
                      seed: int = 0, noise: Noise | None = None, model_error: float = 0.0) -> Prediction:
    """CNLL at `target` from replicate measurements `{budget: [CNLL of each replicate]}` (≥ 3 budgets).

    The law is fitted to every point. Its spread at `target` comes from a bootstrap: with its own noise, a
    residual bootstrap (residuals scaled by √(N/(N−3)) for the three fitted parameters, resampled onto the
    fitted values, the law refitted `repeats` times; σ² the corrected mean squared residual, N − 3 degrees of
    freedom); with `noise` = (σ, degrees of freedom) pooled over several ladders (`ensplit.analysis.ladder_error`,
    for ladders of one run per budget, which have no residuals of their own), a parametric one (N(0, σ²) draws
    onto the fitted values). `model_error` (κ, CNLL per octave) is how far the law itself misses beyond the
    noise when it extrapolates; the interval adds (κ·d)², d the octaves from the largest budget to `target`.
    """
    values = {float(b): list(v) for b, v in values.items() if len(v)}
    if len(values) < 3:
        raise EnsplitError(f"a ladder needs measurements at 3 budgets at least, got {len(values)}")
    budgets, observed = _points(values)
    law = fit_power_law(budgets, observed, c_min=0.0)
    fitted = law.predict(budgets)
    count = observed.size
    rng = np.random.default_rng(seed)
    if noise is None:
        inflation = count / (count - 3) if count > 3 else 1.0
        residuals = (observed - fitted) * np.sqrt(inflation)
        sigma, dof = float(np.sqrt(np.mean(residuals ** 2))), count - 3
        draws = [rng.choice(residuals, size=count, replace=True) for _ in range(repeats)]
    else:
        (sigma, dof), inflation = noise, 1.0
        draws = [rng.normal(0.0, sigma, size=count) for _ in range(repeats)]
    laws = tuple(fit_power_law(budgets, fitted + d, c_min=0.0) for d in draws)
    point = float(law.predict(target))
    spread = float(np.var([r.predict(target) for r in laws])) if laws else 0.0
    quantile = t_quantile(dof)
    octaves = max(0.0, float(np.log2(target / budgets.max())))
    lower, upper = predictive_interval(point, spread, sigma, quantile, inflation, model_error * octaves)
    return Prediction(point, lower, upper, law, laws, sigma, inflation, quantile, model_error,
                      float(budgets.max()))


@dataclass(frozen=True)
class SizeLaw:
    """CNLL_n at one member size s (params): the point law, its bootstrap refits, and the spread (std) of one
    network's CNLL over `networks` networks. `fit_variance` (n = 1, 2, …; the last value beyond) is the variance
    of the point law's prediction where its refits cannot say it: a pool of fewer than 4 networks, whose every
    bootstrap resample of distinct networks is the pool itself (`ensplit.analysis.prediction.subset_fit_variance`).
    """

    params: int
    law: PowerLaw
    replicates: tuple[PowerLaw, ...]
    single_std: float
    networks: int = 6
    fit_variance: tuple[float, ...] = ()

    def variance(self, members: int) -> float:
        """`fit_variance` at `members` (0 when there is none)."""
        if not self.fit_variance:
            return 0.0
        return float(self.fit_variance[min(members, len(self.fit_variance)) - 1])


def log_weights(sizes: Sequence[float], params: float) -> dict[int, float]:
    """The weight of each of `sizes` (by index) in the value at `params`, linear in log s between the two sizes
    around it (extrapolated from the nearest two; weights may then be negative or above 1)."""
    if len(sizes) == 1:
        return {0: 1.0}
    logs = np.log(np.asarray(sizes, dtype=np.float64))
    order = np.argsort(logs)
    ordered = logs[order]
    right = int(np.clip(np.searchsorted(ordered, np.log(params)), 1, len(ordered) - 1))
    left = right - 1
    weight = float((np.log(params) - ordered[left]) / (ordered[right] - ordered[left]))
    return {int(order[left]): 1.0 - weight, int(order[right]): weight}


def interpolate_log(sizes: Sequence[float], values: Sequence[float], params: float) -> float:
    """Linear in log s between the two sizes around `params` (extrapolated from the nearest two)."""
    return float(sum(w * float(values[i]) for i, w in log_weights(sizes, params).items()))


def pooled_single_noise(laws: Sequence[SizeLaw]) -> Noise | None:
    """One network's CNLL spread pooled over the pools, Σ(networks − 1)·s² / Σ(networks − 1), with its
    degrees of freedom (None when no pool has two networks): one estimate from every network, where a
    3-network pool's own has 2 degrees of freedom. On MNIST-1D the spread is about the same at every size
    (0.015–0.025 over 14 networks at each of five widths, benchmarks/results/small_pool_coverage.md)."""
    usable = [(law.networks - 1, law.single_std) for law in laws if law.networks > 1 and np.isfinite(law.single_std)]
    dof = sum(d for d, _ in usable)
    if dof == 0:
        return None
    return float(np.sqrt(sum(d * s ** 2 for d, s in usable) / dof)), int(dof)


def plane_prediction(laws: Sequence[SizeLaw], members: int, params: int, noise: Noise | None = None) -> Prediction:
    """CNLL of an ensemble of `members` networks of `params` parameters each, from the per-size laws.

    The bootstrap spread is that of the interpolated refits (a law without refits enters with its point law),
    plus each law's own `fit_variance` times its interpolation weight squared (the pools are trained apart, so
    their errors are independent); the noise of one new ensemble is one network's spread divided by √n: with
    `noise` = (σ, degrees of freedom) pooled over the pools (`pooled_single_noise`), else the spread at that size
    with (networks − 1) degrees of freedom of the smaller of the two pools it is read from.
    """
    if len(laws) < 2:
        raise EnsplitError("the (n, s) plane needs power laws at two member sizes at least")
    sizes = [law.params for law in laws]
    weights = log_weights(sizes, params)
    point = interpolate_log(sizes, [float(law.law.predict(members)) for law in laws], params)
    repeats = min((len(law.replicates) for law in laws if law.replicates), default=0)
    replicates = [interpolate_log(sizes, [float((law.replicates[r] if law.replicates else law.law).predict(members))
                                          for law in laws], params) for r in range(repeats)]
    spread = float(np.var(replicates)) if replicates else 0.0
    spread += sum(w ** 2 * laws[i].variance(members) for i, w in weights.items())
    if noise is None:
        sigma = interpolate_log(sizes, [law.single_std for law in laws], params) / np.sqrt(members)
        quantile = t_quantile(min(laws[i].networks for i, w in weights.items() if w) - 1)  # from the laws it reads
    else:
        sigma, quantile = noise[0] / np.sqrt(members), t_quantile(noise[1])
    lower, upper = predictive_interval(point, spread, sigma, quantile)
    return Prediction(point, lower, upper, None, (), sigma, 1.0, quantile)


__all__ = ["LEVEL", "Noise", "Prediction", "SizeLaw", "interpolate_log", "ladder_prediction", "log_weights",
           "plane_prediction", "pooled_single_noise"]
