"""From stored pools to the answer: CNLL(n, s), power laws, the memory split, and its prediction.

This module only assembles: the measured curves come from `ensplit.metrics.pool_curve`, the optimal split,
the CNLL_B envelope and the fits from `ensplit.analysis.memory_split`, the seed-000 §7 prediction from
`ensplit.analysis.prediction`, NLL at fixed temperatures and LE-NLL from `ensplit.analysis.temperature_laws`,
and the JSON summary from `ensplit.analysis.study_summary`. Budgets (science.md §2) are the member sizes of
the grid, so a single network exists at each; the candidates for a budget B are all measured (n, s) with
n·s ≤ B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ensplit.analysis.memory_split import BudgetSplit, SplitPoint, analyze_memory_split
from ensplit.analysis.powerlaw import Objective, PowerLaw, fit_power_law_or_none
from ensplit.analysis.prediction import Resample, SizePrediction, SplitComparison, compare_splits, predict_size
from ensplit.analysis.temperature_laws import DEFAULT_TAUS, TemperatureLaws, temperature_laws
from ensplit.metrics import PoolEstimate, pool_curve
from ensplit.metrics.pool import MIN_ENSEMBLES


@dataclass
class SizeResult:
    """One member size: the measured pool curve, the power law of its CNLL in n (`fit`) and of its
    uncalibrated NLL (τ = 1) in n (`nll_fit`)."""

    width: int | None
    params: int
    pool_size: int
    n: np.ndarray
    cnll: np.ndarray
    cnll_std: np.ndarray
    accuracy: np.ndarray
    nll: np.ndarray
    fit: PowerLaw | None
    nll_fit: PowerLaw | None = None


@dataclass
class BudgetResult:
    """The measured optimal split at one budget, the single network of that budget, and the prediction.

    advantage: single CNLL − best CNLL (> 0: splitting the budget helps). predicted_n_range: 5th and 95th
    percentile of the predicted n over the resampled small pools (how stable the chosen n is, not a predictive
    interval: an argmin over the plane has no variance formula; the CNLL bands are `SizePrediction.lower`/`upper`).
    predicted_regret: measured CNLL of the predicted split − measured CNLL of the best split (0 when exact).
    """

    budget: int
    best_n: int
    best_width: int | None
    best_params: int
    best_cnll: float
    best_accuracy: float | None
    single_cnll: float | None
    single_accuracy: float | None
    advantage: float | None
    predicted_n: int | None = None
    predicted_width: int | None = None
    predicted_cnll: float | None = None
    predicted_regret: float | None = None
    predicted_n_range: tuple[int, int] | None = None


@dataclass
class StudyAnalysis:
    """Everything `ensplit study` measures and fits. nll_fit_s: the power law of the uncalibrated NLL of
    single networks in s; temperature_laws: NLL_n(τ), its fits and LE-NLL per size; objective: the power-law
    fit objective ("nll" or "log2", the unit of every fit RMSE); resample: how the prediction's small pools
    are redrawn; pool_rule: how many networks each size got (None for pools given by the user)."""

    sizes: list[SizeResult]
    budgets: list[BudgetResult]
    fit_s: PowerLaw | None
    envelope: list[tuple[int, float]]  # corners of the CNLL_B staircase: (B = n·s, CNLL)
    fit_b: PowerLaw | None
    predictions: list[SizePrediction]
    predict_max_n: int
    temperature: str
    failed_networks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    nll_fit_s: PowerLaw | None = None
    temperature_laws: list[TemperatureLaws] = field(default_factory=list)
    objective: str = "nll"
    resample: str = "bootstrap"
    pool_rule: dict[str, Any] | None = None


def size_result(curve: list[PoolEstimate], params: int, width: int | None, pool_size: int) -> SizeResult:
    """A size's measured pool curve as arrays (its power law in n is attached by `analyze_pools`)."""
    n = np.array([e.n for e in curve])
    get = lambda key, stat="mean": np.array([getattr(e, stat)[key] for e in curve])  # noqa: E731
    return SizeResult(width, params, pool_size, n, get("cnll"), get("cnll", "std"), get("accuracy"), get("nll"), None)


def _points(sizes: list[SizeResult]) -> list[SplitPoint]:
    return [SplitPoint(int(n), s.params, float(c), float(a))
            for s in sizes for n, c, a in zip(s.n, s.cnll, s.accuracy, strict=True)]


def _budget_row(split: BudgetSplit, widths: dict[int, int | None], comparison: SplitComparison | None,
                measured: dict[tuple[int, int], float]) -> BudgetResult:
    best, single = split.best, split.single
    row = BudgetResult(split.budget, best.n, widths[best.params], best.params, best.cnll, best.accuracy,
                       None if single is None else single.cnll, None if single is None else single.accuracy,
                       split.advantage)
    if comparison is not None:
        guess = comparison.predicted
        row.predicted_n, row.predicted_width, row.predicted_cnll = guess.n, widths[guess.params], guess.cnll
        known = measured.get((guess.n, guess.params))
        row.predicted_regret = None if known is None else known - best.cnll
        if comparison.predicted_n_per_repeat:
            lo, hi = np.percentile(comparison.predicted_n_per_repeat, [5, 95])
            row.predicted_n_range = (int(round(lo)), int(round(hi)))
    return row


