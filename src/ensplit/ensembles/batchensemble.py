"""`batchensemble`: convert any family to BatchEnsemble (Wen et al. 2020) by qualified name.

Every linear and conv layer becomes a shared weight with rank-1 fast weights per member, every norm
becomes per-member (MemberNorm, "BatchEnsemble + EnsembleBN", Wen et al. 2020a) or, with
`member_norms=False`, stays one norm shared by all members whose batch statistics pool every member's
activations (plain BatchEnsemble; the MixtureEnsembles paper compares both). Biases are per member. The network runs
member-batched: input `[B, ...]` is tiled to every member, `[M, B, ...]` gives each member its own batch.
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


def to_batchensemble(model: nn.Module, members: int, fast_init: str = "random_sign", seed: int = 0,
                     member_norms: bool = True) -> tuple[nn.Module, list[str]]:
    """A BatchEnsemble copy of plain `model`; returns it and the qualified names replaced (shared norms,
    with `member_norms=False`, are kept as they are and not listed)."""
    converted = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        if isinstance(module, nn.Linear):
            return BatchEnsembleLinear.from_linear(module, members, fast_init, generator)
        if isinstance(module, plain.Conv):
            return BatchEnsembleConv.from_conv(module, members, fast_init, generator)
        if isinstance(module, NORM_TYPES):
            return member.MemberNorm.from_modules([module] * members) if member_norms else module
        return None

    replaced = replace_layers(converted, swap)
    if not member_norms:  # plain.Norm folds the member axis into the batch: one norm for all members
        replaced = [name for name in replaced if not isinstance(converted.get_submodule(name), NORM_TYPES)]
    leftover = modules_with_own_parameters(converted, _BE_LAYERS if member_norms else (*_BE_LAYERS, plain.Norm))
    if leftover:
        raise TypeError(f"cannot convert layers {leftover} to BatchEnsemble: use ensplit's layer set")
    return converted, replaced


def batchensemble_param_count(inventory: Inventory, members: int, member_norms: bool = True) -> int:
    """Closed form: the base network plus, per weight layer, M·(in + out) fast weights and (M − 1)·out
    more biases; per norm, (M − 1)·2C with member norms (nothing with shared ones)."""
    extra = 0
    for layer in inventory.layers:
        extra += members * (layer.in_features + layer.out_features)
        extra += (members - 1) * layer.out_features if layer.bias else 0
    extra += sum((members - 1) * 2 * c for _, c in inventory.norms) if member_norms else 0
    return inventory.total + extra
