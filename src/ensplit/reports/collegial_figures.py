"""Figures and the report page of `ensplit collegial` (Littwin et al. Figures 2, 3, 4 and 6, Appendix Fig. 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ensplit.analysis.collegial import Baseline, CollegialDesign, DesignCurves, design_curves
from ensplit.analysis.collegial_montecarlo import AlphaFit, EnsembleConvergence, ensemble_ntk_convergence
from ensplit.reports.html import Section, epochs, write_report


def _objective_figure(widths: np.ndarray, values: np.ndarray, best: int, members: np.ndarray, *, log_y: bool,
                      curve_label: str, best_label: str, reference: float, ylabel: str, members_label: str,
                      legend_loc: str) -> Figure:
    """One design objective against the path width n, its optimum marked, the multiplicity on a twin axis."""
    fig = Figure(figsize=(5.6, 3.8))
    ax = fig.add_subplot()
    (ax.semilogy if log_y else ax.plot)(widths, values, color="tab:blue", label=curve_label)
    ax.plot(widths[best], values[best], "o", color="tab:red", label=best_label)
    ax.axhline(reference, color="gray", ls="--", lw=1, label="baseline variance" if log_y else None)
    ax.set_xscale("log")
    ax.set_xlabel("path width n")
    ax.set_ylabel(ylabel)
    twin = ax.twinx()
    twin.loglog(widths, members, color="tab:green", lw=1)
    twin.set_ylabel(members_label, color="tab:green")
    ax.legend(fontsize=8, loc=legend_loc)
    return fig


def primal_figure(curves: DesignCurves) -> Figure:
    """Primal objective (exp(αΣ) − 1)/m_p(n) vs n (log scale) with m_p(n) on a second axis (Fig. 3a/6a)."""
    n, variance = np.asarray(curves.widths), np.asarray(curves.primal_variance)
    i = int(np.argmin(variance))
    return _objective_figure(n, variance, i, np.asarray(curves.primal_members), log_y=True,
                             curve_label="Var(K_e) ∝ (e^{αΣ} − 1)/m_p",
                             best_label=f"n = {n[i]}, m_p = {curves.primal_members[i]:.1f}",
                             reference=curves.baseline_variance, ylabel="variance at the baseline's cost",
                             members_label="m_p(n)", legend_loc="upper center")


def dual_figure(curves: DesignCurves) -> Figure:
    """Dual objective ρ(n) = β_s/(m_d β(n)) vs n with m_d(n) on a second axis (Fig. 3b/6b)."""
    n, rho = np.asarray(curves.widths), np.asarray(curves.dual_efficiency)
    i = int(np.argmax(rho))
    return _objective_figure(n, rho, i, np.asarray(curves.dual_members), log_y=False, curve_label="efficiency ρ(n)",
                             best_label=f"n = {n[i]}, ρ = {rho[i]:.2f}", reference=1.0,
                             ylabel="efficiency at the baseline's variance", members_label="m_d(n)",
                             legend_loc="upper right")


def alpha_fit_figure(fit: AlphaFit) -> Figure:
    """log(E[Θ²]/E[Θ]²) vs Σ 1/fan_in with Monte Carlo error bars and the line through the origin."""
    fig = Figure(figsize=(5.0, 3.8))
    ax = fig.add_subplot()
    x = np.asarray(fit.variance_sum)
    ax.errorbar(x, fit.log_ratio, yerr=fit.log_ratio_stderr, fmt="o", ms=4, label="Monte Carlo")
    grid = np.linspace(0, x.max() * 1.05, 50)
    ax.plot(grid, fit.alpha * grid, color="tab:red", label=f"α = {fit.alpha:.3f} ± {fit.stderr:.3f}")
    for xi, yi, n in zip(x, fit.log_ratio, fit.widths, strict=True):
        ax.annotate(str(n), (xi, yi), fontsize=7, xytext=(3, -8), textcoords="offset points")
    ax.set_xlabel("Σ_l 1/fan_in_l")
    ax.set_ylabel("log E[Θ²]/E[Θ]²")
    ax.legend(fontsize=8)
    return fig


def convergence_figure(check: EnsembleConvergence) -> Figure:
    """K_e(x_0, x_γ) for growing m against the mean kernel, and the deviation vs m (Fig. 2)."""
    fig = Figure(figsize=(10.0, 3.8))
    left, right = fig.subplots(1, 2)
    g = np.asarray(check.gammas)
    for m, k in zip(check.members, check.kernels, strict=True):
        left.plot(g, k, lw=1, label=f"m = {m}")
    left.plot(g, check.mean_kernel, color="black", lw=2, label="mean kernel (NMK)")
    left.set_xlabel("γ (x_γ = (cos γ, sin γ))")
    left.set_ylabel("K_e(x_0, x_γ)")
    left.legend(fontsize=7)
    m = np.asarray(check.members, dtype=float)
    right.loglog(m, check.deviation, "o-", label="RMS(K_e − NMK)/RMS(NMK)")
    right.loglog(m, check.deviation[0] / np.sqrt(m), "--", color="gray", label="1/√m")
    right.set_xlabel("members m")
    right.legend(fontsize=8)
    return fig


def _errorbar(ax: Any, x: np.ndarray, rows: list[dict[str, Any]], metric: str, **kw: Any) -> None:
    y = np.array([r[metric] for r in rows])
    err = np.array([r[f"{metric}_std"] or 0.0 for r in rows])
    ax.errorbar(x, y, yerr=err, fmt="o-", ms=4, capsize=3, **kw)


def training_figure(rows: list[dict[str, Any]], curve: str) -> Figure:
    """Accuracy and CNLL (mean ± std over seeds) against m along one curve, and the test error against the
    model's variance (primal) or the parameters (dual) (Littwin et al. Fig. 4); the predicted optimum is the red
    ring, the measured best a star."""
    rows = sorted((r for r in rows if r["curve"] == curve), key=lambda r: r["members"])
    fig = Figure(figsize=(9.4, 3.3))  # the page is 1100 px wide
    axes = fig.subplots(1, 3)
    m = np.array([r["members"] for r in rows], dtype=float)
    for ax, metric, label, best in ((axes[0], "accuracy", "test accuracy", np.argmax),
                                    (axes[1], "cnll", "test CNLL", np.argmin)):
        _errorbar(ax, m, rows, metric, color="tab:blue", label="trained (mean ± std)")
        values = np.array([r[metric] for r in rows])
        for r, x, y in zip(rows, m, values, strict=True):
            ax.annotate(f"n={r['width']}", (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
            if r["predicted_optimum"]:
                ax.plot(x, y, "o", ms=12, mfc="none", mec="tab:red", mew=2, label="predicted optimum")
                ax.axvline(x, color="tab:red", ls=":", lw=1)
        i = int(best(values))
        ax.plot(m[i], values[i], "*", ms=14, color="tab:orange", zorder=5, label="measured best")
        ax.set_xscale("log")
        ax.set_xlabel("members m (paths)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7, loc="best")
    # Fig. 4: along the primal curve the variance changes at fixed parameters; along the dual the reverse
    key, xlabel = (("variance", "model variance (exp(αΣ(n)) − 1)/m") if curve == "primal" else
                   ("params", "parameters m·β(n)"))
    x = np.array([r[key] for r in rows], dtype=float)
    error = 1.0 - np.array([r["accuracy"] for r in rows])
    axes[2].errorbar(x, error, yerr=[r["accuracy_std"] or 0.0 for r in rows], fmt="o", ms=4, capsize=3)
    for r, xi, y in zip(rows, x, error, strict=True):
        axes[2].annotate(f"m={r['members']}", (xi, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    axes[2].set_xlabel(xlabel)
    axes[2].set_ylabel("test error")
    fig.suptitle(f"{curve} curve: " + ("fixed parameters, m = ⌊β_s/β(n)⌋" if curve == "primal" else
                                      "fixed variance, m = round(m_d(n))"), fontsize=10)
    fig.tight_layout()
    return fig


def training_section(result: dict[str, Any]) -> Section:
    """Accuracy and CNLL against m along each trained curve, the table, and predicted against measured optima."""
    rows = result["training"]
    table = [{"curve": r["curve"], "m": r["members"], "n": r["width"], "params": r["params"],
              "model variance": r["variance"], "accuracy": r["accuracy"], "accuracy std": r["accuracy_std"],
              "CNLL": r["cnll"], "CNLL std": r["cnll_std"], "seeds": len(r["seeds"]),
              "predicted optimum": "yes" if r["predicted_optimum"] else ""} for r in rows]
    notes = []
    for curve, o in result["training_optimum"].items():
        p, a, c = o["predicted"], o["best_accuracy"], o["best_cnll"]
        notes.append(f"{curve}: predicted optimum n = {p['width']}, m = {p['members']}; measured best accuracy at "
                     f"n = {a['width']}, m = {a['members']} ({a['accuracy']:.4f}); best CNLL at n = {c['width']}, "
                     f"m = {c['members']} ({c['cnll']:.4f}); the predicted point ranks "
                     f"{o['predicted_rank']['accuracy']} of {o['points']} by accuracy.")
    recipe = result.get("recipe", {})
    train = recipe.get("train", {})
    text = (f"Collegial ensembles (grouped, one read-out) trained on {recipe.get('dataset', 'the data')} for "
            f"{epochs(train.get('epochs', '?'))} ({train.get('optimizer', '?')}, lr {train.get('lr', '?')}), "
            "test metrics as mean ± std over seeds. " + " ".join(notes))
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    return Section("Training along the curves (Littwin et al. Figures 4 and 6)", text,
                   figures=[(training_figure(rows, c), f"{c} curve: accuracy and CNLL against m; test error "
                             f"against the {'model variance' if c == 'primal' else 'parameters'}")
                            for c in curves], table=table)


def write_collegial_report(directory: str | os.PathLike[str], baseline: Baseline, design: CollegialDesign,
                           fit: AlphaFit | None, result: dict[str, Any]) -> Path:
    """DIR/report.html: the design, primal and dual curves, the α fit and the ensemble-NTK check."""
    curves = design_curves(baseline, design.alpha, design.cost)
    summary = [{"quantity": k, "value": v} for k, v in result.items() if not isinstance(v, (dict, list))]
    if "whole_network" in result:
        summary += [{"quantity": f"whole network {k}", "value": v} for k, v in result["whole_network"].items()]
    sections = [
        Section("Design", f"Baseline {result['baseline']}; α = {design.alpha:.3f}; cost in {design.cost}.",
                table=summary),
        Section("Primal and dual objectives (Littwin et al. Figures 3 and 6)",
                "Primal: least NTK variance at the baseline's cost, m_p(n) = β_s/β(n). Dual: highest efficiency "
                "ρ = β_s/(m_d β(n)) at the baseline's variance. Both share the optimal width (strong duality).",
                figures=[(primal_figure(curves), "Primal objective and m_p(n)"),
                         (dual_figure(curves), "Dual efficiency ρ(n) and m_d(n)")]),
    ]
    if fit is not None:
        rows = [{"n": n, "sum 1/fan_in": s, "log ratio": y, "MC stderr": e}
                for n, s, y, e in zip(fit.widths, fit.variance_sum, fit.log_ratio, fit.log_ratio_stderr, strict=True)]
        sections.append(Section("Monte Carlo fit of α",
                                f"{fit.samples} initialisations per width, seed {fit.seed}, {fit.seconds:.1f} s.",
                                figures=[(alpha_fit_figure(fit), "log E[Θ²]/E[Θ]² against Σ 1/fan_in")],
                                table=rows))
    else:
        sections.append(Section("α", "α was given (--alpha); run with --fit-alpha for the Monte Carlo fit."))
    if result.get("training"):
        sections.append(training_section(result))
    check = ensemble_ntk_convergence()
    slope = float(np.polyfit(np.log(check.members), np.log(check.deviation), 1)[0])
    sections.append(Section(
        "Ensemble NTK converges to the mean kernel (Littwin et al. Figure 2)",
        f"Collegial MLPs (input 2, {check.hidden_layers} hidden layers of width {check.width}); deviation "
        f"slope in m: {slope:.2f} (expected −1/2).",
        figures=[(convergence_figure(check), "Ensemble NTK for growing m")]))
    return write_report(Path(directory) / "report.html", "ensplit collegial", sections)