def _predictions(tensors: list[tuple[int | None, int, torch.Tensor]], curves: list[list[PoolEstimate]],
                 labels: torch.Tensor, mode: str, splits: int, small_pool: int, max_n: int,
                 repeats: int, resample: Resample, objective: Objective) -> list[SizePrediction]:
    """§7 prediction per size; sizes with fewer than 3 networks cannot be fitted and are left out."""
    largest = max(len(lp) for _, _, lp in tensors)
    out = []
    for (_, params, lp), curve in zip(tensors, curves, strict=True):
        pool_small = min(small_pool, len(lp))
        if pool_small < 3:
            continue
        out.append(predict_size(lp, labels, params, max_n=largest, small_pool=pool_small,
                                fit_max_n=min(max_n, pool_small), repeats=repeats, resample=resample, mode=mode,
                                splits=splits, objective=objective, measured=curve))
    return out


def missing_bands(analysis: StudyAnalysis, bootstrap: int) -> str | None:
    """A one-line note naming the member sizes whose prediction has no bands although `bootstrap`
    resamples were asked for (none had 3 distinct networks), or None."""
    sizes = [p.params for p in analysis.predictions if not p.fits]
    if not bootstrap or not sizes:
        return None
    return (f"no prediction band at member size {', '.join(f'{s:,}' for s in sizes)}: none of the {bootstrap} "
            "resamples of the small pool had 3 distinct networks; the point prediction stands alone (raise "
            "--predict-pool or --bootstrap for bands)")


def analysis_notes(analysis: StudyAnalysis, bootstrap: int) -> list[str]:
    """One-line notes on what the analysis could not do with these pools: no ensembles at all (every pool too
    small to average 3 disjoint ensembles of n = 2), or predictions without bands."""
    notes = []
    if all(len(size.n) == 1 for size in analysis.sizes):
        notes.append(f"every pool has fewer than {2 * MIN_ENSEMBLES} networks, too few to average "
                     f"{MIN_ENSEMBLES} disjoint ensembles of n = 2: only single networks are compared, so no "
                     f"memory split can win (pools of at least {2 * MIN_ENSEMBLES} networks are needed)")
    band = missing_bands(analysis, bootstrap)
    return notes + ([band] if band else [])


def analyze_pools(pools: list[tuple[int | None, int, np.ndarray | torch.Tensor]], labels: np.ndarray | torch.Tensor,
                  mode: str = "before", splits: int = 5, predict_max_n: int = 4, predict_pool: int = 6,
                  bootstrap: int = 40, failed: int = 0, *, objective: Objective = "nll",
                  resample: Resample = "bootstrap", taus: tuple[float, ...] = DEFAULT_TAUS,
                  pool_rule: dict[str, Any] | None = None) -> StudyAnalysis:
    """The whole seed-000 analysis from pools given as (width or None, params per member, log-probs [ℓ, N, C]).

    objective: power-law fit objective for every fit; resample: the prediction's small pools ("bootstrap"
    or "subsets"); taus: the temperature grid of NLL_n(τ); pool_rule: recorded as given (see StudyAnalysis).
    """
    labels_t = torch.as_tensor(np.asarray(labels)).long()
    tensors = [(w, p, torch.as_tensor(np.asarray(lp)).double()) for w, p, lp in sorted(pools, key=lambda t: t[1])]
    curves = [pool_curve(lp, labels_t, mode=mode, splits=splits) for _, _, lp in tensors]
    sizes = [size_result(curve, p, w, len(lp)) for (w, p, lp), curve in zip(tensors, curves, strict=True)]
    points = _points(sizes)
    split_analysis = analyze_memory_split(points, objective=objective)
    for size in sizes:
        size.fit = split_analysis.fit_n.get(size.params)
        size.nll_fit = fit_power_law_or_none(size.n, size.nll, objective)
    nll_fit_s = fit_power_law_or_none([s.params for s in sizes], [float(s.nll[0]) for s in sizes], objective)
    laws = [temperature_laws(lp, labels_t, p, size.n, taus, mode, splits, objective=objective)
            for (_, p, lp), size in zip(tensors, sizes, strict=True)]
    predictions = _predictions(tensors, curves, labels_t, mode, splits, predict_pool, predict_max_n, bootstrap,
                               resample, objective)
    comparisons = {}
    if predictions and len(predictions) == len(sizes):  # the predicted plane must cover every size
        comparisons = {c.budget: c for c in compare_splits(tuple(predictions),
                                                           [s.budget for s in split_analysis.splits])}
    widths = {s.params: s.width for s in sizes}
    measured = {(p.n, p.params): p.cnll for p in points}
    budgets = [_budget_row(split, widths, comparisons.get(split.budget), measured) for split in split_analysis.splits]
    envelope = [(p.total, p.cnll) for p in split_analysis.envelope]
    return StudyAnalysis(sizes, budgets, split_analysis.fit_s, envelope, split_analysis.fit_b, predictions,
                         predict_max_n, mode, failed, nll_fit_s=nll_fit_s, temperature_laws=laws,
                         objective=objective, resample=resample, pool_rule=pool_rule)


from ensplit.analysis.study_summary import summary_dict  # noqa: E402  (re-exported; it reads StudyAnalysis)

__all__ = ["BudgetResult", "SizeResult", "StudyAnalysis", "analyze_pools", "size_result", "summary_dict"]
