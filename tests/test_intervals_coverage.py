"""Coverage of the study's bands by simulation: pools of noisy networks whose fresh ensembles can be scored.

Each trial draws a small pool of 6 networks and, independently, one fresh ensemble of n networks from the same
model (`synthetic.synthetic_pool`: a shared per-object signal plus each network's own noise, a model whose CNLL_n
follows a power law in n closely). The study's 5–95% band at n must hold the fresh ensemble's CNLL about 90% of
the time; the old band, percentiles of the resampled curves, is shown to hold it far less often.
"""

from __future__ import annotations

import numpy as np
import pytest

from ensplit.analysis.prediction import predict_size
from ensplit.metrics import cnll_ttcv
from synthetic import synthetic_pool

NETWORKS = 6
TARGETS = np.array([8, 16])  # beyond the fit on n ≤ 4
OBJECTS, NOISE = 300, 0.6


def _trial(trial: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, new band hit, old band hit) at each target n, for one small pool and one fresh ensemble."""
    pool, labels = synthetic_pool(NETWORKS, objects=OBJECTS, noise=NOISE, seed=trial)
    fresh, _ = synthetic_pool(int(TARGETS.max()), objects=OBJECTS, noise=NOISE, seed=100_000 + trial)
    truth = np.array([float(cnll_ttcv(fresh[:n], labels, mode="after", splits=1)) for n in TARGETS])
    result = predict_size(pool, labels, 1, max_n=int(TARGETS.max()), small_pool=NETWORKS, repeats=20,
                          mode="after", splits=1, seed=trial, measured=[])
    at = TARGETS - 1
    new = (result.lower[at] <= truth) & (truth <= result.upper[at])
    curves = np.stack([fit.predict(TARGETS) for fit in result.fits])
    old_lower, old_upper = np.percentile(curves, 5, axis=0), np.percentile(curves, 95, axis=0)
    return truth, new, (old_lower <= truth) & (truth <= old_upper)


@pytest.mark.slow
def test_study_bands_cover_a_fresh_ensemble_at_about_the_nominal_rate():
    trials = [_trial(t) for t in range(100)]
    new = np.mean([t[1] for t in trials], axis=0)
    old = np.mean([t[2] for t in trials], axis=0)
    message = f"n = {TARGETS.tolist()}: predictive band covers {new.tolist()}, bootstrap percentiles {old.tolist()}"
    assert 0.85 <= new.mean() <= 0.97, message
    assert np.all(new >= 0.82), message
    assert np.all(old <= new - 0.1), message
