"""Collegial ensembles (Littwin et al. 2020; science.md §4): width n and multiplicity m from the NTK
variance at initialisation, primal (least variance at the baseline's cost) or dual (least cost at its
variance), with α given or fitted by Monte Carlo.

`run_collegial(config, out)` designs the ensemble; with `train`, it also trains collegial ensembles along
the primal and dual curves on the recipe's data (`collegial_train`); with `out`, the caller writes
`out/report.html` (curves, α fit, training, the ensemble-NTK convergence check). `CollegialResult.to_json()`
is what `ensplit collegial --json` prints. The recipe gives the α Monte Carlo's seed and the training.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from ensplit._version import provenance
from ensplit.analysis.collegial import BottleneckBaseline, CollegialDesign, MLPBaseline, integer_members, solve
from ensplit.analysis.collegial_montecarlo import AlphaFit, fit_alpha
from ensplit.analysis.resnext29 import whole_network_design
from ensplit.errors import EnsplitError
from ensplit.experiments.collegial_train import CurveTraining, train_curves
from ensplit.jsonable import to_jsonable
from ensplit.recipe import Recipe, build_settings
from ensplit.store import folder_lock
from ensplit.store.ownership import claim_folder, report_and
from ensplit.train.config import config_class

Positive = Annotated[int, Field(ge=1, le=1_000_000)]
ONLY = {  # option -> baselines it applies to
    "input_dim": ("mlp",), "hidden_layers": ("mlp",), "outputs": ("mlp",), "bias": ("mlp",),
    "block_channels": ("resnext-block",), "cardinality": ("resnext-block", "resnext"),
    "bottleneck_width": ("resnext",), "num_classes": ("resnext",),
}


@config_class
class CollegialConfig:
    """The baseline to redesign, the objective and cost, and where α comes from."""

    recipe: Recipe = field(default_factory=Recipe)
    baseline: Annotated[Literal["mlp", "resnext-block", "resnext"], Field(
        description="mlp (fully connected), resnext-block (one bottleneck block) or resnext (CIFAR ResNeXt-29)")] = (
        "mlp")
    objective: Annotated[Literal["primal", "dual"], Field(description="primal: least variance at the baseline's "
                                                                      "cost; dual: least cost at its variance")] = (
        "primal")
    cost: Annotated[Literal["params", "flops"], Field(description="efficiency in parameters or FLOPs")] = "params"
    alpha: Annotated[float, Field(gt=0, le=100, description="α of the variance model Var ∝ exp(α Σ 1/fan_in) − 1")
                     ] | None = None
    fit_alpha: Annotated[bool, Field(description="fit α by Monte Carlo instead of giving it")] = False
    samples: Annotated[int, Field(ge=10, le=100_000, description="initialisations per width for the α fit")] = 500
    fit_widths: Annotated[tuple[Positive, ...], Field(max_length=256, description="widths of the α fit "
                                                      "(default: the baseline's range)")] = ()
    width: Annotated[Positive, Field(description="baseline width ñ (mlp hidden units; block bottleneck width)")
                     ] | None = None
    max_width: Annotated[Positive, Field(description="search n in 1..max_width (default: the baseline width)")
                         ] | None = None
    input_dim: Annotated[Positive, Field(description="mlp: input features")] | None = None
    hidden_layers: Annotated[Annotated[int, Field(ge=1, le=1000)], Field(description="mlp: hidden layers "
                                                                                     "(default 2)")] | None = None
    outputs: Annotated[Positive, Field(description="mlp: outputs (default 1)")] | None = None
    bias: Annotated[bool, Field(description="mlp: biases (default true)")] | None = None
    block_channels: Annotated[Positive, Field(description="resnext-block: channels in and out (default 256)")
                              ] | None = None
    cardinality: Annotated[Positive, Field(description="resnext(-block): baseline cardinality (default 1)")
                           ] | None = None
    bottleneck_width: Annotated[Positive, Field(description="resnext: baseline bottleneck width d")] | None = None
    num_classes: Annotated[Positive, Field(description="resnext: classes of the whole network (default 10)")
                           ] | None = None
    train: Annotated[bool, Field(description="train collegial ensembles along the primal and dual curves on the "
                                             "recipe's data (mlp baseline; Littwin et al. Figs. 4 and 6)")] = False
    train_curves: Annotated[tuple[Literal["primal", "dual"], ...], Field(
        min_length=1, description="curves to train along")] = ("primal", "dual")
    train_points: Annotated[int, Field(ge=1, le=64, description="widths per curve, spread in log n around the "
                                                                "predicted optimum (which is one of them)")] = 5
    train_widths: Annotated[tuple[Positive, ...], Field(max_length=64, description="train these path widths "
                                                        "instead (default: --train-points around the optimum)")] = ()
    train_seeds: Annotated[int, Field(ge=1, le=100, description="training runs (seeds) per point")] = 3

    def __post_init__(self) -> None:
        for option, baselines in ONLY.items():
            if getattr(self, option) is not None and self.baseline not in baselines:
                raise EnsplitError(f"{option} applies to baseline {' or '.join(baselines)}, not {self.baseline}")
        if self.fit_alpha == (self.alpha is not None):
            raise EnsplitError("give alpha or fit_alpha (exactly one): alpha = α, or fit_alpha = true (--fit-alpha) "
                               "for a Monte Carlo fit")
        if self.train and self.baseline != "mlp":
            raise EnsplitError(f"--train trains mlp baselines on the recipe's data, not baseline {self.baseline} "
                               "(e.g. --baseline mlp --input-dim 40 --outputs 10 for mnist1d)")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CollegialConfig:
        return build_settings(cls, "collegial", values)


def _need(name: str, value: int | None, default: int | None = None) -> int:
    value = default if value is None else value
    if value is None:
        raise EnsplitError(f"{name} is required for this baseline")
    return value


def baseline_of(config: CollegialConfig) -> MLPBaseline | BottleneckBaseline:
    """The baseline network the design starts from."""
    if config.baseline == "mlp":
        return MLPBaseline(input_dim=_need("input_dim", config.input_dim), width=_need("width", config.width),
                           hidden_layers=_need("hidden_layers", config.hidden_layers, 2),
                           outputs=_need("outputs", config.outputs, 1),
                           bias=True if config.bias is None else config.bias)
    if config.baseline == "resnext-block":
        return BottleneckBaseline(channels=_need("block_channels", config.block_channels, 256),
                                  width=_need("width", config.width), paths=_need("cardinality", config.cardinality, 1))
    if config.width is not None:
        raise EnsplitError("baseline resnext takes bottleneck_width (and cardinality), not width")
    return BottleneckBaseline(channels=256, width=_need("bottleneck_width", config.bottleneck_width),
                              paths=_need("cardinality", config.cardinality, 1))


def _alpha(config: CollegialConfig, baseline: MLPBaseline | BottleneckBaseline,
           progress: bool) -> tuple[float, AlphaFit | None]:
    if not config.fit_alpha:
        return float(config.alpha), None
    if progress:
        print(f"fitting alpha by Monte Carlo ({config.samples} initialisations per width) ...", file=sys.stderr)
    fit = fit_alpha(baseline, list(config.fit_widths) or None, samples=config.samples, seed=config.recipe.seed)
    if progress:
        print(f"alpha = {fit.alpha:.3f} ± {fit.stderr:.3f} ({fit.seconds:.1f} s)", file=sys.stderr)
    return fit.alpha, fit


def design_for_training(baseline: MLPBaseline | BottleneckBaseline, design: CollegialDesign) -> dict[str, Any]:
    """The integer design in the terms of `ensplit compare`/`study` (family, width, depth, members, options);
    a single bottleneck block is not a registered family, so it is named as a block."""
    members = integer_members(design)
    if isinstance(baseline, MLPBaseline):
        return {"family": "mlp", "width": design.width, "members": members, "depth": baseline.hidden_layers,
                "in_shape": [baseline.input_dim], "num_classes": baseline.outputs,
                "options": {"bias": baseline.bias}}
    return {"block": "resnext-bottleneck", "channels": baseline.channels, "cardinality": members,
            "bottleneck_width": design.width}


@dataclass
class CollegialResult:
    """The design. `to_json()` is what `ensplit collegial --json` prints."""

    values: dict[str, Any]
    baseline: MLPBaseline | BottleneckBaseline
    design: CollegialDesign
    fit: AlphaFit | None = None
    config: CollegialConfig | None = None
    training: CurveTraining | None = None   # with --train: rows and the test predictions behind them

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(self.values)

    @property
    def report(self) -> Path | None:
        """The page's path, once the caller wrote it (`ensplit.reports.write(result, out)`); in `to_json()` then."""
        return Path(self.values["report"]) if "report" in self.values else None

    @report.setter
    def report(self, path: Path | None) -> None:
        if path is None:
            self.values.pop("report", None)
        else:
            self.values["report"] = str(path)


