"""Figures and the report page of `ensplit collegial` (seed 004 Figures 2, 3 and 6, Appendix Fig. 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ensplit.analysis.collegial import Baseline, CollegialDesign, DesignCurves, design_curves
from ensplit.analysis.collegial_montecarlo import AlphaFit, EnsembleConvergence, ensemble_ntk_convergence
from ensplit.report.html import Section, write_report


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


def write_collegial_report(directory: str | os.PathLike[str], baseline: Baseline, design: CollegialDesign,
                           fit: AlphaFit | None, result: dict[str, Any]) -> Path:
    """DIR/report.html: the design, primal and dual curves, the α fit and the ensemble-NTK check."""
    curves = design_curves(baseline, design.alpha, design.cost)
    summary = [{k: v for k, v in result.items() if not isinstance(v, dict)}]
    sections = [
        Section("Design", f"Baseline {result['baseline']}; α = {design.alpha:.3f}; cost in {design.cost}.",
                table=summary),
        Section("Primal and dual objectives (seed 004 Figures 3 and 6)",
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
    check = ensemble_ntk_convergence()
    slope = float(np.polyfit(np.log(check.members), np.log(check.deviation), 1)[0])
    sections.append(Section(
        "Ensemble NTK converges to the mean kernel (seed 004 Figure 2)",
        f"Collegial MLPs (input 2, {check.hidden_layers} hidden layers of width {check.width}); deviation "
        f"slope in m: {slope:.2f} (expected −1/2).",
        figures=[(convergence_figure(check), "Ensemble NTK for growing m")]))
    return write_report(Path(directory) / "report.html", "ensplit collegial", sections)
