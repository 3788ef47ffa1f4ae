"""What one ladder cannot tell about itself, pooled over several (the cheap-run ladders of `ensplit recommend`).

- **Noise**: a ladder of one run per budget has no residuals to estimate one run's spread σ from (three
  budgets fit the three-parameter law exactly). Pooled over ladders, σ² = Σ squared residuals / Σ (N − 3),
  with Σ (N − 3) degrees of freedom.
- **Model error**: a power law fitted far below the budget can be wrong beyond its noise (on MNIST-1D the
  CNLL of small networks bends down late, benchmarks/results/recommend_design.md). A backtest measures it
  inside the cheap runs: each ladder with 4 budgets or more is fitted without its largest budget and predicts
  it; the error beyond what the backtest's own interval expects, per octave of extrapolation, pooled over
  ladders, is κ. `ladder_prediction` then widens each interval by κ per octave beyond the ladder's top.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ensplit.analysis.extrapolation import Noise, _points, ladder_prediction
from ensplit.analysis.powerlaw import fit_power_law

Ladder = Mapping[float, Sequence[float]]


def pooled_noise(ladders: Iterable[Ladder]) -> Noise | None:
    """(σ, degrees of freedom) of one run, pooled over the ladders with more points than parameters; None
    when none has."""
    squares, dof = 0.0, 0
    for ladder in ladders:
        ladder = {float(b): list(v) for b, v in ladder.items() if len(v)}
        if len(ladder) < 3:
            continue
        budgets, observed = _points(ladder)
        if observed.size <= 3:
            continue
        law = fit_power_law(budgets, observed, c_min=0.0)
        squares += float(np.sum((observed - law.predict(budgets)) ** 2))
        dof += observed.size - 3
    return None if dof == 0 else (float(np.sqrt(squares / dof)), dof)


def backtest(ladder: Ladder, noise: Noise | None, repeats: int = 50, seed: int = 0) -> tuple[float, float,
                                                                                               float] | None:
    """Fit the ladder without its largest budget and predict that budget's mean: (error, the backtest's own
    predictive std for that mean, octaves extrapolated); None below 4 budgets."""
    ladder = {float(b): list(v) for b, v in ladder.items() if len(v)}
    if len(ladder) < 4:
        return None
    top = max(ladder)
    rest = {b: v for b, v in ladder.items() if b != top}
    prediction = ladder_prediction(rest, top, repeats, seed, noise)
    observed = float(np.mean(ladder[top]))
    own_std = (prediction.upper - prediction.value) / prediction.quantile  # √(spread + σ²), for one run
    sigma = prediction.sigma
    # the backtest compares the mean of the top budget's runs, whose noise is σ²/runs, not σ²
    std = float(np.sqrt(max(own_std ** 2 - sigma ** 2 + sigma ** 2 / len(ladder[top]), 0.0)))
    return observed - prediction.value, std, float(np.log2(top / max(rest)))


def model_error(ladders: Iterable[Ladder], noise: Noise | None, repeats: int = 50, seed: int = 0) -> float:
    """κ, CNLL per octave: κ² = Σ (error² − expected²) / Σ octaves² over the backtested ladders, the squared
    errors beyond what the backtests' own intervals expect (0 when no ladder has 4 budgets, or when the errors
    are within the noise: a well-specified law gets κ ≈ 0, tests/test_ladder_error.py)."""
    excess, octaves2 = 0.0, 0.0
    for ladder in ladders:
        result = backtest(ladder, noise, repeats, seed)
        if result is not None:
            error, std, octaves = result
            excess += error ** 2 - std ** 2
            octaves2 += octaves ** 2
    return float(np.sqrt(max(excess, 0.0) / octaves2)) if octaves2 else 0.0


__all__ = ["backtest", "model_error", "pooled_noise"]
