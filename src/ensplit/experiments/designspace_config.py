"""`designspace`'s settings: the (width, depth) grid of single networks, the ensemble sizes K, and how cost is
measured; the recipe says how every network is trained.

A designspace folder's identity is its recipe alone (as compare's): the grid only chooses which jobs are planned,
and the measuring settings are part of each cost job's id, so a rerun with a wider grid or more timing repeats
trains and measures only what it adds; the executor (local, process, ray) only says where the jobs run (cost
jobs time their networks: beside other workers on the same cores, their timings include that contention).
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, ClassVar

from pydantic import Field

from ensplit.parsing import require_distinct
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.identity import RecipeIdentified
from ensplit.settings import RunnerFields, config_class

Size = Annotated[int, Field(ge=1, le=1_000_000)]
# The settings of a cost measurement (see `designspace_jobs`), recorded in each cost job's id.
COST_SETTINGS = ("timing_steps", "timing_warmup", "timing_repeats", "inference_repeats", "large_batch",
                 "measure_memory", "memory_steps")


@config_class(groups=(RunnerFields,))
class DesignSpaceConfig(RecipeIdentified):
    """The grid and how to measure it; the recipe says how every network is trained.

    timing_steps: optimiser steps per timed run (None = a whole epoch), scaled to one epoch.
    large_batch: the batch size of the large-batch inference timing.
    est_fraction: share of the cells beyond the EST that ensembles must win (1.0 = all, Wasay & Idreos's reading).
    """

    EXPERIMENT: ClassVar[str] = "designspace"  # named in the folder's identity

    recipe: Recipe = field(default_factory=Recipe)
    widths: Annotated[tuple[Size, ...], Field(min_length=1, max_length=64, description="widths of the single "
                                              "networks, comma-separated")] = (32, 64, 128, 256)
    depths: Annotated[tuple[Size, ...], Field(min_length=1, max_length=64, description="depths of the single "
                                              "networks, comma-separated")] = (2, 4)
    members: Annotated[tuple[Annotated[int, Field(ge=2, le=1024)], ...], Field(
        min_length=1, max_length=64, description="ensemble sizes K (>= 2), comma-separated")] = (2, 4)
    timing_steps: Annotated[int, Field(ge=1, le=10**7, description="optimiser steps per timed run, scaled to an "
                                                                   "epoch (default: a whole epoch)")] | None = None
    timing_warmup: Annotated[int, Field(ge=0, le=1000, description="untimed warm-up runs")] = 1
    timing_repeats: Annotated[int, Field(ge=1, le=1000, description="timed runs (median)")] = 3
    inference_repeats: Annotated[int, Field(ge=1, le=1000, description="timed inference runs (median)")] = 5
    large_batch: Annotated[int, Field(ge=1, le=1 << 20, description="batch size of the large-batch "
                                                                    "inference")] = 1024
    measure_memory: Annotated[bool, Field(description="measure peak training memory")] = True
    memory_steps: Annotated[int, Field(ge=1, le=1000, description="training steps of a memory "
                                                                  "measurement")] = 3
    est_fraction: Annotated[float, Field(gt=0, le=1, description="share of the cells beyond the EST that "
                                                                 "ensembles must win")] = 1.0

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "members"):  # a repeated value would train and report the same rows twice
            require_distinct(name, getattr(self, name))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> DesignSpaceConfig:
        return build_settings(cls, "designspace", values)

    def cost_settings(self) -> tuple[tuple[str, Any], ...]:
        """The measuring settings as sorted (name, value) pairs, for the cost jobs' ids."""
        return tuple(sorted((name, getattr(self, name)) for name in COST_SETTINGS))
