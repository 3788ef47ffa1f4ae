"""From stored pools to the answer: CNLL(n, s), power laws, the memory split, and its prediction.

Budgets (science.md §2): the candidates for a budget B are the ensembles (n, s) of the grid with n·s ≤ B;
for each member size s the largest measured n with n·s ≤ B is taken. The budgets reported in the summary
are the member sizes of the grid (so a single network exists at each), and CNLL_B is the lower envelope
over a geometric grid of budgets up to the largest n·s measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ensplit.analysis.powerlaw import PowerLaw, fit_power_law
from ensplit.metrics import pool_curve


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
    budget: int
    best_n: int
    best_width: int | None
    best_params: int
    best_cnll: float
    best_accuracy: float
    single_cnll: float | None
    single_accuracy: float | None
    advantage: float | None  # single CNLL − best CNLL (> 0: splitting the budget helps)
    predicted_n: int | None = None
    predicted_width: int | None = None


@dataclass
class PredictionResult:
    """Seed 000 §7: CNLL_n fitted on n ≤ max_n from `networks` networks, extrapolated."""

    params: int
    networks: int
    fit: PowerLaw | None
    grid: np.ndarray
    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    rmse: float | None  # against the measured curve for n > max_n


@dataclass
class StudyAnalysis:
    sizes: list[SizeResult]
    budgets: list[BudgetResult]
    fit_s: PowerLaw | None
    envelope: list[tuple[int, float]]
    fit_b: PowerLaw | None
    predictions: list[PredictionResult]
    predict_max_n: int
    temperature: str
    failed_networks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _safe_fit(m: np.ndarray, y: np.ndarray) -> PowerLaw | None:
    """A power law needs at least 3 distinct points; a failed fit is reported as absent, not invented."""
    if len(m) < 3 or len(np.unique(m)) < 3:
        return None
    try:
        return fit_power_law(np.asarray(m, float), np.asarray(y, float))
    except Exception:  # noqa: BLE001 - degenerate data (e.g. flat curves) leave the fit out of the report
        return None


def size_result(pool: torch.Tensor, labels: torch.Tensor, params: int, width: int | None, mode: str,
                splits: int, seed: int = 0) -> SizeResult:
    curve = pool_curve(pool, labels, mode=mode, splits=splits, seed=seed)
    n = np.array([e.n for e in curve])
    get = lambda key, stat="mean": np.array([getattr(e, stat)[key] for e in curve])  # noqa: E731
    return SizeResult(width, params, int(pool.shape[0]), n, get("cnll"), get("cnll", "std"), get("accuracy"),
                      get("nll"), _safe_fit(n, get("cnll")))


def budget_candidates(sizes: list[SizeResult], budget: float) -> list[tuple[int, SizeResult, int]]:
    """(n, size, index into the size's curve) of the largest measured n with n·s ≤ budget, per size."""
    out = []
    for size in sizes:
        fits = np.nonzero(size.n * size.params <= budget)[0]
        if len(fits):
            out.append((int(size.n[fits[-1]]), size, int(fits[-1])))
    return out


def memory_split_table(sizes: list[SizeResult]) -> list[BudgetResult]:
    rows = []
    for single in sizes:
        candidates = budget_candidates(sizes, single.params)
        n, best, i = min(candidates, key=lambda c: c[1].cnll[c[2]])
        single_cnll, single_acc = float(single.cnll[0]), float(single.accuracy[0])
        rows.append(BudgetResult(single.params, n, best.width, best.params, float(best.cnll[i]),
                                 float(best.accuracy[i]), single_cnll, single_acc,
                                 single_cnll - float(best.cnll[i])))
    return rows


def lower_envelope(sizes: list[SizeResult], points: int = 24) -> list[tuple[int, float]]:
    """CNLL_B: the best CNLL reachable with at most B parameters, on a geometric grid of B."""
    lo = min(s.params for s in sizes)
    hi = max(float(s.params * s.n.max()) for s in sizes)
    out = []
    for b in np.unique(np.geomspace(lo, hi, points).astype(np.int64)):
        candidates = budget_candidates(sizes, float(b))
        if candidates:
            out.append((int(b), min(float(s.cnll[i]) for _, s, i in candidates)))
    return out


def predict_size(pool: torch.Tensor, labels: torch.Tensor, params: int, measured: SizeResult, mode: str,
                 splits: int, networks: int, max_n: int, bootstrap: int, seed: int = 0) -> PredictionResult:
    """Fit CNLL_n on n ≤ max_n from `networks` networks, predict up to the pool size, bootstrap the band
    by drawing other sets of `networks` distinct networks from the pool."""
    networks = min(networks, pool.shape[0])
    sizes = list(range(1, min(max_n, networks) + 1))
    grid = np.arange(1, max(int(measured.n.max()), max_n) + 1)

    def fit_on(index: torch.Tensor) -> PowerLaw | None:
        curve = pool_curve(pool[index], labels, sizes=sizes, min_ensembles=1, mode=mode, splits=splits, seed=seed)
        return _safe_fit(np.array([e.n for e in curve]), np.array([e.mean["cnll"] for e in curve]))

    point = fit_on(torch.arange(networks))
    generator = torch.Generator().manual_seed(seed)
    draws = [fit_on(torch.randperm(pool.shape[0], generator=generator)[:networks]) for _ in range(bootstrap)]
    curves = np.array([f.predict(grid) for f in draws if f is not None]) if bootstrap else np.empty((0, len(grid)))
    median = point.predict(grid) if point is not None else np.full(len(grid), np.nan)
    lower = np.percentile(curves, 5, axis=0) if len(curves) else median
    upper = np.percentile(curves, 95, axis=0) if len(curves) else median
    beyond = measured.n > max_n
    rmse = None
    if point is not None and beyond.any():
        rmse = float(np.sqrt(np.mean((point.predict(measured.n[beyond]) - measured.cnll[beyond]) ** 2)))
    return PredictionResult(params, networks, point, grid, median, lower, upper, rmse)


def attach_predicted_splits(budgets: list[BudgetResult], sizes: list[SizeResult],
                            predictions: list[PredictionResult]) -> None:
    """Predicted optimal split per budget, from the fitted small-ensemble power laws alone."""
    by_params = {p.params: p for p in predictions if p.fit is not None}
    for row in budgets:
        best = None
        for size in sizes:
            if size.params in by_params and size.params <= row.budget:
                n = row.budget // size.params
                value = float(by_params[size.params].fit.predict(np.array([n]))[0])
                if best is None or value < best[0]:
                    best = (value, int(n), size.width)
        if best is not None:
            row.predicted_n, row.predicted_width = best[1], best[2]


def analyze_pools(pools: list[tuple[int | None, int, np.ndarray | torch.Tensor]], labels: np.ndarray | torch.Tensor,
                  mode: str = "before", splits: int = 5, predict_max_n: int = 4, predict_pool: int = 6,
                  bootstrap: int = 40, failed: int = 0) -> StudyAnalysis:
    """The whole seed-000 analysis from pools given as (width or None, params per member, log-probs [ℓ, N, C])."""
    labels_t = torch.as_tensor(np.asarray(labels)).long()
    tensors = [(w, p, torch.as_tensor(np.asarray(lp)).double()) for w, p, lp in sorted(pools, key=lambda t: t[1])]
    sizes = [size_result(lp, labels_t, p, w, mode, splits) for w, p, lp in tensors]
    budgets = memory_split_table(sizes)
    params = np.array([s.params for s in sizes], float)
    fit_s = _safe_fit(params, np.array([s.cnll[0] for s in sizes]))
    envelope = lower_envelope(sizes)
    fit_b = _safe_fit(np.array([b for b, _ in envelope], float), np.array([c for _, c in envelope]))
    predictions = [predict_size(lp, labels_t, p, s, mode, splits, predict_pool, predict_max_n, bootstrap)
                   for (w, p, lp), s in zip(tensors, sizes, strict=True)]
    attach_predicted_splits(budgets, sizes, predictions)
    return StudyAnalysis(sizes, budgets, fit_s, envelope, fit_b, predictions, predict_max_n, mode, failed)


def analyze_store(store: Any, config: Any) -> StudyAnalysis:
    """Analyse every width of a study folder's store (failed networks are left out and counted)."""
    pools = []
    for width in sorted(config.widths):
        log_probs, params = store.pool(width)
        if len(log_probs):
            pools.append((width, params, log_probs))
    failed = len(store.networks("pool", status="failed"))
    return analyze_pools(pools, store.labels(), config.temperature, config.cnll_splits, config.predict_max_n,
                         config.predict_pool, config.bootstrap, failed)


def _fit_dict(fit: PowerLaw | None) -> dict[str, float] | None:
    return None if fit is None else {"a": fit.a, "b": fit.b, "c": fit.c, "rmse": fit.rmse}


def summary_dict(analysis: StudyAnalysis, folder: Path | None = None) -> dict[str, Any]:
    """The machine-readable result of `ensplit study` / `ensplit analyze`."""
    return {
        "folder": None if folder is None else str(folder),
        "temperature": analysis.temperature,
        "failed_networks": analysis.failed_networks,
        "budgets": [vars(b) for b in analysis.budgets],
        "power_laws": {
            "n": [{"params": s.params, "width": s.width, **(_fit_dict(s.fit) or {})} for s in analysis.sizes],
            "s": _fit_dict(analysis.fit_s),
            "B": _fit_dict(analysis.fit_b),
        },
        "prediction": [{"params": p.params, "fit_on_networks": p.networks, "max_n": analysis.predict_max_n,
                        "rmse_vs_measured": p.rmse, **(_fit_dict(p.fit) or {})} for p in analysis.predictions],
        "sizes": [{"params": s.params, "width": s.width, "pool_size": s.pool_size, "n": s.n, "cnll": s.cnll,
                   "accuracy": s.accuracy} for s in analysis.sizes],
    }


def render_summary(result: dict[str, Any]) -> str:
    """Human-readable summary (stdout of `ensplit study` without --json)."""
    lines = [f"Optimal memory split per budget (CNLL, temperature {result['temperature']} averaging):",
             f"{'budget B':>10} {'best n':>7} {'width':>6} {'CNLL':>8} {'acc':>7} | {'single CNLL':>11} "
             f"{'acc':>7} {'advantage':>9} | {'predicted n':>11} {'width':>6}"]
    for b in result["budgets"]:
        lines.append(f"{b['budget']:>10,} {b['best_n']:>7} {b['best_width'] or '-':>6} {b['best_cnll']:>8.4f} "
                     f"{b['best_accuracy']:>7.4f} | {b['single_cnll']:>11.4f} {b['single_accuracy']:>7.4f} "
                     f"{b['advantage']:>+9.4f} | {b['predicted_n'] or '-':>11} {b['predicted_width'] or '-':>6}")
    lines.append("(advantage > 0: the best split beats one network of the whole budget)")
    lines.append("\nPower laws CNLL = c + b·m^a:")

    def fmt(name: str, fit: dict | None) -> str:
        if not fit or "a" not in fit:
            return f"  {name:<24} (too few points to fit)"
        return f"  {name:<24} a = {fit['a']:+.3f}  b = {fit['b']:.4f}  c = {fit['c']:.4f}  RMSE = {fit['rmse']:.2e}"

    for entry in result["power_laws"]["n"]:
        lines.append(fmt(f"in n (s = {entry['params']:,})", entry))
    lines.append(fmt("in s (n = 1)", result["power_laws"]["s"]))
    lines.append(fmt("in B (lower envelope)", result["power_laws"]["B"]))
    lines.append("\nPrediction from small ensembles (fit on n ≤ "
                 f"{result['prediction'][0]['max_n'] if result['prediction'] else '-'}):")
    for p in result["prediction"]:
        rmse = "-" if p["rmse_vs_measured"] is None else f"{p['rmse_vs_measured']:.4f}"
        lines.append(f"  s = {p['params']:>9,}: from {p['fit_on_networks']} networks, "
                     f"RMSE vs measured larger n = {rmse}")
    if result["failed_networks"]:
        lines.append(f"\n{result['failed_networks']} network(s) diverged and were left out.")
    if result["folder"]:
        lines.append(f"\nStudy folder: {result['folder']} (results.sqlite, config.toml, report.html)")
    return "\n".join(lines)
