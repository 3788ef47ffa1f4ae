"""Training trajectories of several random inits, with safetensors checkpoints along the way.

K inits train together as one member-batched run (member i is exactly the plain network of seed i).
Phase "train": `config.epochs` epochs under `config` (cosine by default), a checkpoint every `every`
epochs and at the end. Phase "tail": `tail_epochs` more epochs at the constant rate `tail_lr`, a
checkpoint after each: the samples that SWA averages and that the trajectory-tail Gaussians are fitted to.

On disk: `DIR/manifest.json` (architecture, seeds, epochs, config, version) and
`DIR/init{k}/epoch{e}.safetensors` (member k's plain state dict after global epoch e).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ensplit import __version__
from ensplit.data.dataset import Dataset
from ensplit.ensembles import MemberBatchedEnsemble, build_member, deep_ensemble
from ensplit.errors import EnsplitError
from ensplit.train import TrainConfig, train

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

    def template(self) -> nn.Module:
        """A plain network of this architecture (names, shapes and buffers for the analyses)."""
        return build_member(self.family, self.seeds[0], width=self.width, depth=self.depth,
                            in_shape=self.in_shape, num_classes=self.num_classes, **self.options)

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


def _snapshot(model: MemberBatchedEnsemble, members: int) -> list[State]:
    return [{k: v.detach().cpu().contiguous() for k, v in model.member_state_dict(i).items()}
            for i in range(members)]


def train_trajectories(dataset: Dataset, family: str, width: int, seeds: Sequence[int], config: TrainConfig,
                       depth: int | None = None, every: int = 5, tail_epochs: int = 10,
                       tail_lr: float | None = None, out: str | Path | None = None, progress: bool = False,
                       **options: Any) -> Trajectories:
    """Train one init per seed, checkpointing along the way (see the module docstring).

    tail_lr defaults to config.lr / 2 (SWA needs a rate high enough to move around the mode: on MNIST-1D,
    lr / 5 gave SWA nothing, lr / 2 a better ensemble). With `out`, the checkpoints are also written there.
    """
    if every < 1 or tail_epochs < 0:
        raise EnsplitError(f"every must be >= 1 and tail_epochs >= 0, got {every} and {tail_epochs}")
    seeds = [int(s) for s in seeds]
    kwargs = dict(width=width, depth=depth, in_shape=dataset.in_shape, num_classes=dataset.num_classes, **options)
    model = deep_ensemble(family, seeds, **kwargs).to(dataset.x_train.device)
    epochs: list[int] = []
    phases: list[str] = []
    per_init: list[list[State]] = [[] for _ in seeds]

    def keep(epoch: int, phase: str) -> None:
        epochs.append(epoch)
        phases.append(phase)
        for k, state in enumerate(_snapshot(model, len(seeds))):
            per_init[k].append(state)

    def on_train_epoch(epoch: int, _: nn.Module) -> None:
        if (epoch + 1) % every == 0 or epoch + 1 == config.epochs:
            keep(epoch + 1, "train")

    train(model, dataset, config, seeds, progress=progress, on_epoch=on_train_epoch, description="trajectories")
    tail_lr = config.lr / 2 if tail_lr is None else tail_lr
    if tail_epochs:
        tail_config = dataclasses.replace(config, epochs=tail_epochs, lr=tail_lr, schedule="constant")
        # fresh data orders for the tail: seeds shifted so epoch 1 of the tail does not replay epoch 1
        train(model, dataset, tail_config, [s + 1_000_003 for s in seeds], progress=progress,
              on_epoch=lambda e, _: keep(config.epochs + e + 1, "tail"), description="trajectory tails")
    record = {**dataclasses.asdict(config), "every": every, "tail_epochs": tail_epochs, "tail_lr": tail_lr,
              "dataset": dataset.name}
    result = Trajectories(family=family, width=width, depth=depth, in_shape=tuple(dataset.in_shape),
                          num_classes=dataset.num_classes, options=dict(options), seeds=seeds, epochs=epochs,
                          phases=phases, states=per_init, config=record)
    if out is not None:
        save_trajectories(result, out)
    return result


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
