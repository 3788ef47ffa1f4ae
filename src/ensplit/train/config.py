"""Training hyper-parameters (one frozen dataclass; TOML-loadable through the study config)."""

from __future__ import annotations

from dataclasses import dataclass

from ensplit.errors import EnsplitError

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """How every member is trained. The defaults suit MNIST-1D MLPs on a CPU.

    schedule: "cosine" (to zero over all epochs), "step" (× step_gamma at each milestone fraction)
    or "constant". batching: "independent" (each member its own data order, the deep-ensemble
    default) or "shared" (one order for all members, as BatchEnsemble tiles its input).
    precision: "fp32" (the model's own dtype throughout) or "bf16" (forward pass and loss under bf16
    autocast; weights, gradients and optimizer state stay in the model's dtype). compile: the training
    forward pass through `torch.compile` (prediction stays eager). channels_last: for 2-d image models,
    weights and activations in NHWC layout (same numbers, other kernels). See docs/scale-out.md.
    """

    epochs: int = 40
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    dropout: float = 0.0
    schedule: str = "cosine"
    step_milestones: tuple[float, ...] = (0.5, 0.75)
    step_gamma: float = 0.1
    label_smoothing: float = 0.0
    augment: bool = True
    batching: str = "independent"
    track_test_accuracy: bool = False
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise EnsplitError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise EnsplitError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise EnsplitError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise EnsplitError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.dropout < 1:
            raise EnsplitError(f"dropout must be in [0, 1), got {self.dropout}")
        choices = {"optimizer": ("sgd", "adam", "adamw"), "schedule": ("cosine", "step", "constant"),
                   "batching": ("independent", "shared"), "precision": PRECISIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise EnsplitError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
