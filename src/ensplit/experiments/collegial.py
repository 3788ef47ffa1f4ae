"""Collegial ensembles (Littwin et al. 2020; science.md §4): width n and multiplicity m from the NTK
variance at initialisation, primal (least variance at the baseline's cost) or dual (least cost at its
variance), with α given or fitted by Monte Carlo.

`run_collegial(config, out)` designs the ensemble; with `train`, it also trains collegial ensembles along
the primal and dual curves on the recipe's data (`collegial_train`), each network a `TrainJob` stored in the run
folder `out` (resumable: a killed run rerun with the same command trains only what is missing; without `out`,
a temporary folder that is forgotten). With `out`, it writes `out/results.json` (what `to_json()` returns, which
`ensplit collegial --json` prints) and the caller writes `out/report.html` (curves, α fit, training, the
ensemble-NTK convergence check). The recipe gives the α Monte Carlo's seed and the training.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensplit._version import provenance
from ensplit.analysis.collegial import BottleneckBaseline, CollegialDesign, MLPBaseline, integer_members, solve
from ensplit.analysis.collegial_montecarlo import AlphaFit, fit_alpha
from ensplit.analysis.resnext29 import whole_network_design
from ensplit.errors import EnsplitError
from ensplit.experiments.collegial_config import CollegialConfig
from ensplit.experiments.collegial_train import CurveTraining, train_curves
from ensplit.files import atomic_write_text
from ensplit.jsonable import to_jsonable
from ensplit.runs.folder import admit, legacy_run_folder
from ensplit.store import folder_lock
from ensplit.store.ownership import claim_folder, json_with, report_and

__all__ = ["CollegialConfig", "CollegialResult", "baseline_of", "design_for_training", "run_collegial"]


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

    def save(self, folder: Path) -> None:
        """`folder/results.json`: the same object as `to_json()` (rewritten once the page's path is known)."""
        atomic_write_text(Path(folder) / "results.json", json.dumps(self.to_json(), indent=1))


def _collegial_folder(directory: Path, names: set[str]) -> bool:
    """A collegial folder without the ownership marker: the page (and results.json) of a design, or a run folder
    of collegial's."""
    older = report_and({"results.json": json_with(("ensplit_version", "ensplit"), "objective")})
    return older(directory, names) or legacy_run_folder("collegial")(directory, names)


def run_collegial(config: CollegialConfig, out: str | Path | None = None, progress: bool = True) -> CollegialResult:
    """Design the collegial ensemble of the configured baseline (and train along its curves, resuming what `out`
    holds); with `out`, write `out/results.json` (the caller writes the page: `ensplit.reports.write(result, out)`).
    Without `out`, training runs in a temporary folder that is forgotten."""
    if out is None:
        if not config.train:
            return _collegial(config, None, progress)
        with tempfile.TemporaryDirectory(prefix="ensplit-collegial-") as scratch:
            return _collegial(config, Path(scratch), progress)
    with folder_lock(out, "collegial"):  # an unusable --out is refused before any work
        claim_folder(Path(out), "collegial", _collegial_folder)
        result = _collegial(admit(config, out, "collegial"), Path(out), progress)
        result.save(Path(out))
        return result


def _collegial(config: CollegialConfig, folder: Path | None, progress: bool) -> CollegialResult:
    """The design (and its training curves, stored in `folder`); the caller holds `folder`'s lock."""
    baseline = baseline_of(config)
    alpha, fit = _alpha(config, baseline, progress)
    design = solve(baseline, alpha, config.objective, config.cost, config.max_width)
    if not (math.isfinite(design.variance) and math.isfinite(design.baseline_variance)):
        raise EnsplitError(f"alpha = {alpha:g}: the NTK variance exp(α Σ) − 1 overflows for this baseline; "
                           "α of a few units is usual (3.64 for the seed's MLP)")
    values = design_values(config, baseline, design, alpha, fit)
    training = None
    if config.train:
        assert isinstance(baseline, MLPBaseline) and folder is not None  # __post_init__ refuses other baselines
        training = train_curves(config, baseline, alpha, folder, progress)
        values.update(training=training.rows, training_optimum=training.optimum, recipe=config.recipe.to_json())
    return CollegialResult(values, baseline, design, fit, config, training)


def design_values(config: CollegialConfig, baseline: MLPBaseline | BottleneckBaseline, design: CollegialDesign,
                  alpha: float, fit: AlphaFit | None) -> dict[str, Any]:
    """The design's JSON values: the optimum, its cost and variance against the baseline's, the design for
    training (for resnext, the whole network's), and the provenance."""
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
    else:  # the same quantities in FLOPs, though the design counted parameters
        values.update(baseline_flops_per_example=baseline.baseline_cost("flops"),
                      flops_per_example=design.members * float(baseline.path_cost(design.width, "flops")))
    values["design"] = design_for_training(baseline, design)
    if config.baseline == "resnext":
        values.update(_whole_network(config, baseline, design))
    return values


def _whole_network(config: CollegialConfig, baseline: MLPBaseline | BottleneckBaseline,
                   design: CollegialDesign) -> dict[str, Any]:
    """The whole ResNeXt-29 of the block design (`whole_network`) and its design for training (`design`)."""
    classes = config.num_classes or 10
    whole = whole_network_design(design.width, baseline.paths, baseline.width, classes,
                                 cardinality=None if design.objective == "primal" else integer_members(design),
                                 cost=design.cost)
    return {"whole_network": {"name": whole.name, "cardinality": whole.cardinality,
                              "bottleneck_width": whole.bottleneck_width, "params": whole.params,
                              "baseline": f"{baseline.paths}x{baseline.width}d",
                              "baseline_params": whole.baseline_params, "flops_per_example": whole.flops,
                              "baseline_flops_per_example": whole.baseline_flops, "cost": whole.cost,
                              "efficiency": whole.efficiency},
            "design": {"family": "resnext", "width": whole.bottleneck_width, "depth": 29,
                       "cardinality": whole.cardinality, "bottleneck_width": whole.bottleneck_width,
                       "num_classes": classes, "options": {"cardinality": whole.cardinality}}}
