"""Training trajectories on disk: a manifest and one safetensors checkpoint per init and epoch.

On disk: `DIR/manifest.json` (architecture, seeds, epochs, config, version) and
`DIR/init{k}/epoch{e}.safetensors` (member k's plain state dict after global epoch e). Nothing is
unpickled. `ensplit.train.trajectories` trains them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ensplit._version import __version__
from ensplit.errors import EnsplitError

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


def save_trajectories(trajectories: Trajectories, directory: str | Path) -> Path:
    """Write the manifest and one safetensors file per checkpoint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for k, traj in enumerate(trajectories.states):
        (directory / f"init{k}").mkdir(exist_ok=True)
        for epoch, state in zip(trajectories.epochs, traj, strict=True):
            meta = {"family": trajectories.family, "seed": str(trajectories.seeds[k]), "epoch": str(epoch)}
            save_file({n: t.contiguous() for n, t in state.items()},
                      str(directory / f"init{k}" / f"epoch{epoch:04d}.safetensors"), metadata=meta)
    manifest = {
        "family": trajectories.family, "width": trajectories.width, "depth": trajectories.depth,
        "in_shape": list(trajectories.in_shape), "num_classes": trajectories.num_classes,
        "options": trajectories.options, "seeds": trajectories.seeds, "epochs": trajectories.epochs,
        "phases": trajectories.phases, "config": trajectories.config, "ensplit_version": __version__,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return directory


def load_trajectories(directory: str | Path) -> Trajectories:
    """Read what `save_trajectories` wrote (safetensors only: nothing is unpickled)."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        raise EnsplitError(f"no trajectories in {directory} (manifest.json missing)")
    m = json.loads(manifest_path.read_text())
    states = [[load_file(str(directory / f"init{k}" / f"epoch{e:04d}.safetensors")) for e in m["epochs"]]
              for k in range(len(m["seeds"]))]
    return Trajectories(family=m["family"], width=m["width"], depth=m["depth"], in_shape=tuple(m["in_shape"]),
                        num_classes=m["num_classes"], options=m["options"], seeds=m["seeds"], epochs=m["epochs"],
                        phases=m["phases"], states=states, config=m.get("config", {}))
