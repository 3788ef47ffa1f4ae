"""Training trajectories on disk: a manifest and one safetensors checkpoint per init and epoch.

On disk: `DIR/manifest.json` (architecture, seeds, epochs, config, version, each checkpoint's SHA-256) and
`DIR/init{k}/epoch{e}.safetensors` (member k's plain state dict after global epoch e). Nothing is
unpickled; a missing or damaged file is refused by name. `ensplit.train.trajectories` trains them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from ensplit._version import __version__
from ensplit.errors import EnsplitError
from ensplit.files import atomic_write, atomic_write_text

State = dict[str, torch.Tensor]


@dataclass
class Trajectories:
    """Checkpoints `states[k][t]` of init k after global epoch `epochs[t]` (phase `phases[t]`)."""

    family: str
    width: int
    depth: int | None
    in_shape: tuple[int, ...]
    num_classes: int
    options: dict[str, Any]
    seeds: list[int]
    epochs: list[int]
    phases: list[str]
    states: list[list[State]]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def inits(self) -> int:
        return len(self.seeds)

    def solutions(self) -> list[State]:
        """Each init's state at the end of the "train" phase (its annealed solution)."""
        t = max(i for i, p in enumerate(self.phases) if p == "train")
        return [traj[t] for traj in self.states]

    def tail(self, k: int) -> list[State]:
        """Init k's "tail"-phase checkpoints (empty without a tail phase)."""
        return [s for s, p in zip(self.states[k], self.phases, strict=True) if p == "tail"]

    def flat(self) -> tuple[list[State], list[int], list[int]]:
        """All checkpoints in order (init-major), with their init index and epoch."""
        states = [s for traj in self.states for s in traj]
        inits = [k for k in range(self.inits) for _ in self.epochs]
        epochs = [e for _ in range(self.inits) for e in self.epochs]
        return states, inits, epochs


def _checkpoint_name(k: int, epoch: int) -> str:
    return f"init{k}/epoch{epoch:04d}.safetensors"


def save_trajectories(trajectories: Trajectories, directory: str | Path) -> Path:
    """Write one safetensors file per checkpoint, then the manifest with every file's SHA-256 (all atomically:
    a run killed midway leaves no half-written checkpoint, and no manifest naming missing ones)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    checksums: dict[str, str] = {}
    for k, traj in enumerate(trajectories.states):
        (directory / f"init{k}").mkdir(exist_ok=True)
        for epoch, state in zip(trajectories.epochs, traj, strict=True):
            meta = {"family": trajectories.family, "seed": str(trajectories.seeds[k]), "epoch": str(epoch)}
            content = save({n: t.contiguous() for n, t in state.items()}, metadata=meta)
            name = _checkpoint_name(k, epoch)
            atomic_write(directory / name, lambda f, content=content: f.write(content))
            checksums[name] = hashlib.sha256(content).hexdigest()
    manifest = {
        "family": trajectories.family, "width": trajectories.width, "depth": trajectories.depth,
        "in_shape": list(trajectories.in_shape), "num_classes": trajectories.num_classes,
        "options": trajectories.options, "seeds": trajectories.seeds, "epochs": trajectories.epochs,
        "phases": trajectories.phases, "config": trajectories.config, "ensplit_version": __version__,
        "checksums": checksums,
    }
    atomic_write_text(directory / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return directory


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# manifest field -> (test, what it must be)
_MANIFEST_FIELDS: dict[str, tuple[Any, str]] = {
    "family": (lambda v: isinstance(v, str), "a family name"),
    "width": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "depth": (lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1"),
    "in_shape": (lambda v: isinstance(v, list) and all(_is_int(n) and n >= 1 for n in v), "a list of sizes"),
    "num_classes": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "options": (lambda v: isinstance(v, dict), "an object of family options"),
    "seeds": (lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(n) for n in v),
              "a non-empty list of integers"),
    "epochs": (lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(n) and n >= 0 for n in v),
               "a non-empty list of epochs"),
    "phases": (lambda v: isinstance(v, list) and "train" in v and set(v) <= {"train", "tail"},
               'a list of "train" and "tail" with at least one "train"'),
}


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, every field checked: a damaged or hand-edited one is named, never half-used."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise EnsplitError(f"trajectories manifest {path} is damaged or unreadable ({error})") from None
    if not isinstance(manifest, dict):
        raise EnsplitError(f"trajectories manifest {path} is damaged: not a JSON object")
    for name, (valid, allowed) in _MANIFEST_FIELDS.items():
        if name not in manifest:
            raise EnsplitError(f"trajectories manifest {path} is damaged: field {name!r} is missing")
        if not valid(manifest[name]):
            raise EnsplitError(f"trajectories manifest {path} is damaged: {name} = {manifest[name]!r}: must be "
                               f"{allowed}")
    for name in ("config", "checksums"):  # optional (older folders lack checksums), but objects when present
        if not isinstance(manifest.get(name, {}), dict):
            raise EnsplitError(f"trajectories manifest {path} is damaged: {name} = {manifest[name]!r}: must be an "
                               "object")
    if len(manifest["phases"]) != len(manifest["epochs"]):
        raise EnsplitError(f"trajectories manifest {path} is damaged: {len(manifest['epochs'])} epochs but "
                           f"{len(manifest['phases'])} phases")
    return manifest


def _read_checkpoint(path: Path, manifest: Path, checksum: str | None) -> State:
    """One checkpoint's tensors; a missing, unreadable or damaged file is a one-line error naming it."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise EnsplitError(f"checkpoint {path} is missing (listed in {manifest})") from None
    except OSError as error:
        raise EnsplitError(f"checkpoint {path} cannot be read: {error.strerror}") from None
    try:
        state = load(content)
    except SafetensorError as error:
        raise EnsplitError(f"checkpoint {path} is damaged: not a readable safetensors file ({error})") from None
    if checksum is not None and hashlib.sha256(content).hexdigest() != checksum:  # e.g. flipped bits in a weight
        raise EnsplitError(f"checkpoint {path} is damaged: its SHA-256 differs from the one in {manifest}")
    return state


def _layout(state: State) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {name: (tuple(t.shape), t.dtype) for name, t in state.items()}


def load_trajectories(directory: str | Path) -> Trajectories:
    """Read what `save_trajectories` wrote (safetensors only: nothing is unpickled). Every file is checked:
    against its checksum (manifests that record them), as a safetensors file, and for the same tensors as the
    first checkpoint; a missing or damaged one is a one-line error naming it."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise EnsplitError(f"no trajectories in {directory} (manifest.json missing)")
    m = _read_manifest(manifest_path)
    checksums: dict[str, Any] = m.get("checksums", {})
    states: list[list[State]] = []
    layout: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None
    first = ""
    for k in range(len(m["seeds"])):
        states.append([])
        for epoch in m["epochs"]:
            name = _checkpoint_name(k, epoch)
            state = _read_checkpoint(directory / name, manifest_path, checksums.get(name))
            if layout is None:
                layout, first = _layout(state), name
            elif _layout(state) != layout:
                raise EnsplitError(f"checkpoint {directory / name} is damaged: its tensors (names, shapes or "
                                   f"dtypes) differ from those of {directory / first}")
            states[k].append(state)
    return Trajectories(family=m["family"], width=m["width"], depth=m["depth"], in_shape=tuple(m["in_shape"]),
                        num_classes=m["num_classes"], options=m["options"], seeds=m["seeds"], epochs=m["epochs"],
                        phases=m["phases"], states=states, config=m.get("config", {}))
