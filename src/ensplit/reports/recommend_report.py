"""The report page of `ensplit recommend`: predicted CNLL against budget per candidate family, with bands and
the budget marked, the verification points, and the ranked table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ensplit.reports.cost_text import cost_line
from ensplit.reports.html import Section, epochs, write_report
from ensplit.reports.recommend_pareto import front_flags, pareto_figure

MEASURED = dict(marker="*", s=160, color="black", zorder=5)


def _budget_line(ax: Any, budget: int) -> None:
    ax.axvline(budget, color="0.4", linestyle="--", linewidth=1, label=f"the budget P = {budget:,}")


def _thousands(ax: Any) -> None:
    """Log x axis ticked at round parameter counts written plainly (5k, 10k, 20k, …), no minor labels."""
    low, high = ax.get_xlim()
    ticks = [t for t in (1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8)
             if low <= t <= high]
    ax.set_xticks(ticks, [f"{t / 1e6:g}M" if t >= 1e6 else f"{t / 1e3:g}k" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _ladder_axes(ax: Any, ladder: dict[int, list[float]], prediction: Any, budget: int, target: int, label: str,
                 color: Any) -> None:
    sizes = np.array(sorted(ladder), dtype=np.float64)
    for size in sizes:
        values = ladder[int(size)]
        ax.scatter(np.full(len(values), size), values, s=12, color=color, alpha=0.5)
    ax.plot(sizes, [np.mean(ladder[int(s)]) for s in sizes], "o", color=color, label=f"{label} (runs, mean)")
    if prediction is not None and prediction.law is not None:
        grid = np.geomspace(sizes.min(), max(budget, sizes.max()) * 1.05, 80)
        ax.plot(grid, prediction.law.predict(grid), color=color, linewidth=1.2)
        lower, upper = prediction.band(grid)
        ax.fill_between(grid, lower, upper, color=color, alpha=0.15)
        ax.errorbar([target], [prediction.value],
                    yerr=[[prediction.value - prediction.lower], [prediction.upper - prediction.value]],
                    color=color, capsize=4, fmt="s")


def _finish(ax: Any, xlabel: str, title: str, budget: int) -> None:
    ax.set_xscale("log")
    _budget_line(ax, budget)
    _thousands(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("CNLL (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _family(ax: Any, ladder: dict[int, list[float]], assessed: Any, budget: int, label: str, color: Any) -> None:
    """One family's ladder, its extrapolation to the candidate at the budget, and its measured point (if any)."""
    prediction = None if assessed is None else assessed.prediction
    target = budget if assessed is None else assessed.candidate.params
    _ladder_axes(ax, ladder, prediction, budget, target, label, color)
    if assessed is not None and assessed.measured_cnll is not None:
        ax.scatter([assessed.candidate.params], [assessed.measured_cnll], label="measured at P (fresh seeds)",
                   **MEASURED)


def ladders_figure(result: Any) -> Figure:
    """Each sharing family's CNLL against its parameters, extrapolated to the budget with a 5–95% band."""
    figure = Figure(figsize=(8.6, 4.6), layout="constrained")
    ax = figure.subplots()
    colors = iter(["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"])
    by_family = {(a.candidate.method, a.candidate.members): a for a in result.ranked}
    for (method, members), ladder in sorted(result.evidence.ladders.items()):
        assessed = by_family.get((method, members))
        color = next(colors)
        _family(ax, ladder, assessed, result.config.budget, f"{method}({members})", color)
    _finish(ax, "parameters of the ensemble", "Sharing methods: ladders and their extrapolation",
            result.config.budget)
    return figure


def single_figure(result: Any) -> Figure:
    """The single network's CNLL against its size (each pool network a point), extrapolated to the budget."""
    figure = Figure(figsize=(8.6, 4.6), layout="constrained")
    ax = figure.subplots()
    single = next((a for a in result.ranked if a.candidate.method == "single"), None)
    _family(ax, result.evidence.singles, single, result.config.budget, "single network", "C0")
    _finish(ax, "parameters of the network", "The single network: pool networks and the extrapolation",
            result.config.budget)
    return figure


