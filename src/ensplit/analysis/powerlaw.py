"""Power laws PL_m = c + b·m^a (a < 0, b > 0) fitted to a measured sequence (science.md §2, Lobacheva et al. §3).

Default objective "nll": least squares in the units of y (NLL). The model is linear in (b, c) for fixed a,
so a is found by a 1-D search (a log-spaced grid over |a|, then bounded Brent refinement) and (b, c) by
linear least squares at each a; b > 0 is enforced (b ≤ 0 collapses to the constant fit). RMSE in y units.

Option "log2": Lobacheva et al. eq. 6, (1/M) Σ (log2(ŷ_m − c) − log2 b − a·log2 m)². For fixed c it is a linear
regression of log2(ŷ − c) on log2 m; c is searched locally from the NLL-space fit inside the window
[min ŷ − c_window·span, min ŷ − 1e-6·span] (span = max ŷ − min ŷ), because taken literally the objective
is degenerate (c → −∞ drives it to 0). RMSE in log2 units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize, minimize_scalar

from ensplit.errors import EnsplitError

Objective = Literal["nll", "log2"]
A_RANGE = (-4.0, -1e-3)
_GRID_POINTS = 161


@dataclass(frozen=True)
class PowerLaw:
    """y(m) = c + b·m^a; rmse of the fit in the units of its objective ("nll": y units, "log2": log2 units)."""

    a: float
    b: float
    c: float
    rmse: float
    objective: str = "nll"

    def predict(self, m: ArrayLike) -> np.ndarray:
        """c + b·m^a at m (any shape, m > 0)."""
        return self.c + self.b * np.power(np.asarray(m, dtype=np.float64), self.a)


def _check(m: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    m, y = np.asarray(m, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if m.shape != y.shape:
        raise EnsplitError(f"power-law fit needs as many m as y values, got {m.size} and {y.size}")
    if np.unique(m).size < 3:
        raise EnsplitError(f"power-law fit needs at least 3 distinct m values, got {np.unique(m).size}")
    if not (np.isfinite(m).all() and np.isfinite(y).all()):
        raise EnsplitError("power-law fit got NaN or infinite values")
    if (m <= 0).any():
        raise EnsplitError("power-law fit needs m > 0")
    return m, y


def _linear_fit(scaled_m: np.ndarray, y: np.ndarray, a: float,
                c_min: float | None = None) -> tuple[float, float, float]:
    """(b', c, rss) of y ≈ c + b'·x^a by least squares with b' ≥ 0 (and c ≥ c_min), x = m / m_ref."""
    basis = np.power(scaled_m, a)
    centred = basis - basis.mean()
    denominator = float(centred @ centred)
    slope = float(centred @ (y - y.mean())) / denominator if denominator > 0 else 0.0
    slope = max(slope, 0.0)
    intercept = float(y.mean() - slope * basis.mean())
    if c_min is not None and intercept < c_min:  # the optimum lies on c = c_min (a convex problem)
        intercept = c_min
        slope = max(float(basis @ (y - c_min)) / float(basis @ basis), 0.0)
    residual = y - intercept - slope * basis
    return slope, intercept, float(residual @ residual)


def _grid_rss(scaled_m: np.ndarray, y: np.ndarray, grid: np.ndarray, c_min: float | None = None) -> np.ndarray:
    """`_linear_fit(scaled_m, y, a, c_min)[2]` for every a of `grid` at once: `[len(grid)]`."""
    basis = np.power(scaled_m[None, :], grid[:, None])
    centred = basis - basis.mean(axis=1, keepdims=True)
    denominator = np.einsum("gi,gi->g", centred, centred)
    target = y - y.mean()
    safe = np.where(denominator > 0, denominator, 1.0)
    slope = np.where(denominator > 0, centred @ target / safe, 0.0).clip(min=0.0)
    intercept = y.mean() - slope * basis.mean(axis=1)
    if c_min is not None:
        bounded = intercept < c_min
        pinned = (np.einsum("gi,i->g", basis, y - c_min) / np.einsum("gi,gi->g", basis, basis)).clip(min=0.0)
        slope = np.where(bounded, pinned, slope)
        intercept = np.where(bounded, c_min, intercept)
    residual = y[None, :] - intercept[:, None] - slope[:, None] * basis
    return np.einsum("gi,gi->g", residual, residual)


def _fit_nll(m: np.ndarray, y: np.ndarray, a_range: tuple[float, float], c_min: float | None = None) -> PowerLaw:
    reference = float(m.min())  # m / m_ref ≥ 1 keeps x^a in (0, 1] for any a: well conditioned
    scaled = m / reference
    low, high = a_range
    grid = -np.geomspace(-high, -low, _GRID_POINTS)[::-1]  # ascending from `low` to `high`
    rss = _grid_rss(scaled, y, grid, c_min)
    best = int(rss.argmin())
    bracket = (grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    refined = minimize_scalar(lambda a: _linear_fit(scaled, y, a, c_min)[2], bounds=bracket, method="bounded",
                              options={"xatol": 1e-10})
    a = float(refined.x) if refined.fun <= rss[best] else float(grid[best])
    slope, intercept, residual = _linear_fit(scaled, y, a, c_min)
    return PowerLaw(a=a, b=slope * reference ** (-a), c=intercept, rmse=float(np.sqrt(residual / m.size)),
                    objective="nll")


def _log2_regression(log_m: np.ndarray, y: np.ndarray, c: float) -> tuple[float, float, float]:
    """(a, log2 b, mean squared residual) of log2(y − c) ≈ log2 b + a·log2 m."""
    target = np.log2(y - c)
    slope, intercept = np.polyfit(log_m, target, 1)
    residual = target - intercept - slope * log_m
    return float(slope), float(intercept), float(np.mean(residual ** 2))


def _fit_log2(m: np.ndarray, y: np.ndarray, start: PowerLaw, c_window: float) -> PowerLaw:
    log_m = np.log2(m)
    span = float(y.max() - y.min()) or max(abs(float(y.min())), 1.0) * 1e-3
    upper = float(y.min()) - 1e-6 * span
    lower = float(y.min()) - c_window * span
    c0 = min(max(start.c, lower), upper)
    result = minimize(lambda c: _log2_regression(log_m, y, float(c[0]))[2], x0=[c0], method="L-BFGS-B",
                      bounds=[(lower, upper)], options={"ftol": 1e-15, "gtol": 1e-12})
    c = float(result.x[0])
    a, log_b, loss = _log2_regression(log_m, y, c)
    return PowerLaw(a=a, b=float(2.0 ** log_b), c=c, rmse=float(np.sqrt(loss)), objective="log2")


def fit_power_law(m: ArrayLike, y: ArrayLike, objective: Objective = "nll",
                  a_range: tuple[float, float] = A_RANGE, c_window: float = 1.0,
                  c_min: float | None = None) -> PowerLaw:
    """Fit y ≈ c + b·m^a to points (m_i, y_i) (at least 3, m > 0); see the module doc for the objectives.

    a is searched in `a_range` (both ends negative); `c_window` bounds c for "log2" in units of the span of y;
    `c_min` bounds the asymptote from below in the "nll" objective (a CNLL is never below 0).
    """
    m, y = _check(m, y)
    low, high = a_range
    if not low < high < 0:
        raise EnsplitError(f"a_range must satisfy low < high < 0, got {a_range}")
    nll_fit = _fit_nll(m, y, (low, high), c_min)
    if objective == "nll":
        return nll_fit
    if objective == "log2":
        return _fit_log2(m, y, nll_fit, c_window)
    raise EnsplitError(f"power-law objective must be 'nll' or 'log2', got {objective!r}")


def fit_power_law_or_none(m: ArrayLike, y: ArrayLike, objective: Objective = "nll", minimum: int = 3,
                          **options: Any) -> PowerLaw | None:
    """`fit_power_law(m, y, objective, **options)`, or None when m has fewer than `minimum` distinct values."""
    if np.unique(np.asarray(m, dtype=np.float64)).size < minimum:
        return None
    return fit_power_law(m, y, objective, **options)
