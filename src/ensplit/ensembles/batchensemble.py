"""`batchensemble`: convert any family to BatchEnsemble (Wen et al. 2020) by qualified name.

Every linear and conv layer becomes a shared weight with rank-1 fast weights per member, every norm
becomes per-member (MemberNorm); biases are per member. The network runs member-batched: input
`[B, ...]` is tiled to every member, `[M, B, ...]` gives each member its own (split) batch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ensplit.ensembles.convert import modules_with_own_parameters, replace_layers
from ensplit.ensembles.inventory import NORM_TYPES, Inventory
from ensplit.layers import member, plain
from ensplit.layers.batchensemble import BatchEnsembleConv, BatchEnsembleLinear

_BE_LAYERS = (BatchEnsembleLinear, BatchEnsembleConv, member.MemberNorm)


def to_batchensemble(model: nn.Module, members: int, fast_init: str = "random_sign", seed: int = 0) -> tuple[
        nn.Module, list[str]]:
    """A BatchEnsemble copy of plain `model`; returns it and the qualified names replaced."""
    converted = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        if isinstance(module, nn.Linear):
            return BatchEnsembleLinear.from_linear(module, members, fast_init, generator)
        if isinstance(module, plain.Conv):
            return BatchEnsembleConv.from_conv(module, members, fast_init, generator)
        if isinstance(module, NORM_TYPES):
            return member.MemberNorm.from_modules([module] * members)
        return None

    replaced = replace_layers(converted, swap)
    leftover = modules_with_own_parameters(converted, _BE_LAYERS)
    if leftover:
        raise TypeError(f"cannot convert layers {leftover} to BatchEnsemble: use ensplit's layer set")
    return converted, replaced


def batchensemble_param_count(inventory: Inventory, members: int) -> int:
    """Closed form: the base network plus, per weight layer, M·(in + out) fast weights and (M − 1)·out
    more biases; per norm, (M − 1)·2C."""
    extra = 0
    for layer in inventory.layers:
        extra += members * (layer.in_features + layer.out_features)
        extra += (members - 1) * layer.out_features if layer.bias else 0
    extra += sum((members - 1) * 2 * c for _, c in inventory.norms)
    return inventory.total + extra
