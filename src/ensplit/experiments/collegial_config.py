"""`collegial`'s settings: the baseline to redesign, the objective and cost, where α comes from, and (with
`train`) which collegial ensembles to train along the primal and dual curves with the recipe.

A collegial run folder's identity is its recipe alone (as compare's): the design settings only choose which
networks are planned, so a rerun with another α or more widths trains what it adds and reuses the rest; the
executor (local, process, ray) only says where the networks are trained.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ensplit.errors import EnsplitError
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.identity import RecipeIdentified
from ensplit.settings import RunnerFields, config_class

Positive = Annotated[int, Field(ge=1, le=1_000_000)]
ONLY = {  # option -> baselines it applies to
    "input_dim": ("mlp",), "hidden_layers": ("mlp",), "outputs": ("mlp",), "bias": ("mlp",),
    "block_channels": ("resnext-block",), "cardinality": ("resnext-block", "resnext"),
    "bottleneck_width": ("resnext",), "num_classes": ("resnext",),
}


@config_class(groups=(RunnerFields,))
class CollegialConfig(RecipeIdentified):
    """The baseline to redesign, the objective and cost, and where α comes from."""

    EXPERIMENT: ClassVar[str] = "collegial"  # named in the folder's identity

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
