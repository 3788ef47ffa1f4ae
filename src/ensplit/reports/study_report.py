"""Assemble the seed-000 report page of a memory-split study from its analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ensplit.reports import study_figures as figures
from ensplit.reports import study_figures_nll as nll_figures
from ensplit.reports.html import Section, epochs, write_report

OBJECTIVES = {"nll": "least squares in NLL units; RMSE in nats",
              "log2": "Lobacheva et al. eq. 6, squared error in log2 space; RMSE in log2 units"}


def _fit_fn(fit):
    return None if fit is None else fit.predict


def study_sections(analysis: Any) -> list[Section]:
    sizes = analysis.sizes
    curves = {s.params: (s.n, s.cnll, s.cnll_std) for s in sizes}
    fits = {s.params: _fit_fn(s.fit) for s in sizes}
    points = [(int(n), s.params, int(n) * s.params, float(c)) for s in sizes for n, c in zip(s.n, s.cnll, strict=True)]
    budget_curves = {row.budget: _at_budget(sizes, row.budget) for row in analysis.budgets}
    budget_curves = {b: curve for b, curve in budget_curves.items() if len(curve) > 1}
    predicted = {p.params: (p.n, p.plane, p.lower, p.upper) for p in analysis.predictions}
    table = [{"budget B": b.budget, "best n": b.best_n, "member width": b.best_width, "CNLL": b.best_cnll,
              "accuracy": b.best_accuracy, "single CNLL": b.single_cnll, "single accuracy": b.single_accuracy,
              "MSA (single − best)": b.advantage, "predicted n": b.predicted_n,
              "predicted n, 5–95%": None if b.predicted_n_range is None else "{}–{}".format(*b.predicted_n_range),
              "predicted width": b.predicted_width, "regret (CNLL)": b.predicted_regret}
             for b in analysis.budgets]
    objective = analysis.objective
    fit_rows = [{"direction": f"n (s = {s.params:,})", **_fit_row(s.fit)} for s in sizes]
    fit_rows += [{"direction": "s (n = 1)", **_fit_row(analysis.fit_s)},
                 {"direction": "B (envelope)", **_fit_row(analysis.fit_b)}]
    pred_rows = [{"s": p.params, "fit on networks": p.small_pool, "RMSE vs measured (n > max)": p.point_rmse,
                  "RMSE, resampled pools (mean ± std)": "–" if p.rmse != p.rmse else f"{p.rmse:.4f} ± {p.rmse_std:.4f}",
                  **_fit_row(p.fit)}
                 for p in analysis.predictions]
    sections = [
        Section("Optimal memory split", "For each budget B (a member size of the grid), the best ensemble with "
                "n·s ≤ B against one network of B parameters. A positive memory-split advantage (MSA) means "
                "splitting the budget into several members is better.", table=table),
        Section("The (n, s) plane", "Pool-based CNLL of every measured ensemble; dotted lines are constant budgets.",
                figures=[(figures.ns_plane(curves), "CNLL over ensemble size and member size")]),
        Section("Power laws", f"Fits of c + b·m^a ({OBJECTIVES[objective]}).",
                figures=[(figures.cnll_n(curves, fits), "CNLL_n per member size with fits"),
                         (figures.cnll_s([s.params for s in sizes], [float(s.cnll[0]) for s in sizes],
                                         _fit_fn(analysis.fit_s)), "CNLL_s of single networks"),
                         (figures.cnll_b(points, analysis.envelope, _fit_fn(analysis.fit_b)),
                          "CNLL_B: lower envelope over member sizes")] + _parameters_figure(sizes, objective),
                table=fit_rows),
        *_nll_sections(analysis),
    ]
    if budget_curves:
        sections.append(Section("Memory-split curves", "CNLL against the number of members n at fixed budgets B: "
                                "n = ⌊B/s⌋ members of each measured size s (where that n was measured).",
                                figures=[(figures.msa_curves(budget_curves), "MSA curves")]))
    resample = analysis.resample
    per_n = {p.params: p.rmse_per_n() for p in analysis.predictions}
    sections.append(Section(
        "Predicting large ensembles", _prediction_text(analysis.predict_max_n, resample),
        figures=[(figures.prediction(curves, predicted, analysis.predict_max_n), "predicted vs measured CNLL_n"),
                 (nll_figures.prediction_rmse_per_n(per_n, analysis.predict_max_n, resample),
                  "RMSE of the predicted CNLL_n per n (Lobacheva et al. Fig. 6 left)")]
        + ([(figures.optimal_splits([{"budget": b.budget, "measured_n": b.best_n, "predicted_n": b.predicted_n,
                                      "predicted_range": b.predicted_n_range}
                                     for b in analysis.budgets if b.predicted_n]), "predicted vs true optimal n")]
           if any(b.predicted_n for b in analysis.budgets) else []),
        table=pred_rows))
    return sections


def _prediction_text(predict_max_n: int, resample: str) -> str:
    """How the large-ensemble predictions and their bands are made, for the section's lead."""
    repeats = {"bootstrap": "bootstrap-resampled small pools", "subsets": "independent subsets of the pool"}[resample]
    return (f"CNLL_n fitted on n ≤ {predict_max_n} from the first few networks of each pool (all their "
            "combinations, Lobacheva et al. §7), extrapolated and compared with the measured pool curves; bands are "
            "5–95% predictive intervals for the CNLL of one new ensemble of n networks (the spread of the prediction "
            f"over {repeats} and one network's spread scaled by 1/√n, with Student's t, the method `recommend` "
            "uses), and the per-n RMSE is taken over those repeats. The predicted optimal split is read from the "
            "predicted (n, s) plane over the measured cells; regret is the measured CNLL of the predicted split "
            "minus the best measured one.")


