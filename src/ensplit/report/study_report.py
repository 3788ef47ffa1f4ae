"""Assemble the seed-000 report page of a memory-split study from its analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ensplit.report import study_figures as figures
from ensplit.report.html import Section, write_report


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
        Section("Power laws", "Fits of c + b·m^a (least squares in NLL units, science.md §2).",
                figures=[(figures.cnll_n(curves, fits), "CNLL_n per member size with fits"),
                         (figures.cnll_s([s.params for s in sizes], [float(s.cnll[0]) for s in sizes],
                                         _fit_fn(analysis.fit_s)), "CNLL_s of single networks"),
                         (figures.cnll_b(points, analysis.envelope, _fit_fn(analysis.fit_b)),
                          "CNLL_B: lower envelope over member sizes")],
                table=fit_rows),
    ]
    if budget_curves:
        sections.append(Section("Memory-split curves", "CNLL against the number of members n at fixed budgets B: "
                                "n = ⌊B/s⌋ members of each measured size s (where that n was measured).",
                                figures=[(figures.msa_curves(budget_curves), "MSA curves")]))
    sections.append(Section(
        "Predicting large ensembles", f"CNLL_n fitted on n ≤ {analysis.predict_max_n} from the first few networks "
        "of each pool (all their combinations, seed 000 §7), extrapolated and compared with the measured pool "
        "curves; bands are 5–95% over bootstrap-resampled small pools. The predicted optimal split is read "
        "from the predicted (n, s) plane over the measured cells; regret is the measured CNLL of the predicted "
        "split minus the best measured one.",
        figures=[(figures.prediction(curves, predicted, analysis.predict_max_n), "predicted vs measured CNLL_n")]
        + ([(figures.optimal_splits([{"budget": b.budget, "measured_n": b.best_n, "predicted_n": b.predicted_n,
                                      "predicted_range": b.predicted_n_range}
                                     for b in analysis.budgets if b.predicted_n]), "predicted vs true optimal n")]
           if any(b.predicted_n for b in analysis.budgets) else []),
        table=pred_rows))
    return sections


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


def write_study_report(analysis: Any, path: str | Path, config: Any = None) -> Path:
    subtitle = ""
    if config is not None:
        recipe = config.recipe
        subtitle = (f"data {recipe.dataset}, family {recipe.family}, widths {list(config.widths)}, "
                    f"{recipe.train.epochs} epochs, {recipe.train.optimizer} lr {recipe.train.lr}, "
                    f"temperature {config.temperature} averaging")
    if analysis.failed_networks:
        subtitle += f"; {analysis.failed_networks} diverged network(s) left out"
    return write_report(path, "ensplit memory-split study", study_sections(analysis), subtitle)


__all__ = ["study_sections", "write_study_report"]
