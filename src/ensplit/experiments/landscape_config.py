"""`landscape`'s settings: which network, how many inits, the checkpoint schedule and how much of each analysis.

A landscape folder's identity is its recipe alone (as compare's): the width, the inits and the checkpoint
schedule are part of each init's job id (`landscape_plan`), so a rerun with one more init trains that init and
reuses the others; the analysis settings choose nothing that is stored, and the executor (local, process, ray)
only says where the inits train.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, ClassVar

from pydantic import Field

from ensplit.errors import EnsplitError
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.identity import RecipeIdentified
from ensplit.settings import RunnerFields, config_class

Count = Annotated[int, Field(ge=1, le=100_000)]
# Similarity within a trajectory compares two of its checkpoints; with two inits that also gives the t-SNE
# the 3 points it needs.
MIN_CHECKPOINTS_PER_INIT = 2


@config_class(groups=(RunnerFields,))
class LandscapeConfig(RecipeIdentified):
    """Which network, how many inits, and how much of each analysis. Init k starts from `recipe.seed + k`."""

    EXPERIMENT: ClassVar[str] = "landscape"  # named in the folder's identity

    recipe: Recipe = field(default_factory=Recipe)
    width: Annotated[int, Field(ge=1, le=1_000_000, description="the family's width knob")] = 256
    inits: Annotated[int, Field(ge=2, le=1024, description="independent random inits (>= 2)")] = 5
    every: Annotated[Count, Field(description="checkpoint every N epochs")] = 5
    tail_epochs: Annotated[int, Field(ge=0, le=100_000, description="constant-rate epochs after training, "
                                      "checkpointed each epoch, for SWA and the tail Gaussians (0 skips them)")] = 10
    tail_lr: Annotated[float, Field(gt=0, le=1e3, description="learning rate of the tail (default: lr / 2)")] | None = (
        None)
    samples: Annotated[int, Field(ge=2, le=10_000, description="networks per sampler scale")] = 8
    rank: Annotated[int, Field(ge=1, le=10_000, description="rank of the low-rank samplers")] = 5
    bezier_epochs: Annotated[int, Field(ge=0, le=100_000, description="epochs to fit the Bezier curve "
                                                                     "(0: skip)")] = 10
    trajectories: Annotated[str, Field(description="analyse saved checkpoints without training: a folder with "
                                                   "manifest.json (an older landscape's checkpoints/, or "
                                                   "train_trajectories(out=...))")] | None = None

    def __post_init__(self) -> None:
        if not self.trajectories:  # loaded trajectories are counted when they are read
            count = self.checkpoints_per_init
            if count < MIN_CHECKPOINTS_PER_INIT:
                raise EnsplitError(
                    f"epochs = {self.recipe.train.epochs}, every = {self.every}, tail_epochs = {self.tail_epochs}: "
                    f"{count} checkpoint per init (ceil(epochs / every) + tail_epochs), but the within-trajectory "
                    f"similarity and the t-SNE need >= {MIN_CHECKPOINTS_PER_INIT}: raise --epochs or --tail-epochs, "
                    "or lower --every")

    @property
    def checkpoints_per_init(self) -> int:
        """Checkpoints each init's trajectory gets: one every `every` epochs and one at the end of training
        (ceil(epochs / every)), then one per tail epoch."""
        return -(-self.recipe.train.epochs // self.every) + self.tail_epochs

    @property
    def resolved_tail_lr(self) -> float:
        """The tail's learning rate: `tail_lr`, or half the recipe's (what `train_trajectories` defaults to)."""
        return self.recipe.train.lr / 2 if self.tail_lr is None else self.tail_lr

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> LandscapeConfig:
        return build_settings(cls, "landscape", values)
