"""Optimisers and learning-rate schedules (torch's own, configured from a TrainConfig)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ensplit.train.config import TrainConfig


def parameter_groups(model: torch.nn.Module) -> list[torch.nn.Parameter] | list[dict[str, Any]]:
    """`model`'s parameters, or two groups when it names parameters to keep out of weight decay with a
    `no_weight_decay()` method (qualified names, as timm's models do; ensplit's MethodModel does): the
    rest at the optimiser's weight decay, then those at weight_decay = 0. Without such names: the plain
    parameter list, so the optimiser is built exactly as before."""
    exempt = getattr(model, "no_weight_decay", None)
    names = set(exempt()) if callable(exempt) else set()
    if not names:
        return list(model.parameters())
    named = dict(model.named_parameters())
    unknown = names - set(named)
    if unknown:
        raise ValueError(f"no_weight_decay names parameters the model does not have: {sorted(unknown)}")
    decayed = [p for n, p in named.items() if n not in names]
    exempted = [p for n, p in named.items() if n in names]
    return [group for group in ({"params": decayed}, {"params": exempted, "weight_decay": 0.0}) if group["params"]]


def make_optimizer(parameters: torch.nn.Module | Iterable[torch.nn.Parameter],
                   config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (default), Adam or AdamW. All update element-wise, so packing members into one
    tensor changes nothing about any member's trajectory. Given a module, its `parameter_groups` (weight
    decay skips what the module names in `no_weight_decay()`); given parameters, one group."""
    params = parameter_groups(parameters) if isinstance(parameters, torch.nn.Module) else list(parameters)
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