def run_collegial(config: CollegialConfig, out: str | Path | None = None, progress: bool = True) -> CollegialResult:
    """Design the collegial ensemble of the configured baseline; `out` is claimed for the page, which the caller
    writes (`ensplit.reports.write(result, out)`)."""
    if out is None:
        return _collegial(config, progress)
    with folder_lock(out, "collegial"):  # an unusable --out is refused before any work
        claim_folder(Path(out), "collegial", report_and())
        return _collegial(config, progress)


def _collegial(config: CollegialConfig, progress: bool) -> CollegialResult:
    """The design (and its training curves); the caller holds `out`'s lock."""
    baseline = baseline_of(config)
    alpha, fit = _alpha(config, baseline, progress)
    design = solve(baseline, alpha, config.objective, config.cost, config.max_width)
    if not (math.isfinite(design.variance) and math.isfinite(design.baseline_variance)):
        raise EnsplitError(f"alpha = {alpha:g}: the NTK variance exp(α Σ) − 1 overflows for this baseline; "
                           "α of a few units is usual (3.64 for the seed's MLP)")
    path_params = float(baseline.path_cost(design.width, "params"))
    values: dict[str, Any] = {
        "objective": design.objective, "width": design.width, "members": design.members,
        "efficiency": design.efficiency, "baseline_params": baseline.baseline_cost("params"),
        "params": design.members * path_params, "cost": design.cost, "alpha": alpha,
        "alpha_stderr": fit.stderr if fit else None, "baseline": config.baseline, "baseline_width": baseline.width,
        "baseline_cardinality": baseline.paths, "variance": design.variance,
        "baseline_variance": design.baseline_variance, **provenance(),
    }
    if design.cost == "flops":
        values.update(baseline_flops_per_example=design.baseline_cost, flops_per_example=design.cost_total)
    values["design"] = design_for_training(baseline, design)
    if config.baseline == "resnext":
        classes = config.num_classes or 10
        whole = whole_network_design(design.width, baseline.paths, baseline.width, classes,
                                     cardinality=None if design.objective == "primal" else integer_members(design),
                                     cost=design.cost)
        values["whole_network"] = {"name": whole.name, "cardinality": whole.cardinality,
                                   "bottleneck_width": whole.bottleneck_width, "params": whole.params,
                                   "baseline": f"{baseline.paths}x{baseline.width}d",
                                   "baseline_params": whole.baseline_params, "flops_per_example": whole.flops,
                                   "baseline_flops_per_example": whole.baseline_flops, "cost": whole.cost,
                                   "efficiency": whole.efficiency}
        values["design"] = {"family": "resnext", "width": whole.bottleneck_width, "depth": 29,
                            "cardinality": whole.cardinality, "bottleneck_width": whole.bottleneck_width,
                            "num_classes": classes, "options": {"cardinality": whole.cardinality}}
    training = None
    if config.train:
        assert isinstance(baseline, MLPBaseline)  # __post_init__ refuses other baselines
        training = train_curves(config.recipe, baseline, alpha, design.cost, config.max_width, config.train_curves,
                                config.train_widths, config.train_points, config.train_seeds, progress)
        values.update(training=training.rows, training_optimum=training.optimum, recipe=config.recipe.to_json())
    return CollegialResult(values, baseline, design, fit, config, training)
