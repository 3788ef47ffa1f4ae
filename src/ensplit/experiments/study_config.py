"""The memory-split study's settings and plan: which widths, how many networks each, how they are packed.

Pool size per width, two rules (`pool_rule`):
- "clamped" (default, fast): ℓ = clamp(⌈pool_factor · s_ref / s⌉, pool_min, pool_max), so each width gets
  about the same compute within a bounded number of networks;
- "paper" (Lobacheva et al. §3, science.md §1): ℓ = max(N, ⌈pool_factor · s_standard / s⌉), N = `pool_networks`
  (the paper: 64 for VGG, 12 for WideResNet), pool_factor 8.
s_ref = s_standard = `pool_standard` parameters, by default those of the largest width. The study's identity
(`fingerprint`) hashes everything that decides what is trained, in the flat layout study folders have
always been hashed in: a folder made before the recipe existed keeps its fingerprint and its job ids. The
pool-rule fields join it only away from their defaults; the analysis fields (fit objective, resampling,
temperature grid) never do.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from ensplit.analysis.temperature_laws import DEFAULT_TAUS
from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.parsing import require_distinct
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.identity import Identified, recipe_identity
from ensplit.runs.plan import TrainJob, chunks, network_seed
from ensplit.runs.resources import FLOAT64, require, training_bytes
from ensplit.settings import AnalysisFields, RunnerFields, config_class

Width = Annotated[int, Field(ge=1, le=1_000_000)]


@config_class(groups=(AnalysisFields, RunnerFields))
class StudyConfig(Identified):
    """A memory-split study: pools of independently trained networks at each width, then the analysis."""

    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    widths: Annotated[tuple[Width, ...], Field(min_length=1, max_length=64, description="member widths, "
                                               "comma-separated")] = (16, 32, 64, 128, 256)
    pool_factor: Annotated[float, Field(gt=0, le=10_000, description="pool size rule ℓ = ⌈pool_factor · "
                                                                      "s_max / s⌉")] = 8.0
    pool_min: Annotated[int, Field(ge=1, le=10_000, description="smallest pool per width")] = 8
    pool_max: Annotated[int, Field(ge=1, le=10_000, description="largest pool per width")] = 32
    pool_rule: Annotated[Literal["clamped", "paper"], Field(description="pool size rule: clamped (⌈pool_factor · "
                                                              "s_ref / s⌉ within [pool_min, pool_max]) or paper "
                                                              "(max(pool_networks, ⌈pool_factor · s_standard / "
                                                              "s⌉), Lobacheva et al.)")] = "clamped"
    pool_networks: Annotated[int, Field(ge=1, le=10_000, description="N of the paper rule: fewest networks per "
                                                                       "width (the paper: 64 VGG, 12 WRN)")] = 12
    pool_standard: Annotated[int, Field(ge=1, description="s_standard (s_ref) of the pool rule, in parameters "
                                                          "(default: the largest width's)")] | None = None
    members_per_run: Annotated[int, Field(ge=1, le=100_000, description="members trained together in one "
                                                                         "model")] = 32
    tune: Annotated[bool, Field(description="choose weight decay and dropout per width on validation")] = False
    tune_weight_decays: Annotated[tuple[Annotated[float, Field(ge=0, le=1)], ...], Field(
        min_length=1, description="weight decays tried by --tune")] = (0.0, 1e-4, 1e-3)
    tune_dropouts: Annotated[tuple[Annotated[float, Field(ge=0, lt=1)], ...], Field(
        min_length=1, description="dropouts tried by --tune")] = (0.0, 0.1)
    tune_networks: Annotated[int, Field(ge=1, le=1000, description="networks per grid cell when tuning")] = 2
    temperature_grid = DEFAULT_TAUS  # AnalysisFields has no grid of its own; the analysis owns it

    def __post_init__(self) -> None:
        require_distinct("widths", self.widths)
        if self.pool_max < self.pool_min:
            raise EnsplitError(f"pool_max = {self.pool_max}: must be >= pool_min ({self.pool_min})")
        require_distinct("temperature_grid", self.temperature_grid)
        if self.tune and self.recipe.validation_fraction == 0.0:  # tuning needs a validation split
            object.__setattr__(self, "recipe", dataclasses.replace(self.recipe, validation_fraction=0.1))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> StudyConfig:
        """From a config mapping (TOML layout, see `ensplit.recipe`); strings are parsed like flags."""
        return build_settings(cls, "study", values)

    def identity(self) -> dict[str, Any]:
        """Everything that decides what is trained and stored, in the flat layout folders are hashed in: the
        recipe's identity without the experiment's name (study folders were hashed before it existed)."""
        identity = recipe_identity(self.recipe, "study")
        del identity["experiment"]
        identity.update(widths=list(self.widths), pool_factor=self.pool_factor, pool_min=self.pool_min,
                        pool_max=self.pool_max, members_per_run=self.members_per_run, tune=self.tune,
                        tune_weight_decays=list(self.tune_weight_decays), tune_dropouts=list(self.tune_dropouts),
                        tune_networks=self.tune_networks)
        if self.pool_rule != "clamped":  # later fields: hashed only away from their default (old ids hold)
            identity.update(pool_rule=self.pool_rule, pool_networks=self.pool_networks)
        if self.pool_standard is not None:
            identity["pool_standard"] = self.pool_standard
        return identity


def member_params(config: StudyConfig, width: int, data: Dataset | None = None) -> int:
    """Parameters of one network of `width` under the study's recipe."""
    return config.recipe.params(width, data)


