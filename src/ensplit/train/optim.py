"""Optimisers and learning-rate schedules (torch's own, configured from a TrainConfig)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ensplit.train.config import TrainConfig


def make_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (default), Adam or AdamW. All update element-wise, so packing members into one
    tensor changes nothing about any member's trajectory."""
    params = list(parameters)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig,
                  steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule over the whole run."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    if config.schedule == "step":
        milestones = [int(round(f * total)) for f in config.step_milestones]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=config.step_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