def _at_budget(sizes: list, budget: int) -> list[tuple[int, float]]:
    """(n, CNLL) of the ensembles that spend the budget: n = ⌊B/s⌋ members of each size s, where measured."""
    curve = []
    for size in sizes:
        n = budget // size.params
        hit = np.nonzero(size.n == n)[0]
        if n >= 1 and len(hit):
            curve.append((int(n), float(size.cnll[hit[0]])))
    return curve


def _fit_row(fit) -> dict[str, Any]:
    if fit is None:
        return {"a": None, "b": None, "c": None, "RMSE": None}
    return {"a": fit.a, "b": fit.b, "c": fit.c, "RMSE": fit.rmse}


def _fit_columns(fits: list) -> dict[str, np.ndarray]:
    """{"a", "b", "c", "rmse"} -> values per fit (NaN where there is no fit)."""
    return {key: np.array([np.nan if f is None else getattr(f, key) for f in fits]) for key in ("a", "b", "c", "rmse")}


def _parameters_figure(sizes: list, objective: str) -> list:
    """a, b, c and RMSE of the power laws in n against s (Lobacheva et al. Fig. 3), if any size was fitted."""
    if all(s.fit is None and s.nll_fit is None for s in sizes):
        return []
    rows = {"CNLL_n": _fit_columns([s.fit for s in sizes]), "NLL_n (τ = 1)": _fit_columns([s.nll_fit for s in sizes])}
    unit = "nats" if objective == "nll" else "log2"
    return [(nll_figures.parameters_against_s([s.params for s in sizes], rows, unit),
             "a, b, c and RMSE of the power laws in n against the member size s (Lobacheva et al. Fig. 3)")]