def rule_pool_sizes(config: StudyConfig, params: dict[int, int]) -> dict[int, int]:
    """ℓ per width from the parameters per member `{width: s}` under the config's pool rule (module doc)."""
    reference = config.pool_standard or max(params.values())
    sizes = {}
    for width, p in params.items():
        wanted = math.ceil(config.pool_factor * reference / p)
        if config.pool_rule == "paper":
            sizes[width] = max(config.pool_networks, wanted)
        else:
            sizes[width] = min(config.pool_max, max(config.pool_min, wanted))
    return sizes


def pool_sizes(config: StudyConfig, data: Dataset | None = None) -> dict[int, int]:
    """ℓ(s) per width under the config's pool rule (see the module doc)."""
    return rule_pool_sizes(config, {w: member_params(config, w, data) for w in config.widths})


def describe_pool_rule(config: StudyConfig, params: dict[int, int]) -> dict[str, Any]:
    """The pool rule as the study summary reports it: rule, formula with its numbers, and ℓ per width."""
    reference = config.pool_standard or max(params.values())
    where = "the largest width" if config.pool_standard is None else "pool_standard"
    if config.pool_rule == "paper":
        formula = f"ℓ = max({config.pool_networks}, ⌈{config.pool_factor:g}·s_standard/s⌉)"
        numbers = {"networks": config.pool_networks}
    else:
        formula = f"ℓ = clamp(⌈{config.pool_factor:g}·s_ref/s⌉, {config.pool_min}, {config.pool_max})"
        numbers = {"min": config.pool_min, "max": config.pool_max}
    planned = rule_pool_sizes(config, params)
    name = "s_standard" if config.pool_rule == "paper" else "s_ref"
    return {"rule": config.pool_rule, "formula": f"{formula}, {name} = {reference:,} parameters ({where})",
            "factor": config.pool_factor, **numbers, "standard_params": reference,
            "planned": [{"width": w, "params": params[w], "networks": planned[w]} for w in sorted(params)]}


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


def check_resources(config: StudyConfig, data: Dataset, device: torch.device) -> None:
    """The study's largest job (widest member × members trained together) and its analysis must fit in
    memory: refused before anything is allocated (see `ensplit.runs.resources`)."""
    sizes = pool_sizes(config, data)
    test_values = int(data.y_test.shape[0]) * int(data.num_classes)
    for width in config.widths:
        params = member_params(config, width, data)
        together = min(sizes[width], config.members_per_run)
        require(training_bytes(params * together, config.recipe.train.optimizer), device,
                f"training {together} network(s) of width {width} together ({params:,} parameters each)",
                "lower the widths or --members-per-run")
    largest = max(sizes.values())
    require(2 * FLOAT64 * largest * test_values, device, f"analysing a pool of {largest:,} networks",
            "lower --pool-max or --test-subset")
