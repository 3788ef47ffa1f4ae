"""The study config: a frozen dataclass loadable from TOML, every field overridable from the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ensplit.errors import EnsplitError
from ensplit.train.config import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class StudyConfig:
    """A memory-split study: pools of independently trained networks at each width.

    Pool size per width follows science.md §1: ℓ = clamp(⌈pool_factor · s_ref / s⌉, pool_min, pool_max)
    with s_ref the parameter count of the largest width, so each width gets about the same compute.
    Budgets are the totals n·s reachable in the grid (see `ensplit.analysis.memory_split`).
    """

    dataset: str = "mnist1d"
    num_samples: int = 5000
    data_seed: int = 42
    train_subset: int | None = None
    test_subset: int | None = None
    validation_fraction: float = 0.0
    family: str = "mlp"
    depth: int | None = None
    family_options: dict[str, Any] = field(default_factory=dict)
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    pool_factor: float = 8.0
    pool_min: int = 8
    pool_max: int = 32
    members_per_run: int = 32
    seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=40, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine", batch_size=128))
    tune: bool = False
    tune_weight_decays: tuple[float, ...] = (0.0, 1e-4, 1e-3)
    tune_dropouts: tuple[float, ...] = (0.0, 0.1)
    tune_networks: int = 2
    temperature: str = "before"
    cnll_splits: int = 5
    predict_max_n: int = 4
    predict_pool: int = 6
    bootstrap: int = 40
    device: str = "cpu"
    executor: str = "local"
    workers: int = 2
    address: str | None = None
    gpus_per_job: float = 0.25
    threads: int | None = None

    # fields that do not change what is trained or stored: a folder may be rerun with other values
    RUNTIME_FIELDS = ("device", "executor", "workers", "address", "gpus_per_job", "threads", "temperature",
                      "cnll_splits", "predict_max_n", "predict_pool", "bootstrap")

    def __post_init__(self) -> None:
        if not self.widths:
            raise EnsplitError("widths must not be empty")
        for w in self.widths:
            if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
                raise EnsplitError(f"width must be a positive integer, got {w!r}")
        if len(set(self.widths)) != len(self.widths):
            raise EnsplitError("widths must be distinct")
        if self.pool_min < 1 or self.pool_max < self.pool_min:
            raise EnsplitError("need 1 <= pool_min <= pool_max")
        if self.members_per_run < 1:
            raise EnsplitError("members_per_run must be >= 1")
        if self.temperature not in ("before", "after"):
            raise EnsplitError("temperature must be 'before' or 'after'")
        if self.executor not in ("local", "process", "ray"):
            raise EnsplitError("executor must be one of local, process, ray")
        if self.threads is not None and self.threads < 1:
            raise EnsplitError(f"threads must be >= 1, got {self.threads}")
        if not 0.0 < self.gpus_per_job <= 1.0:
            raise EnsplitError(f"gpus_per_job must be in (0, 1], got {self.gpus_per_job}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise EnsplitError("validation_fraction must be in [0, 1)")
        from ensplit.models import count_params

        count_params(self.family, self.widths[0], self.depth, **self.family_options)  # family, depth, options
        if self.tune and self.validation_fraction == 0.0:
            object.__setattr__(self, "validation_fraction", 0.1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Hash of everything that determines what is trained and stored."""
        data = {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME_FIELDS}
        data["train"] = identifying_train_options(data["train"])
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:16]

    def differences(self, other: StudyConfig) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in self.RUNTIME_FIELDS and mine[k] != theirs[k]]


_TRAIN_FIELDS = {f.name: f for f in fields(TrainConfig)}
_STUDY_FIELDS = {f.name: f for f in fields(StudyConfig)}

# Training fields added after study folders existed. Job ids and fingerprints hash the training options, so
# these are left out of the hash while at their default: a folder made before they existed still resumes.
LATER_TRAIN_FIELDS = ("precision", "compile", "channels_last")


def identifying_train_options(options: dict[str, Any]) -> dict[str, Any]:
    """The training options that identify a run: all of them but LATER_TRAIN_FIELDS at their default."""
    return {k: v for k, v in options.items()
            if not (k in LATER_TRAIN_FIELDS and v == _TRAIN_FIELDS[k].default)}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Cast a TOML or command-line value to the type of the field's default."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            sample = default[0] if default else (int if name == "widths" else float)
            cast = type(sample) if not isinstance(sample, type) else sample
            return tuple(cast(str(v).strip()) if cast is not str else str(v).strip() for v in items if str(v).strip())
        if isinstance(default, int) and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if default is None and isinstance(value, str):  # optional ints (depth, subsets) or strings
            if value.lower() in ("none", "null", ""):
                return None
            try:
                return int(value)
            except ValueError:
                return value
        if isinstance(default, dict):
            if isinstance(value, str):
                return json.loads(value)
            return dict(value)
        return value
    except (TypeError, ValueError, json.JSONDecodeError):
        raise EnsplitError(f"invalid value {value!r} for {name}") from None


def build_config(values: dict[str, Any]) -> StudyConfig:
    """A StudyConfig from a flat or nested mapping; `train.*` keys (or a [train] table) set TrainConfig."""
    study_kwargs: dict[str, Any] = {}
    train_kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key == "train" and isinstance(value, dict):
            for k, v in value.items():
                if k not in _TRAIN_FIELDS:
                    raise EnsplitError(f"unknown training option {k!r}; known: {', '.join(sorted(_TRAIN_FIELDS))}")
                train_kwargs[k] = v
            continue
        name = key.removeprefix("train.")
        if key.startswith("train.") or (key not in _STUDY_FIELDS and name in _TRAIN_FIELDS):
            if name not in _TRAIN_FIELDS:
                raise EnsplitError(f"unknown training option {name!r}")
            train_kwargs[name] = value
        elif key in _STUDY_FIELDS and key != "train":
            study_kwargs[key] = value
        else:
            known = sorted(set(_STUDY_FIELDS) | set(_TRAIN_FIELDS) - {"train", "RUNTIME_FIELDS"})
            raise EnsplitError(f"unknown study option {key!r}; known: {', '.join(known)}")
    default = StudyConfig()
    for k, v in list(study_kwargs.items()):
        study_kwargs[k] = _coerce(k, v, getattr(default, k))
    base_train = dataclasses.asdict(default.train)
    for k, v in list(train_kwargs.items()):
        train_kwargs[k] = _coerce(k, v, base_train[k])
    return StudyConfig(**study_kwargs, train=TrainConfig(**{**base_train, **train_kwargs}))


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise EnsplitError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise EnsplitError(f"config file {path} is not valid TOML: {error}") from None


def to_toml(config: StudyConfig) -> str:
    """Serialise to TOML (flat keys plus a [train] table); None values are left out."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(str(v))

    data = config.to_dict()
    train = data.pop("train")
    lines = [f"{k} = {value(v)}" for k, v in data.items() if v is not None]
    lines += ["", "[train]"] + [f"{k} = {value(v)}" for k, v in train.items() if v is not None]
    return "\n".join(lines) + "\n"
