"""The memory-split study's settings and plan: which widths, how many networks each, how they are packed.

Pool size per width (science.md §1): ℓ = clamp(⌈pool_factor · s_ref / s⌉, pool_min, pool_max) with s_ref
the parameter count of the largest width, so each width gets about the same compute. The study's identity
(`fingerprint`) hashes everything that decides what is trained, in the flat layout study folders have
always been hashed in: a folder made before the recipe existed keeps its fingerprint and its job ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Annotated, Any, Literal

from pydantic import Field

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.plan import TrainJob, chunks, identifying_train_options, network_seed
from ensplit.train.config import config_class

Width = Annotated[int, Field(ge=1, le=1_000_000)]


@config_class
class StudyConfig:
    """A memory-split study: pools of independently trained networks at each width, then the analysis."""

    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    widths: Annotated[tuple[Width, ...], Field(min_length=1, max_length=64, description="member widths, "
                                               "comma-separated")] = (16, 32, 64, 128, 256)
    pool_factor: Annotated[float, Field(gt=0, le=10_000, description="pool size rule ℓ = ⌈pool_factor · "
                                                                      "s_max / s⌉")] = 8.0
    pool_min: Annotated[int, Field(ge=1, le=100_000, description="smallest pool per width")] = 8
    pool_max: Annotated[int, Field(ge=1, le=100_000, description="largest pool per width")] = 32
    members_per_run: Annotated[int, Field(ge=1, le=100_000, description="members trained together in one "
                                                                         "model")] = 32
    tune: Annotated[bool, Field(description="choose weight decay and dropout per width on validation")] = False
    tune_weight_decays: Annotated[tuple[Annotated[float, Field(ge=0, le=1)], ...], Field(
        min_length=1, description="weight decays tried by --tune")] = (0.0, 1e-4, 1e-3)
    tune_dropouts: Annotated[tuple[Annotated[float, Field(ge=0, lt=1)], ...], Field(
        min_length=1, description="dropouts tried by --tune")] = (0.0, 0.1)
    tune_networks: Annotated[int, Field(ge=1, le=1000, description="networks per grid cell when tuning")] = 2
    temperature: Annotated[Literal["before", "after"], Field(description="calibrate before or after "
                                                                         "averaging")] = "before"
    cnll_splits: Annotated[int, Field(ge=1, le=1000, description="test-time cross-validation splits")] = 5
    predict_max_n: Annotated[int, Field(ge=2, le=1000, description="prediction fits on n ≤ this")] = 4
    predict_pool: Annotated[int, Field(ge=3, le=100_000, description="networks the prediction starts from")] = 6
    bootstrap: Annotated[int, Field(ge=0, le=10_000, description="resamples for prediction bands")] = 40
    executor: Annotated[Literal["local", "process", "ray"], Field(description="local, process or ray")] = "local"
    workers: Annotated[int, Field(ge=1, le=4096, description="process-pool or Ray workers")] = 2
    address: Annotated[str, Field(description="Ray cluster address (default: a local instance)")] | None = None
    gpus_per_job: Annotated[float, Field(gt=0, le=1, description="fraction of a GPU per Ray task (with a CUDA "
                                                                  "device)")] = 0.25

    def __post_init__(self) -> None:
        if len(set(self.widths)) != len(self.widths):
            raise EnsplitError(f"widths = {list(self.widths)}: must be distinct")
        if self.pool_max < self.pool_min:
            raise EnsplitError(f"pool_max = {self.pool_max}: must be >= pool_min ({self.pool_min})")
        if self.tune and self.recipe.validation_fraction == 0.0:  # tuning needs a validation split
            object.__setattr__(self, "recipe", dataclasses.replace(self.recipe, validation_fraction=0.1))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> StudyConfig:
        """From a config mapping (TOML layout, see `ensplit.recipe`); strings are parsed like flags."""
        return build_settings(cls, "study", values)

    def identity(self) -> dict[str, Any]:
        """Everything that decides what is trained and stored, in the flat layout folders are hashed in."""
        r = self.recipe
        return {"dataset": r.dataset, "num_samples": r.num_samples, "data_seed": r.data_seed,
                "train_subset": r.train_subset, "test_subset": r.test_subset,
                "validation_fraction": r.validation_fraction, "family": r.family, "depth": r.depth,
                "family_options": dict(r.family_options), "widths": list(self.widths),
                "pool_factor": self.pool_factor, "pool_min": self.pool_min, "pool_max": self.pool_max,
                "members_per_run": self.members_per_run, "seed": r.seed,
                "train": identifying_train_options(dataclasses.asdict(r.train)), "tune": self.tune,
                "tune_weight_decays": list(self.tune_weight_decays), "tune_dropouts": list(self.tune_dropouts),
                "tune_networks": self.tune_networks}

    def fingerprint(self) -> str:
        """Hash of `identity()`: a study folder holds the results of one fingerprint only."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=list).encode()).hexdigest()[:16]

    def differences(self, other: StudyConfig) -> list[str]:
        mine, theirs = self.identity(), other.identity()
        return [k for k in mine if mine[k] != theirs[k]]


def member_params(config: StudyConfig, width: int, data: Dataset | None = None) -> int:
    """Parameters of one network of `width` under the study's recipe."""
    return config.recipe.params(width, data)


def pool_sizes(config: StudyConfig, data: Dataset | None = None) -> dict[int, int]:
    """ℓ(s) = clamp(⌈pool_factor · s_ref / s⌉, pool_min, pool_max), s_ref = params at the largest width."""
    params = {w: member_params(config, w, data) for w in config.widths}
    reference = max(params.values())
    return {w: min(config.pool_max, max(config.pool_min, math.ceil(config.pool_factor * reference / p)))
            for w, p in params.items()}


def _job(config: StudyConfig, kind: str, width: int, train: dict[str, Any], seeds: tuple[int, ...],
         first: int) -> TrainJob:
    r = config.recipe
    return TrainJob(kind, r.family, width, r.depth, tuple(sorted(r.family_options.items())), r.data,
                    tuple(sorted(train.items())), seeds, first)


def plan_pool_jobs(config: StudyConfig, overrides: dict[int, dict[str, Any]] | None = None,
                   data: Dataset | None = None) -> list[TrainJob]:
    """The pool jobs, smallest width first; `overrides[width]` changes training fields (from tuning)."""
    sizes = pool_sizes(config, data)
    base_train = dataclasses.asdict(config.recipe.train)
    jobs = []
    for width in sorted(config.widths):
        train = {**base_train, **(overrides or {}).get(width, {})}
        for start, stop in chunks(sizes[width], config.members_per_run):
            seeds = tuple(network_seed(config.recipe.seed, "pool", width, i) for i in range(start, stop))
            jobs.append(_job(config, "pool", width, train, seeds, start))
    return jobs


def tuning_grid(config: StudyConfig) -> list[dict[str, float]]:
    return [{"weight_decay": wd, "dropout": p} for wd in config.tune_weight_decays for p in config.tune_dropouts]


def plan_tune_jobs(config: StudyConfig) -> list[TrainJob]:
    """One job per (width, grid cell): `tune_networks` networks each, judged on the validation split."""
    base_train = dataclasses.asdict(config.recipe.train)
    jobs = []
    for width in sorted(config.widths):
        for cell, values in enumerate(tuning_grid(config)):
            seeds = tuple(network_seed(config.recipe.seed, "tune", width, i, cell)
                          for i in range(config.tune_networks))
            jobs.append(_job(config, "tune", width, {**base_train, **values}, seeds, cell))
    return jobs
