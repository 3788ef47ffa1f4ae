"""`ensplit collegial`: the collegial-ensemble designer of Littwin et al. (seed 004; science.md §4)."""

from __future__ import annotations

from typing import Any

from ensplit.commands._options import experiment_command
from ensplit.experiments.collegial import CollegialConfig, run_collegial

NAME = "collegial"
HELP = "design a collegial ensemble (m paths of width n) from a baseline by the NTK-variance model"


add_arguments, settings, run = experiment_command(CollegialConfig, "collegial", run_collegial, None)


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
        lines.append(f"whole network: ResNeXt-29 {w['name']} with {w['params']:,} params "
                     f"(baseline {w['baseline']}: {w['baseline_params']:,}; efficiency {w['efficiency']:.3f})")
    lines.append("design for training: " + ", ".join(f"{k}={v}" for k, v in result["design"].items()))
    if "report" in result:
        lines.append(f"report: {result['report']}")
    return "\n".join(lines)
