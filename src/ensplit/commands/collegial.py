"""`ensplit collegial`: the collegial-ensemble designer of Littwin et al. 2020 (science.md §4)."""

from __future__ import annotations

from typing import Any

from ensplit.commands._options import experiment_command
from ensplit.experiments.collegial import CollegialConfig, run_collegial

NAME = "collegial"
HELP = "design a collegial ensemble (m paths of width n) from a baseline by the NTK-variance model"


add_arguments, settings, run = experiment_command(
    CollegialConfig, "collegial", run_collegial, None,
    writes="OUT/report.html, OUT/results.json and, with --train, the trained networks (a rerun resumes)")


def render(result: dict[str, Any]) -> str:
    unit = "FLOPs" if result["cost"] == "flops" else "params"
    alpha = f"{result['alpha']:.3f}" + (f" ± {result['alpha_stderr']:.3f} (fitted)" if result["alpha_stderr"] else "")
    what = {"mlp": "mlp", "resnext-block": "bottleneck block",
            "resnext": "ResNeXt-29 stage-1 bottleneck block"}[result["baseline"]]
    shape = f"{result['baseline_cardinality']}x{result['baseline_width']}d" if result["baseline"] != "mlp" else (
        f"width {result['baseline_width']}")
    lines = [
        f"baseline {what} ({shape}): {result['baseline_params']:,} params; alpha = {alpha}",
        f"{result['objective']} optimum: width n = {result['width']}, members m = {result['members']:.2f}, "
        f"{unit} efficiency rho = {result['efficiency']:.3f}, params m*beta(n) = {result['params']:,.0f}",
        f"variance (exp(alpha*sum) - 1)/m = {result['variance']:.4g} (baseline {result['baseline_variance']:.4g})",
    ]
    if "whole_network" in result:
        w = result["whole_network"]
        flops = w.get("cost") == "flops"
        kind, what = ("flops_per_example", "FLOPs efficiency") if flops else ("params", "efficiency")
        if kind not in w:  # a result of an older release: "flops", "baseline_flops"
            kind = "flops"
        lines.append(f"whole network: ResNeXt-29 {w['name']} with {w[kind]:,} {unit} "
                     f"(baseline {w['baseline']}: {w['baseline_' + kind]:,}; {what} {w['efficiency']:.3f})")
    lines.append("design for training: " + ", ".join(f"{k}={v}" for k, v in result["design"].items()))
    if result.get("training"):
        lines += training_lines(result["training"], result["training_optimum"])
    if "report" in result:
        lines.append(f"report: {result['report']}")
    return "\n".join(lines)


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def training_lines(rows: list[dict[str, Any]], optimum: dict[str, Any]) -> list[str]:
    """The training table (mean ± std over seeds) and, per curve, the predicted against the measured optimum."""
    lines = [f"{'curve':<7} {'m':>6} {'n':>5} {'params':>10} {'accuracy':>18} {'CNLL':>18}"]
    for r in rows:
        mark = "  <- predicted optimum" if r["predicted_optimum"] else ""
        lines.append(f"{r['curve']:<7} {r['members']:>6} {r['width']:>5} {r['params']:>10,} "
                     f"{_pm(r['accuracy'], r['accuracy_std']):>18} {_pm(r['cnll'], r['cnll_std']):>18}{mark}")
    for curve, o in optimum.items():
        p, a, c = o["predicted"], o["best_accuracy"], o["best_cnll"]
        lines.append(f"{curve}: predicted n = {p['width']}, m = {p['members']}; best accuracy at n = {a['width']}, "
                     f"m = {a['members']}; best CNLL at n = {c['width']}, m = {c['members']}")
    return lines