def splits_figure(result: Any) -> Figure:
    """Predicted CNLL at the budget of every memory split n × s (n = 1 is the single network)."""
    figure = Figure(figsize=(8.6, 4.4), layout="constrained")
    ax = figure.subplots()
    splits = sorted((a for a in result.ranked if a.candidate.method in ("single", "deep")),
                    key=lambda a: a.candidate.members)
    n = [a.candidate.members for a in splits]
    values = np.array([a.prediction.value for a in splits])
    lower = values - np.array([a.prediction.lower for a in splits])
    upper = np.array([a.prediction.upper for a in splits]) - values
    ax.errorbar(n, values, yerr=[lower, upper], fmt="o-", capsize=4, label="memory splits, predicted (5–95%)")
    for a in splits:
        if a.measured_cnll is not None:
            ax.scatter([a.candidate.members], [a.measured_cnll], **MEASURED)
    best = [a for a in result.ranked if a.candidate.method not in ("single", "deep")][:1]
    for a in best:
        ax.axhline(a.prediction.value, color="C1", linestyle=":", label=f"best sharing method: {a.candidate.name}")
        ax.axhspan(a.prediction.lower, a.prediction.upper, color="C1", alpha=0.1)
        if a.measured_cnll is not None:
            ax.axhline(a.measured_cnll, color="black", linewidth=0.8, label="its measured CNLL at P")
    ax.set_xlabel("members n (each of P / n parameters)")
    ax.set_ylabel("CNLL at the budget (nats)")
    ax.set_title(f"Memory splits of P = {result.config.budget:,}")
    ax.set_xticks(n)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure


def _table(result: Any) -> list[dict[str, Any]]:
    rows = []
    front = front_flags(result.ranked)
    for rank, a in enumerate(result.ranked, 1):
        p = a.prediction
        rows.append({"rank": rank, "candidate": a.candidate.name, "params": a.candidate.params,
                     "predicted CNLL": p.value, "5%": p.lower, "95%": p.upper, "measured CNLL": a.measured_cnll,
                     "FLOPs / example": a.flops, "s / epoch": a.seconds_per_epoch,
                     "inference ms / example": a.inference_ms, "Pareto front": "yes" if front[rank - 1] else ""})
    return rows


def tuning_section(tuning: Any) -> Section:
    """`--tune`: the cell chosen at every tuned size of every family, and each family's settings carried to P."""
    rows = []
    for family in tuning.families.values():
        data = family.to_json()
        for size in data["sizes"]:
            scores = [c["validation_cnll"] for c in size["cells"] if c["validation_cnll"] is not None]
            rows.append({"family": data["family"], "params": size["params"], "lr": size["lr"],
                         "weight decay": size["weight_decay"], "validation CNLL": min(scores, default=None),
                         "lrs tried": ", ".join(f"{v:g}" for v in size["lrs"]),
                         "weight decays tried": ", ".join(f"{v:g}" for v in size["weight_decays"]),
                         "optimum": "interior" if size["interior"] else "on the edge: " + ", ".join(size["edges"])})
        rows.append({"family": data["family"], "params": "at P (carried)", "lr": data["settings"]["lr"],
                     "weight decay": data["settings"]["weight_decay"], "validation CNLL": None,
                     "lrs tried": f"lr ∝ size^{data['lr_exponent']:.2f}", "weight decays tried": "", "optimum": ""})
    return Section("Tuning (--tune)", "Every cheap run's learning rate and weight decay, chosen at its own size by "
                   "validation CNLL (the test split is never read); the predictions extrapolate the tuned runs. "
                   "Each deep-pool size is tuned twice on the same networks: as one ensemble for the memory splits "
                   "(family deep), each network alone for the single network (family single). Each ladder rung "
                   f"adds {tuning.replicates} fresh runs in its chosen cell (the run that won a "
                   f"grid scores lucky on test too); a refinement rung near P tries {tuning.refinement_lrs} lrs "
                   "around its family's largest tuned cell. "
                   "At the budget each family trains with the lr read off lr ∝ size^γ fitted through its chosen lrs "
                   "(γ in [0, 1]) and the weight decay chosen at its largest size. The grid grows one step past an "
                   "edge the best cell lies on (lr ×/÷ 2, weight decay ×/÷ 4; weight decay 0 is a true edge).",
                   table=rows)


def _plane_text(evidence: Any) -> str:
    """How the memory splits' intervals are built, with the pooled noise they use; the small pools' rule only
    when a pool's law took its variance from it (`SizeLaw.fit_variance`; with --tune no pool is that small)."""
    noise = evidence.plane_noise
    pooled = "" if noise is None else f" (σ = {noise[0]:.4f}, pooled over the pools, {noise[1]} degrees of freedom)"
    small = sorted({law.networks for law in evidence.laws if law.fit_variance})
    rule = "" if not small else (
        f"; a pool of {' or '.join(map(str, small))} networks, which a bootstrap cannot resample, takes its law's "
        "variance from subsets of that many networks of the largest pool")
    return f"A memory split's interval holds the pool bootstrap's spread and one network's noise over √n{pooled}{rule}."


