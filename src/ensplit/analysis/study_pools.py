"""From stored pools to the answer: CNLL(n, s), power laws, the memory split, and its prediction.

This module only assembles: the measured curves come from `ensplit.metrics.pool_curve`, the optimal split,
the CNLL_B envelope and the fits from `ensplit.analysis.memory_split`, and the seed-000 §7 prediction from
`ensplit.analysis.prediction`. Budgets (science.md §2) are the member sizes of the grid, so a single network
exists at each; the candidates for a budget B are all measured (n, s) with n·s ≤ B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ensplit.analysis.memory_split import BudgetSplit, SplitPoint, analyze_memory_split
from ensplit.analysis.powerlaw import PowerLaw
from ensplit.analysis.prediction import SizePrediction, SplitComparison, compare_splits, predict_size
from ensplit.metrics import PoolEstimate, pool_curve


@dataclass
class SizeResult:
    """One member size: the measured pool curve and its power law in n."""

    width: int | None
    params: int
    pool_size: int
    n: np.ndarray
    cnll: np.ndarray
    cnll_std: np.ndarray
    accuracy: np.ndarray
    nll: np.ndarray
    fit: PowerLaw | None


@dataclass
class BudgetResult:
    """The measured optimal split at one budget, the single network of that budget, and the prediction.

    advantage: single CNLL − best CNLL (> 0: splitting the budget helps). predicted_n_range: 5th and 95th
    percentile of the predicted n over the resampled small pools. predicted_regret: measured CNLL of the
    predicted split − measured CNLL of the best split (0 when the prediction is exact).
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
                 repeats: int) -> list[SizePrediction]:
    """§7 prediction per size; sizes with fewer than 3 networks cannot be fitted and are left out."""
    largest = max(len(lp) for _, _, lp in tensors)
    out = []
    for (_, params, lp), curve in zip(tensors, curves, strict=True):
        pool_small = min(small_pool, len(lp))
        if pool_small < 3:
            continue
        out.append(predict_size(lp, labels, params, max_n=largest, small_pool=pool_small,
                                fit_max_n=min(max_n, pool_small), repeats=repeats, mode=mode, splits=splits,
                                measured=curve))
    return out


def analyze_pools(pools: list[tuple[int | None, int, np.ndarray | torch.Tensor]], labels: np.ndarray | torch.Tensor,
                  mode: str = "before", splits: int = 5, predict_max_n: int = 4, predict_pool: int = 6,
                  bootstrap: int = 40, failed: int = 0) -> StudyAnalysis:
    """The whole seed-000 analysis from pools given as (width or None, params per member, log-probs [ℓ, N, C])."""
    labels_t = torch.as_tensor(np.asarray(labels)).long()
    tensors = [(w, p, torch.as_tensor(np.asarray(lp)).double()) for w, p, lp in sorted(pools, key=lambda t: t[1])]
    curves = [pool_curve(lp, labels_t, mode=mode, splits=splits) for _, _, lp in tensors]
    sizes = [size_result(curve, p, w, len(lp)) for (w, p, lp), curve in zip(tensors, curves, strict=True)]
    points = _points(sizes)
    split_analysis = analyze_memory_split(points)
    for size in sizes:
        size.fit = split_analysis.fit_n.get(size.params)
    predictions = _predictions(tensors, curves, labels_t, mode, splits, predict_pool, predict_max_n, bootstrap)
    comparisons = {}
    if predictions and len(predictions) == len(sizes):  # the predicted plane must cover every size
        comparisons = {c.budget: c for c in compare_splits(tuple(predictions),
                                                           [s.budget for s in split_analysis.splits])}
    widths = {s.params: s.width for s in sizes}
    measured = {(p.n, p.params): p.cnll for p in points}
    budgets = [_budget_row(split, widths, comparisons.get(split.budget), measured) for split in split_analysis.splits]
    envelope = [(p.total, p.cnll) for p in split_analysis.envelope]
    return StudyAnalysis(sizes, budgets, split_analysis.fit_s, envelope, split_analysis.fit_b, predictions,
                         predict_max_n, mode, failed)


def _fit_dict(fit: PowerLaw | None) -> dict[str, float] | None:
    return None if fit is None else {"a": fit.a, "b": fit.b, "c": fit.c, "rmse": fit.rmse}


def _number(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def summary_dict(analysis: StudyAnalysis, folder: Path | None = None) -> dict[str, Any]:
    """The machine-readable result of `ensplit study` / `ensplit analyze`."""
    return {
        "folder": None if folder is None else str(folder),
        "temperature": analysis.temperature,
        "failed_networks": analysis.failed_networks,
        "budgets": [{**vars(b), "predicted_n_range": None if b.predicted_n_range is None else list(b.predicted_n_range)}
                    for b in analysis.budgets],
        "power_laws": {
            "n": [{"params": s.params, "width": s.width, **(_fit_dict(s.fit) or {})} for s in analysis.sizes],
            "s": _fit_dict(analysis.fit_s),
            "B": _fit_dict(analysis.fit_b),
        },
        "prediction": [{"params": p.params, "fit_on_networks": p.small_pool, "max_n": analysis.predict_max_n,
                        "rmse_vs_measured": _number(p.point_rmse), "rmse_resampled_mean": _number(p.rmse),
                        "rmse_resampled_std": _number(p.rmse_std), **(_fit_dict(p.fit) or {})}
                       for p in analysis.predictions],
        "sizes": [{"params": s.params, "width": s.width, "pool_size": s.pool_size, "n": s.n, "cnll": s.cnll,
                   "accuracy": s.accuracy} for s in analysis.sizes],
    }
