"""Power laws PL_m = c + b·m^a (a < 0, b > 0) fitted to metric sequences (science.md §2).

Default objective ("nll"): least squares in the metric's own units. For fixed a the model is linear in
(b, c), so a 1-D search over a with (b, c) by linear least squares (b ≥ 0 enforced) finds the global
optimum of a 3-parameter fit robustly. Option ("log2"): seed 000 eq. 6, the squared error of
log2(y − c) − log2 b − a·log2 m, with c confined to a window below min y and started from the NLL fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from ensplit.errors import EnsplitError

A_RANGE = (-4.0, -1e-4)


@dataclass(frozen=True)
class PowerLaw:
    """c + b·m^a; `rmse` in metric units (objective "nll") or log2 units (objective "log2")."""

    a: float
    b: float
    c: float
    rmse: float
    objective: str = "nll"

    def predict(self, m: np.ndarray | float) -> np.ndarray:
        return self.c + self.b * np.power(np.asarray(m, dtype=float), self.a)


def _linear_bc(m: np.ndarray, y: np.ndarray, a: float) -> tuple[float, float, float]:
    """Least-squares (b, c) for fixed a with b ≥ 0; returns (b, c, sum of squared residuals)."""
    x = np.power(m, a)
    design = np.stack([x, np.ones_like(x)], axis=1)
    (b, c), *_ = np.linalg.lstsq(design, y, rcond=None)
    if b < 0:  # the constrained optimum sits on the boundary b = 0
        b, c = 0.0, float(y.mean())
    residual = y - (c + b * x)
    return float(b), float(c), float(residual @ residual)


def _fit_nll(m: np.ndarray, y: np.ndarray) -> PowerLaw:
    grid = -np.geomspace(-A_RANGE[1], -A_RANGE[0], 200)
    losses = [_linear_bc(m, y, a)[2] for a in grid]
    i = int(np.argmin(losses))
    lo, hi = grid[min(i + 1, len(grid) - 1)], grid[max(i - 1, 0)]
    if lo > hi:
        lo, hi = hi, lo
    res = minimize_scalar(lambda a: _linear_bc(m, y, a)[2], bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10})
    a = float(res.x) if res.fun <= losses[i] else float(grid[i])
    b, c, sse = _linear_bc(m, y, a)
    return PowerLaw(a, b, c, float(np.sqrt(sse / len(y))), "nll")


def _fit_log2(m: np.ndarray, y: np.ndarray, start: PowerLaw) -> PowerLaw:
    spread = float(y.max() - y.min()) or abs(float(y.min())) or 1.0
    upper = float(y.min()) - 1e-9 * max(1.0, abs(float(y.min())))
    lower = float(y.min()) - 10.0 * spread  # a window below min y: eq. 6 degenerates as c → −∞

    def loss(params: np.ndarray) -> float:
        a, log2b, c = params
        if not lower <= c <= upper:
            return 1e12
        r = np.log2(y - c) - log2b - a * np.log2(m)
        return float(r @ r) / len(y)

    c0 = min(max(start.c, lower), upper - 1e-6 * spread)
    x0 = np.array([min(start.a, -1e-3), np.log2(max(start.b, 1e-12)), c0])
    res = minimize(loss, x0, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000})
    a, log2b, c = res.x
    return PowerLaw(float(a), float(2.0**log2b), float(c), float(np.sqrt(res.fun)), "log2")


def fit_power_law(m: np.ndarray, y: np.ndarray, objective: str = "nll") -> PowerLaw:
    """Fit c + b·m^a to points (m, y): m > 0, at least 3 distinct m, finite y."""
    m = np.asarray(m, dtype=float)
    y = np.asarray(y, dtype=float)
    if m.shape != y.shape or m.ndim != 1:
        raise EnsplitError(f"m and y must be 1-D of equal length, got {m.shape} and {y.shape}")
    if len(np.unique(m)) < 3:
        raise EnsplitError("a power law needs at least 3 distinct points")
    if (m <= 0).any() or not np.isfinite(y).all():
        raise EnsplitError("power-law points need m > 0 and finite values")
    if objective not in ("nll", "log2"):
        raise EnsplitError(f"objective must be 'nll' or 'log2', got {objective!r}")
    fit = _fit_nll(m, y)
    return fit if objective == "nll" else _fit_log2(m, y, fit)
