"""The one interval method: a 5–95% predictive interval for one new run (recommend's ladders and plane, the
study's bands for large ensembles).

An interval combines how well the cheap evidence pins the prediction down (the variance of bootstrap
refits, times a correction `inflation` for the bootstrap's own bias) and the noise σ of the one new run
being predicted; q is Student's t quantile, since σ is estimated from few runs:

    value ± q·√(var_bootstrap·inflation + σ² + extra²)

`extra` is a known systematic error added in quadrature (recommend's κ·octaves of extrapolation). Each
caller says what its bootstrap, σ and degrees of freedom are; the coverage of each use is tested by
simulation (tests/test_recommend_fit.py, tests/test_ladder_error.py, tests/test_intervals_coverage.py).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

LEVEL = 0.90  # two-sided: the 5th and 95th percentiles

Number = float | np.ndarray


def t_quantile(dof: int, level: float = LEVEL) -> float:
    """Student's t quantile of a two-sided `level` interval with `dof` degrees of freedom (at least 1)."""
    return float(stats.t.ppf(0.5 + level / 2, max(dof, 1)))


def half_width(spread: Number, sigma: Number, quantile: float, inflation: float = 1.0,
               extra: Number = 0.0) -> Number:
    """q·√(spread·inflation + σ² + extra²): spread is the variance of the bootstrap predictions, σ the std of
    one new run; arrays broadcast (one interval per point of a curve)."""
    return quantile * np.sqrt(spread * inflation + sigma ** 2 + extra ** 2)


def predictive_interval(centre: Number, spread: Number, sigma: Number, quantile: float, inflation: float = 1.0,
                        extra: Number = 0.0) -> tuple[Number, Number]:
    """(lower, upper) = centre ∓ `half_width(...)`: where one new run falls with probability LEVEL."""
    half = half_width(spread, sigma, quantile, inflation, extra)
    return centre - half, centre + half


__all__ = ["LEVEL", "half_width", "predictive_interval", "t_quantile"]