def _nll_sections(analysis: Any) -> list[Section]:
    """Uncalibrated NLL (Lobacheva et al. Figs. 1 and 4), NLL at fixed τ (Fig. 2) and LE-NLL against CNLL (App. D)."""
    sizes, laws = analysis.sizes, analysis.temperature_laws
    if not laws:
        return []
    params = [s.params for s in sizes]
    nll_curves = {s.params: (s.n, s.nll, np.zeros_like(s.nll)) for s in sizes}
    sections = [Section(
        "Uncalibrated NLL", "NLL at τ = 1 of the same pooled ensembles. Seed 000 finds that NLL_n follows a "
        "power law while NLL_s of single networks may rise with s (double descent), which calibration removes.",
        figures=[(figures.cnll_n(nll_curves, {s.params: _fit_fn(s.nll_fit) for s in sizes}, "NLL"),
                  "NLL_n (τ = 1) per member size with fits"),
                 (nll_figures.nll_and_cnll_s(params, [float(s.nll[0]) for s in sizes],
                                             [float(s.cnll[0]) for s in sizes], _fit_fn(analysis.nll_fit_s),
                                             _fit_fn(analysis.fit_s)),
                  "NLL_s against CNLL_s (Lobacheva et al. Fig. 4)")],
        table=[{"direction": f"NLL in n (s = {s.params:,})", **_fit_row(s.nll_fit)} for s in sizes]
        + [{"direction": "NLL in s (n = 1)", **_fit_row(analysis.nll_fit_s)}])]
    fitted = [law for law in laws if any(f is not None for f in law.fits)]
    if fitted:
        largest = max(fitted, key=lambda law: law.params)
        lines = {law.params: (law.taus[[f is not None for f in law.fits]],
                              _fit_columns([f for f in law.fits if f is not None])) for law in fitted}
        optimum = {law.params: law.optimum for law in fitted if law.optimum is not None}
        sections.append(Section(
            "NLL at a fixed temperature", f"NLL_n(τ) with τ applied {analysis.temperature} averaging, pooled over "
            "the same disjoint ensembles as CNLL, fitted by a power law in n for each τ of the grid. c(τ) is the "
            "NLL of an infinite ensemble at τ; τ* (★) minimises it over the grid.",
            figures=[(nll_figures.nll_tau_curves(largest.n, largest.taus, largest.nll,
                                                 [_fit_fn(f) for f in largest.fits], largest.params,
                                                 analysis.temperature), "NLL_n(τ) at the largest fitted size"),
                     (nll_figures.temperature_parameters(lines, optimum),
                      "a, b, c and RMSE of the NLL_n(τ) power laws against τ (Lobacheva et al. Fig. 2)")],
            table=[{"s": law.params, "τ*": law.optimum[0], "c(τ*)": law.optimum[1],
                    "τ* at grid edge": "yes" if law.optimum_at_edge else "no",
                    "τ of LE-NLL at largest n": float(law.le_tau[-1])} for law in fitted]))
    cnll = {s.params: s.cnll for s in sizes}
    sections.append(Section(
        "LE-NLL against CNLL", "LE-NLL_n = min over τ of the pooled NLL_n(τ) (Lobacheva et al. eqs. 4–5: the mean over "
        "ensembles inside the minimum; CNLL takes it outside). Both use the same test-time cross-validation "
        "halves, so their difference is only the order of the minimum and the mean.",
        figures=[(nll_figures.le_nll_against_cnll({law.params: (law.n, cnll[law.params], law.le_nll)
                                                   for law in laws}), "LE-NLL_n against CNLL_n")],
        table=[{"s": law.params, "n": f"1–{int(law.n.max())}",
                "mean LE-NLL − CNLL": float(np.mean(law.le_nll - cnll[law.params])),
                "largest |LE-NLL − CNLL|": float(np.max(np.abs(law.le_nll - cnll[law.params]))),
                "LE-NLL − CNLL at largest n": float(law.le_nll[-1] - cnll[law.params][-1])} for law in laws]))
    return sections


def write_study_report(analysis: Any, path: str | Path, config: Any = None,
                       title: str = "ensplit memory-split study") -> Path:
    """The page of a study (with its `config`) or of an analysis of pools made elsewhere (`title` says which)."""
    parts = []
    if config is not None:
        recipe = config.recipe
        parts.append(f"data {recipe.dataset}, family {recipe.family}, widths {list(config.widths)}, "
                     f"{epochs(recipe.train.epochs)}, {recipe.train.optimizer} lr {recipe.train.lr}, "
                     f"temperature {config.temperature} averaging")
    rule = analysis.pool_rule
    if rule is not None:
        parts.append(f"pool rule {rule['rule']}: {rule['formula']}")
    parts.append(f"power-law fits: {OBJECTIVES[analysis.objective]}")
    if analysis.failed_networks:
        parts.append(f"{analysis.failed_networks} diverged network(s) left out")
    return write_report(path, title, study_sections(analysis), "; ".join(parts))


__all__ = ["study_sections", "write_study_report"]