def write_recommend_report(path: str | Path, result: Any) -> Path:
    """`path` (report.html) from a `RecommendResult`."""
    best, rival = result.recommendation, result.runner_up
    tuned = "" if not best.settings else (f", trained at lr {best.settings['lr']:g} and weight decay "
                                          f"{best.settings['weight_decay']:g} (its family's, tuned)")
    verdict = (f"Recommended: {best.candidate.name} ({best.candidate.params:,} parameters){tuned}, predicted CNLL "
               f"{best.prediction.value:.4f} [{best.prediction.lower:.4f}, {best.prediction.upper:.4f}]. ")
    if rival is not None:
        verdict += (f"Runner-up: {rival.candidate.name}, {rival.prediction.value:.4f}; the intervals "
                    f"{'do not overlap' if result.separated else 'overlap'}. ")
    verification = result.verification
    if verification and verification["measured_cnll"] is not None:
        verdict += (f"Verified at the budget with fresh seeds: measured {verification['measured_cnll']:.4f} "
                    f"({'within' if verification['within_interval'] else 'outside'} the interval); the single "
                    f"network measured {verification['single_measured_cnll']:.4f}.")
    if getattr(result, "cost", None) is not None:
        verdict += " " + cost_line(result.cost.to_json(), len(result.ranked)) + "."
    recipe = result.config.recipe
    sections = [
        Section("The answer", verdict + " Intervals are 5–95% predictive intervals for one new run: the bootstrap "
                "spread of the fitted law, one run's noise (pooled over the ladders) and the law's own "
                f"extrapolation error, backtested on the ladders (κ = {result.evidence.kappa:.3f} CNLL per octave "
                f"beyond a ladder's top). {_plane_text(result.evidence)}"
                + (" Black stars: measured at the budget with fresh seeds."
                   if verification and verification["measured_cnll"] is not None else ""),
                figures=[(splits_figure(result), "memory splits at the budget")], table=_table(result)),
        Section("The single network", "Every pool network's own CNLL against its size (with --tune, the "
                "networks of each size's cell chosen for the single network); the power law c + b·s^a through "
                "them, extrapolated to the budget, with its band.",
                figures=[(single_figure(result), "single network extrapolation")]),
    ]
    if result.evidence.ladders:
        sections.append(Section("Parameter-sharing methods", "Each method trained at budgets 2× apart up to "
                                f"P/{result.config.ladder_top} (a ladder on a grid shared by every budget), the "
                                "best predicted ones once more at P/2 while the FLOPs cap allowed; a method whose "
                                "small rungs hold no network or repeat one climbs instead, to P/2 and, for a third "
                                "size, on towards P. CNLL(B) = c + b·B^a (c ≥ 0) fitted to every run and "
                                "extrapolated to the budget.",
                                figures=[(ladders_figure(result), "sharing-method ladders")]))
    sections.append(Section("Two budgets", "Every candidate's parameters against its inference FLOPs per example "
                            "(counted on the model), coloured by predicted CNLL. Ringed and named in bold: the Pareto "
                            "front, the candidates no other beats or equals on parameters, FLOPs and predicted CNLL "
                            "at once. With --flops-budget each candidate is the widest that fits both budgets (the "
                            "mixture, sized by its template bank, the largest budget of its own sizing that fits, "
                            "as its ladder trains it).",
                            figures=[(pareto_figure(result), "parameters × FLOPs Pareto front")]))
    if getattr(result, "tuning", None) is not None:
        sections.insert(1, tuning_section(result.tuning))
    flops_budget = result.config.flops_budget
    subtitle = (f"budget {result.config.budget:,} parameters"
                f"{'' if flops_budget is None else f' and {flops_budget:,} FLOPs per example'}; "
                f"{recipe.family} on {recipe.dataset}; "
                f"{epochs(recipe.train.epochs)}, {recipe.train.optimizer} "
                + ("lr and weight decay tuned per family (--tune)" if getattr(result, "tuning", None) is not None
                   else f"lr {recipe.train.lr}"))
    return write_report(path, "ensplit recommend", sections, subtitle)
