"""Training jobs with stable ids: a job is a hash of everything it depends on, never of how it was packed.

A `TrainJob` trains `len(seeds)` networks of one size together (one member-batched model), or, for a
parameter-sharing method, one ensemble of `members` members per seed. Its `job_id` is what lets a killed
run resume: the store skips the jobs it holds. Fields added after study folders existed
(`LATER_JOB_FIELDS`, and the training fields in `LATER_TRAIN_FIELDS`) are left out of the hash while at
their default, so a folder made before they existed resumes with the same ids (pinned in the tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ensplit.data.spec import DataSpec
from ensplit.train.config import TrainConfig

# Training fields added after study folders existed: left out of job ids and fingerprints at their default.
LATER_TRAIN_FIELDS = ("precision", "compile", "channels_last")
_TRAIN_DEFAULTS = dataclasses.asdict(TrainConfig())
# Job fields added after study folders existed, with their defaults.
LATER_JOB_FIELDS = {"method": "deep", "members": 0, "method_options": ()}


def identifying_train_options(options: dict[str, Any]) -> dict[str, Any]:
    """The training options that identify a run: all of them but LATER_TRAIN_FIELDS at their default."""
    return {k: v for k, v in options.items()
            if not (k in LATER_TRAIN_FIELDS and v == _TRAIN_DEFAULTS[k])}


def identity_differences(given: dict[str, Any], folder: dict[str, Any], prefix: str = "") -> list[str]:
    """What differs between two settings' identities, field by field into nested tables (`train.epochs`), each
    with the folder's value and the given one, for a refusal that says what to change back."""
    lines = []
    for key in {**folder, **given}:
        mine, theirs = given.get(key, _UNSET), folder.get(key, _UNSET)
        if mine == theirs:
            continue
        if isinstance(mine, dict) and isinstance(theirs, dict):
            lines += identity_differences(mine, theirs, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key} (folder {_shown(theirs)}, given {_shown(mine)})")
    return lines


_UNSET = object()


def _shown(value: Any) -> str:
    return "unset" if value is _UNSET else repr(value)


@dataclass(frozen=True)
class TrainJob:
    """Train the networks of `seeds` together.

    kind: "pool" (networks of a study's pools), "tune" (hyper-parameter search on the validation split) or
    another experiment's name. method "deep": one independent network per seed, `first_index` the index of
    the first within its pool. Any other method (see `ensplit.ensembles.method_names`): one ensemble of
    `members` members per seed, with `method_options` as sorted (key, value) pairs.
    """

    kind: str
    family: str
    width: int
    depth: int | None
    family_options: tuple[tuple[str, Any], ...]
    data: DataSpec
    train: tuple[tuple[str, Any], ...]
    seeds: tuple[int, ...]
    first_index: int
    method: str = "deep"
    members: int = 0
    method_options: tuple[tuple[str, Any], ...] = ()

    @property
    def job_id(self) -> str:
        data = dataclasses.asdict(self)
        data["train"] = sorted(identifying_train_options(dict(self.train)).items())
        for name, default in LATER_JOB_FIELDS.items():
            if data[name] == default:
                del data[name]
        payload = json.dumps(data, sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    @property
    def train_dict(self) -> dict[str, Any]:
        return dict(self.train)

    def train_config(self) -> TrainConfig:
        """The training config a worker rebuilds (lists from JSON become tuples again)."""
        options = self.train_dict
        return TrainConfig(**{**options, "step_milestones": tuple(options["step_milestones"])})

    @property
    def outputs_per_seed(self) -> int:
        """Member predictions each seed contributes: 1 network, or the method's members."""
        return 1 if self.method == "deep" else max(1, self.members)


def network_seed(base_seed: int, kind: str, width: int, index: int, cell: int = 0) -> int:
    """A stable per-network seed: it depends on the network's identity, never on how jobs are packed."""
    digest = hashlib.sha256(f"{base_seed}/{kind}/{width}/{cell}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `size` covering `range(total)`."""
    return [(start, min(total, start + size)) for start in range(0, total, size)]
