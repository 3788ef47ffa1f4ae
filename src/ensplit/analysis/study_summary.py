"""The machine-readable result of a memory-split study: the JSON of `ensplit study`, `analyze` and `report`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ensplit.analysis.powerlaw import PowerLaw

if TYPE_CHECKING:
    from ensplit.analysis.study_pools import StudyAnalysis
    from ensplit.analysis.temperature_laws import TemperatureLaws

RMSE_UNITS = {"nll": "nats (NLL units)", "log2": "log2 units (Lobacheva et al. eq. 6)"}


def _fit_dict(fit: PowerLaw | None) -> dict[str, float] | None:
    return None if fit is None else {"a": fit.a, "b": fit.b, "c": fit.c, "rmse": fit.rmse}


def _number(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def rises(values: np.ndarray) -> bool:
    """Whether a sequence (ordered by size) increases anywhere."""
    return bool(np.any(np.diff(np.asarray(values, dtype=np.float64)) > 0))


def largest_fitted(laws: list[TemperatureLaws]) -> TemperatureLaws | None:
    """The largest member size whose NLL_n(τ) could be fitted (at least 3 ensemble sizes), else None."""
    fitted = [law for law in laws if any(fit is not None for fit in law.fits)]
    return max(fitted, key=lambda law: law.params) if fitted else None


def _temperature_fits(laws: list[TemperatureLaws]) -> list[dict[str, Any]]:
    law = largest_fitted(laws)
    if law is None:
        return []
    return [{"tau": float(tau), "params": law.params, **_fit_dict(fit)}
            for tau, fit in zip(law.taus, law.fits, strict=True) if fit is not None]


def _optimum(law: TemperatureLaws, width: int | None) -> dict[str, Any]:
    best = law.optimum
    return {"params": law.params, "width": width, "tau": None if best is None else best[0],
            "c": None if best is None else best[1], "at_grid_edge": law.optimum_at_edge}


def summary_dict(analysis: StudyAnalysis, folder: Path | None = None) -> dict[str, Any]:
    """The machine-readable result of `ensplit study` / `ensplit analyze` / `ensplit report`."""
    sizes = analysis.sizes
    widths = {s.params: s.width for s in sizes}
    cnll = {s.params: s for s in sizes}
    return {
        "folder": None if folder is None else str(folder),
        "temperature": analysis.temperature,
        "failed_networks": analysis.failed_networks,
        "pool_rule": analysis.pool_rule,
        "fit_objective": {"objective": analysis.objective, "rmse_units": RMSE_UNITS[analysis.objective]},
        "budgets": [{**vars(b), "predicted_n_range": None if b.predicted_n_range is None else list(b.predicted_n_range)}
                    for b in analysis.budgets],
        "power_laws": {
            "n": [{"params": s.params, "width": s.width, **(_fit_dict(s.fit) or {})} for s in sizes],
            "s": _fit_dict(analysis.fit_s),
            "B": _fit_dict(analysis.fit_b),
        },
        "nll_fits": {
            "n": [{"params": s.params, "width": s.width, **(_fit_dict(s.nll_fit) or {})} for s in sizes],
            "s": _fit_dict(analysis.nll_fit_s),
            "nll_s": [float(s.nll[0]) for s in sizes],
            "nll_s_rises": rises([s.nll[0] for s in sizes]),
            "cnll_s_rises": rises([s.cnll[0] for s in sizes]),
        },
        "temperature_fits": _temperature_fits(analysis.temperature_laws),
        "temperature_optimum": [_optimum(law, widths.get(law.params)) for law in analysis.temperature_laws],
        "le_nll": [{"params": law.params, "width": widths.get(law.params), "n": law.n, "le_nll": law.le_nll,
                    "cnll": cnll[law.params].cnll, "le_nll_minus_cnll": law.le_nll - cnll[law.params].cnll,
                    "tau": law.le_tau}
                   for law in analysis.temperature_laws],
        "prediction": [{"params": p.params, "fit_on_networks": p.small_pool, "max_n": analysis.predict_max_n,
                        "resample": analysis.resample, "rmse_vs_measured": _number(p.point_rmse),
                        "rmse_resampled_mean": _number(p.rmse), "rmse_resampled_std": _number(p.rmse_std),
                        "rmse_per_n": dict(zip(("n", "rmse"), p.rmse_per_n(), strict=True)),
                        **(_fit_dict(p.fit) or {})}
                       for p in analysis.predictions],
        "sizes": [{"params": s.params, "width": s.width, "pool_size": s.pool_size, "n": s.n, "cnll": s.cnll,
                   "accuracy": s.accuracy, "nll": s.nll} for s in sizes],
    }
