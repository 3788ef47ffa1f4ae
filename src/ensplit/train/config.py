"""Training hyper-parameters: one frozen, validated dataclass (the `[train]` table of every recipe).

Each field carries its range or choices and a one-line help text, so the command-line options, the TOML
table and the validation all come from this one declaration (see `ensplit.settings`; bounds that other
settings share, such as the learning rate's, are typed options declared there once). The field names are
hashed into stored job ids: renaming one would orphan every study folder made before.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from ensplit.settings import STRICT, config_class
from ensplit.settings.options import DropoutRate, Epochs, LearningRate, WeightDecay

PRECISIONS = ("fp32", "bf16")


@config_class
class TrainConfig:
    """How every member is trained. The defaults are re-derived on validation for MNIST-1D (lr 0.1;
    benchmarks/results/default_recipe.md); folders made with the old lr 0.05 resume with `--lr 0.05`.

    schedule: "cosine" (to zero over all epochs), "step" (× step_gamma at each milestone fraction)
    or "constant". batching: "independent" (each member its own data order, the deep-ensemble
    default) or "shared" (one order for all members, as BatchEnsemble tiles its input).
    precision: "fp32" (the model's own dtype throughout) or "bf16" (forward pass and loss under bf16
    autocast; weights, gradients and optimizer state stay in the model's dtype). compile: the training
    forward pass through `torch.compile` (prediction stays eager). channels_last: for 2-d image models,
    weights and activations in NHWC layout (same numbers, other kernels). See docs/scale-out.md.
    """

    epochs: Annotated[Epochs, Field(description="training epochs")] = 40
    batch_size: Annotated[int, Field(ge=1, le=1 << 20, description="examples per member and step")] = 128
    optimizer: Annotated[Literal["sgd", "adam", "adamw"], Field(description="sgd, adam or adamw")] = "sgd"
    lr: Annotated[LearningRate, Field(description="learning rate")] = 0.1
    momentum: Annotated[float, Field(ge=0, lt=1, description="SGD momentum")] = 0.9
    nesterov: Annotated[bool, Field(description="Nesterov momentum")] = False
    weight_decay: Annotated[WeightDecay, Field(description="L2 penalty on the weights (decoupled in AdamW)")] = 5e-4
    dropout: Annotated[DropoutRate, Field(description="dropout rate of the family's dropout layers")] = 0.0
    schedule: Annotated[Literal["cosine", "step", "constant"], Field(description="cosine, step or constant")] = (
        "cosine")
    step_milestones: Annotated[tuple[float, ...], Field(description="epoch fractions of the step schedule")] = (
        0.5, 0.75)
    step_gamma: Annotated[float, Field(gt=0, le=1, description="factor at each milestone")] = 0.1
    label_smoothing: Annotated[float, Field(ge=0, lt=1, description="label smoothing of the loss")] = 0.0
    augment: Annotated[bool, Field(description="random crop and flip for images")] = True
    batching: Annotated[Literal["independent", "shared"], Field(
        description="independent (own data order per member) or shared")] = "independent"
    track_test_accuracy: Annotated[bool, Field(description="record test accuracy after every epoch")] = False
    precision: Annotated[Literal["fp32", "bf16"], Field(description="fp32 or bf16 (autocast)")] = "fp32"
    compile: Annotated[bool, Field(description="torch.compile the training forward")] = False
    channels_last: Annotated[bool, Field(description="channels-last memory for image models")] = False

    @field_validator("step_milestones")
    @classmethod
    def _milestones(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < m < 1 for m in value) or list(value) != sorted(value):
            raise ValueError("milestones must be increasing fractions in (0, 1)")
        return value


__all__ = ["PRECISIONS", "STRICT", "TrainConfig", "config_class"]  # config_class, STRICT: old import path
