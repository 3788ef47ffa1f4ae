"""`ensplit collegial`: the collegial-ensemble designer of Littwin et al. (seed 004; science.md §4)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ensplit.analysis.collegial import BottleneckBaseline, CollegialDesign, MLPBaseline, integer_members, solve
from ensplit.analysis.collegial_montecarlo import AlphaFit, fit_alpha
from ensplit.analysis.resnext29 import whole_network_design
from ensplit.errors import EnsplitError

NAME = "collegial"
HELP = "design a collegial ensemble (m paths of width n) from a baseline by the NTK-variance model"

_ONLY = {  # option -> baselines it applies to
    "input_dim": ("mlp",), "hidden_layers": ("mlp",), "outputs": ("mlp",), "bias": ("mlp",),
    "block_channels": ("resnext-block",), "cardinality": ("resnext-block", "resnext"),
    "bottleneck_width": ("resnext",), "num_classes": ("resnext",),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", required=True, choices=["mlp", "resnext-block", "resnext"],
                        help="baseline: fully connected network, one ResNeXt bottleneck block, or CIFAR ResNeXt-29")
    parser.add_argument("--objective", choices=["primal", "dual"], default="primal",
                        help="primal: least variance at the baseline's cost; dual: least cost at its variance")
    parser.add_argument("--cost", choices=["params", "flops"], default="params",
                        help="efficiency measured in parameters (default) or FLOPs")
    parser.add_argument("--alpha", type=float, help="α of the variance model Var(K) ∝ exp(α Σ 1/fan_in) − 1")
    parser.add_argument("--fit-alpha", action="store_true", help="fit α by Monte Carlo instead of --alpha")
    parser.add_argument("--samples", type=int, default=500, help="initialisations per width for --fit-alpha")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --fit-alpha Monte Carlo")
    parser.add_argument("--fit-widths", help="comma-separated widths of the α fit (default: the block's range)")
    parser.add_argument("--width", type=int, help="baseline width ñ (mlp hidden units; block bottleneck width)")
    parser.add_argument("--max-width", type=int, help="search n in 1..max-width (default: the baseline width)")
    parser.add_argument("--input-dim", type=int, help="mlp: input features")
    parser.add_argument("--hidden-layers", type=int, help="mlp: hidden layers (default 2)")
    parser.add_argument("--outputs", type=int, help="mlp: outputs (default 1)")
    parser.add_argument("--no-bias", dest="bias", action="store_false", default=None, help="mlp: no biases")
    parser.add_argument("--block-channels", type=int, help="resnext-block: channels in and out (default 256)")
    parser.add_argument("--cardinality", type=int, help="resnext(-block): baseline cardinality (default 1)")
    parser.add_argument("--bottleneck-width", type=int, help="resnext: baseline bottleneck width d")
    parser.add_argument("--num-classes", type=int, help="resnext: classes of the whole network (default 10)")
    parser.add_argument("--report", metavar="DIR", help="write DIR/report.html with the curves and checks")


def _positive(name: str, value: int | None, default: int | None = None) -> int:
    value = default if value is None else value
    if value is None:
        raise EnsplitError(f"--{name} is required for this baseline")
    if value < 1:
        raise EnsplitError(f"--{name} must be a positive integer, got {value}")
    return value


def _baseline(args: argparse.Namespace) -> MLPBaseline | BottleneckBaseline:
    for option, baselines in _ONLY.items():
        if getattr(args, option) is not None and args.baseline not in baselines:
            flag = "--no-bias" if option == "bias" else "--" + option.replace("_", "-")
            raise EnsplitError(f"{flag} applies to --baseline {' or '.join(baselines)}, not {args.baseline}")
    if args.baseline == "mlp":
        return MLPBaseline(input_dim=_positive("input-dim", args.input_dim), width=_positive("width", args.width),
                           hidden_layers=_positive("hidden-layers", args.hidden_layers, 2),
                           outputs=_positive("outputs", args.outputs, 1),
                           bias=True if args.bias is None else args.bias)
    if args.baseline == "resnext-block":
        return BottleneckBaseline(channels=_positive("block-channels", args.block_channels, 256),
                                  width=_positive("width", args.width),
                                  paths=_positive("cardinality", args.cardinality, 1))
    if args.width is not None:
        raise EnsplitError("--baseline resnext takes --bottleneck-width (and --cardinality), not --width")
    return BottleneckBaseline(channels=256, width=_positive("bottleneck-width", args.bottleneck_width),
                              paths=_positive("cardinality", args.cardinality, 1))


def _alpha(args: argparse.Namespace, baseline: MLPBaseline | BottleneckBaseline) -> tuple[float, AlphaFit | None]:
    if args.fit_alpha and args.alpha is not None:
        raise EnsplitError("give --alpha or --fit-alpha, not both")
    if not args.fit_alpha:
        if args.alpha is None:
            raise EnsplitError("--alpha is required (or --fit-alpha to fit it by Monte Carlo)")
        if not args.alpha > 0:
            raise EnsplitError(f"--alpha must be positive, got {args.alpha}")
        return args.alpha, None
    widths = None
    if args.fit_widths:
        try:
            widths = [int(w) for w in args.fit_widths.split(",")]
        except ValueError:
            raise EnsplitError(f"--fit-widths must be comma-separated integers, got {args.fit_widths!r}") from None
    print(f"fitting alpha by Monte Carlo ({args.samples} initialisations per width) ...", file=sys.stderr)
    fit = fit_alpha(baseline, widths, samples=args.samples, seed=args.seed)
    print(f"alpha = {fit.alpha:.3f} ± {fit.stderr:.3f} ({fit.seconds:.1f} s)", file=sys.stderr)
    return fit.alpha, fit


def _design_for_training(baseline: MLPBaseline | BottleneckBaseline, design: CollegialDesign) -> dict[str, Any]:
    """Integer design for `ensplit compare`/`study` (--family, --width, --depth, --members, --option)."""
    members = integer_members(design)
    if isinstance(baseline, MLPBaseline):
        return {"family": "mlp", "width": design.width, "members": members, "depth": baseline.hidden_layers,
                "in_shape": [baseline.input_dim], "num_classes": baseline.outputs,
                "options": {"bias": baseline.bias}}
    return {"family": "resnext-block", "channels": baseline.channels, "cardinality": members,
            "bottleneck_width": design.width}


def run(args: argparse.Namespace) -> dict[str, Any]:
    baseline = _baseline(args)
    if args.max_width is not None and args.max_width < 1:
        raise EnsplitError(f"--max-width must be a positive integer, got {args.max_width}")
    if args.samples < 10:
        raise EnsplitError(f"--samples must be at least 10, got {args.samples}")
    alpha, fit = _alpha(args, baseline)
    design = solve(baseline, alpha, args.objective, args.cost, args.max_width)
    path_params = float(baseline.path_cost(design.width, "params"))
    result: dict[str, Any] = {
        "objective": design.objective, "width": design.width, "members": design.members,
        "efficiency": design.efficiency, "baseline_params": baseline.baseline_cost("params"),
        "params": design.members * path_params, "cost": design.cost, "alpha": alpha,
        "alpha_stderr": fit.stderr if fit else None, "baseline": args.baseline, "baseline_width": baseline.width,
        "baseline_cardinality": baseline.paths,
        "variance": design.variance, "baseline_variance": design.baseline_variance,
    }
    if design.cost == "flops":
        result.update(baseline_flops=design.baseline_cost, flops=design.cost_total)
    result["design"] = _design_for_training(baseline, design)
    if args.baseline == "resnext":
        whole = whole_network_design(
            design.width, baseline.paths, baseline.width, args.num_classes or 10,
            cardinality=None if design.objective == "primal" else integer_members(design))
        result["whole_network"] = {"name": whole.name, "cardinality": whole.cardinality,
                                   "bottleneck_width": whole.bottleneck_width, "params": whole.params,
                                   "baseline": f"{baseline.paths}x{baseline.width}d",
                                   "baseline_params": whole.baseline_params, "efficiency": whole.efficiency}
        result["design"] = {"family": "resnext", "width": whole.bottleneck_width, "depth": 29,
                            "cardinality": whole.cardinality, "bottleneck_width": whole.bottleneck_width,
                            "num_classes": args.num_classes or 10, "options": {"cardinality": whole.cardinality}}
    if args.report:
        from ensplit.report.collegial_figures import write_collegial_report

        print("writing the report (runs the ensemble-NTK convergence check) ...", file=sys.stderr)
        result["report"] = str(write_collegial_report(args.report, baseline, design, fit, result))
    return result


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
