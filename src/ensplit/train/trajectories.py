"""Training trajectories of several random inits, checkpointed along the way (Fort et al. 2019).

K inits train together as one member-batched run (member i is exactly the plain network of seed i).
Phase "train": `config.epochs` epochs under `config` (cosine by default), a checkpoint every `every`
epochs and at the end. Phase "tail": `tail_epochs` more epochs at the constant rate `tail_lr`, a
checkpoint after each: the samples that SWA averages and that the trajectory-tail Gaussians are fitted to.
The checkpoints are held in a `ensplit.store.trajectories.Trajectories` and written by its `save`; the
training loop's epoch seconds and the solutions' training loss come with them (`TimedTrajectories`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ensplit.data.dataset import Dataset
from ensplit.ensembles import MemberBatchedEnsemble, build_member, deep_ensemble
from ensplit.errors import EnsplitError
from ensplit.store.trajectories import State, Trajectories, save_trajectories
from ensplit.train.config import TrainConfig
from ensplit.train.loop import train


@dataclass
class TimedTrajectories(Trajectories):
    """Trajectories as `train_trajectories` trained them, with what its training loop measured.

    seconds_per_epoch: each trained epoch's seconds (`TrainResult.seconds_per_epoch`), the "train" phase's then
    the tail's; one figure of them is `ensplit.train.epoch_time.seconds_per_epoch`. train_loss: each init's
    mean training loss in the last epoch of the "train" phase, the epoch that made its solution.
    """

    seconds_per_epoch: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)


def trajectory_template(trajectories: Trajectories) -> nn.Module:
    """A plain network of the trajectories' architecture (names, shapes and buffers for the analyses)."""
    return build_member(trajectories.family, trajectories.seeds[0], width=trajectories.width,
                        depth=trajectories.depth, in_shape=trajectories.in_shape,
                        num_classes=trajectories.num_classes, **trajectories.options)


def _snapshot(model: MemberBatchedEnsemble, members: int) -> list[State]:
    return [{k: v.detach().cpu().contiguous() for k, v in model.member_state_dict(i).items()}
            for i in range(members)]


def train_trajectories(dataset: Dataset, family: str, width: int, seeds: Sequence[int], config: TrainConfig,
                       depth: int | None = None, every: int = 5, tail_epochs: int = 10,
                       tail_lr: float | None = None, out: str | Path | None = None, progress: bool = False,
                       **options: Any) -> TimedTrajectories:
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

    trained = train(model, dataset, config, seeds, progress=progress, on_epoch=on_train_epoch,
                    description="trajectories")
    seconds_per_epoch = list(trained.seconds_per_epoch)
    tail_lr = config.lr / 2 if tail_lr is None else tail_lr
    if tail_epochs:
        tail_config = dataclasses.replace(config, epochs=tail_epochs, lr=tail_lr, schedule="constant")
        # fresh data orders for the tail: seeds shifted so epoch 1 of the tail does not replay epoch 1
        tail = train(model, dataset, tail_config, [s + 1_000_003 for s in seeds], progress=progress,
                     on_epoch=lambda e, _: keep(config.epochs + e + 1, "tail"), description="trajectory tails")
        seconds_per_epoch += tail.seconds_per_epoch
    record = {**dataclasses.asdict(config), "every": every, "tail_epochs": tail_epochs, "tail_lr": tail_lr,
              "dataset": dataset.name}
    result = TimedTrajectories(family=family, width=width, depth=depth, in_shape=tuple(dataset.in_shape),
                               num_classes=dataset.num_classes, options=dict(options), seeds=seeds, epochs=epochs,
                               phases=phases, states=per_init, config=record, seconds_per_epoch=seconds_per_epoch,
                               train_loss=list(trained.train_loss[-1]))
    if out is not None:
        save_trajectories(result, out)
    return result


