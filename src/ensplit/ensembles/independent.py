"""`deep`: independent members, trained together as one member-batched model.

Each member is first built as a plain network under its own seed, then the members are stacked into
member-batched layers. So member i starts exactly where a separately built network with seed i starts,
and nothing about member i depends on which members share its batch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ensplit.ensembles.convert import modules_with_own_parameters, replace_layers
from ensplit.layers import member, plain
from ensplit.models import create, get_family

_MEMBER_LAYERS = (member.MemberLinear, member.MemberConv, member.MemberNorm, member.MemberDropout)


def build_member(family: str, seed: int, **kwargs: Any) -> nn.Module:
    """A plain network of `family` initialised from `seed`; its dropout layers get their own generator."""
    torch.manual_seed(seed)
    model = create(family, **kwargs)
    for index, module in enumerate(m for m in model.modules() if isinstance(m, plain.Dropout)):
        module.generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return model


def stack_members(models: Sequence[nn.Module], conv_strategy: str = "auto") -> nn.Module:
    """Stack plain networks of one architecture into one member-batched network (a converter)."""
    stacked = copy.deepcopy(models[0])

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        group = [m.get_submodule(name) for m in models]
        if isinstance(module, nn.Linear):
            return member.MemberLinear.from_modules(group)
        if isinstance(module, plain.Conv):
            return member.MemberConv.from_modules(group, strategy=conv_strategy)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return member.MemberNorm.from_modules(group)
        if isinstance(module, plain.Dropout):
            return member.MemberDropout.from_modules(group)
        return None

    replace_layers(stacked, swap)
    leftover = modules_with_own_parameters(stacked, _MEMBER_LAYERS)
    if leftover:
        raise TypeError(f"cannot member-batch layers {leftover}: use ensplit's layer set")
    return stacked


class MemberBatchedEnsemble(nn.Module):
    """Wraps a member-batched network: input `[batch, ...]` (shared) or `[members, batch, ...]`,
    output logits `[members, batch, classes]`."""

    def __init__(self, network: nn.Module, members: int, input_dims: int) -> None:
        super().__init__()
        self.network, self.members, self.input_dims = network, members, input_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.input_dims + 1:
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        return self.network(x)

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """The state dict member `index` would have as a plain network (for checkpoints and analyses)."""
        state: dict[str, torch.Tensor] = {}
        for name, module in self.network.named_modules():
            if isinstance(module, _MEMBER_LAYERS):
                for key, value in member.member_slice(module, index).items():
                    state[f"{name}.{key}"] = value.detach().clone()
        return state


def ensemble_of(plains: Sequence[nn.Module], input_dims: int, conv_strategy: str = "auto") -> MemberBatchedEnsemble:
    """Plain networks of one architecture (trained or fresh) as one member-batched ensemble whose inputs
    have `input_dims` dimensions per example."""
    return MemberBatchedEnsemble(stack_members(plains, conv_strategy), len(plains), input_dims)


def deep_ensemble(family: str, seeds: Sequence[int], conv_strategy: str = "auto",
                  **kwargs: Any) -> MemberBatchedEnsemble:
    """Independent members of `family` (one per seed), member-batched."""
    plains = [build_member(family, seed, **kwargs) for seed in seeds]
    in_shape = kwargs.get("in_shape") or get_family(family).default_in_shape
    return ensemble_of(plains, len(in_shape), conv_strategy)
