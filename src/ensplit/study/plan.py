"""Expand a study config into training jobs with stable ids (a hash of everything they depend on)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ensplit.models import count_params
from ensplit.study.config import StudyConfig, identifying_train_options


@dataclass(frozen=True)
class DataSpec:
    """Enough to rebuild the same data set in any worker process."""

    dataset: str
    num_samples: int
    data_seed: int
    train_subset: int | None
    test_subset: int | None
    validation_fraction: float


@dataclass(frozen=True)
class TrainJob:
    """Train `len(seeds)` independent networks of one size together (one member-batched model).

    kind "pool": networks of the study's pools; kind "tune": hyper-parameter search on the validation split.
    """

    kind: str
    family: str
    width: int
    depth: int | None
    family_options: tuple[tuple[str, Any], ...]
    data: DataSpec
    train: tuple[tuple[str, Any], ...]
    seeds: tuple[int, ...]
    first_index: int  # index of the first member within its pool (or tuning cell)

    @property
    def job_id(self) -> str:
        data = dataclasses.asdict(self)
        data["train"] = sorted(identifying_train_options(dict(self.train)).items())
        payload = json.dumps(data, sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    @property
    def train_dict(self) -> dict[str, Any]:
        return dict(self.train)


def data_spec(config: StudyConfig) -> DataSpec:
    return DataSpec(config.dataset, config.num_samples, config.data_seed, config.train_subset,
                    config.test_subset, config.validation_fraction)


def network_seed(study_seed: int, kind: str, width: int, index: int, cell: int = 0) -> int:
    """A stable per-network seed: it depends on the network's identity, never on how jobs are packed."""
    digest = hashlib.sha256(f"{study_seed}/{kind}/{width}/{cell}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def member_params(config: StudyConfig, width: int, in_shape: tuple[int, ...] | None = None,
                  num_classes: int | None = None) -> int:
    return count_params(config.family, width, config.depth, in_shape, num_classes, **config.family_options)


def pool_sizes(config: StudyConfig, in_shape: tuple[int, ...] | None = None,
               num_classes: int | None = None) -> dict[int, int]:
    """ℓ(s) = clamp(⌈pool_factor · s_ref / s⌉, pool_min, pool_max), s_ref = params at the largest width."""
    params = {w: member_params(config, w, in_shape, num_classes) for w in config.widths}
    reference = max(params.values())
    return {w: min(config.pool_max, max(config.pool_min, math.ceil(config.pool_factor * reference / p)))
            for w, p in params.items()}


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(total, start + size)) for start in range(0, total, size)]


def plan_pool_jobs(config: StudyConfig, overrides: dict[int, dict[str, Any]] | None = None,
                   in_shape: tuple[int, ...] | None = None, num_classes: int | None = None) -> list[TrainJob]:
    """The pool jobs, smallest width first; `overrides[width]` changes training fields (from tuning)."""
    sizes = pool_sizes(config, in_shape, num_classes)
    base_train = dataclasses.asdict(config.train)
    jobs = []
    for width in sorted(config.widths):
        train = {**base_train, **(overrides or {}).get(width, {})}
        for start, stop in _chunks(sizes[width], config.members_per_run):
            seeds = tuple(network_seed(config.seed, "pool", width, i) for i in range(start, stop))
            jobs.append(TrainJob("pool", config.family, width, config.depth,
                                 tuple(sorted(config.family_options.items())), data_spec(config),
                                 tuple(sorted(train.items())), seeds, start))
    return jobs


def tuning_grid(config: StudyConfig) -> list[dict[str, float]]:
    return [{"weight_decay": wd, "dropout": p} for wd in config.tune_weight_decays for p in config.tune_dropouts]


def plan_tune_jobs(config: StudyConfig) -> list[TrainJob]:
    """One job per (width, grid cell): `tune_networks` networks each, judged on the validation split."""
    base_train = dataclasses.asdict(config.train)
    jobs = []
    for width in sorted(config.widths):
        for cell, values in enumerate(tuning_grid(config)):
            seeds = tuple(network_seed(config.seed, "tune", width, i, cell) for i in range(config.tune_networks))
            jobs.append(TrainJob("tune", config.family, width, config.depth,
                                 tuple(sorted(config.family_options.items())), data_spec(config),
                                 tuple(sorted({**base_train, **values}.items())), seeds, cell))
    return jobs
