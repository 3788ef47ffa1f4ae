"""`mimo` (Havasi et al. 2021): M inputs concatenated along channels at the stem, M heads.

The converter widens the stem (the first weight layer a forward pass calls) to take M·C input channels
(M·F features) and the head (the last one) to emit M·classes. Inputs travel as one extra leading
dimension `[B, M, ...]` through the family's shape-agnostic code; the stem folds that dimension into its
channels, so no family is rewritten.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from ensplit.ensembles.convert import replace_layers
from ensplit.ensembles.inventory import Inventory, example_input, execution_order, is_weight_layer
from ensplit.layers import plain


class MimoStem(nn.Module):
    """Folds the member dimension into channels: `[..., M, C, *spatial] -> [..., M·C, *spatial]`, then
    applies the widened layer (member-major channel order)."""

    def __init__(self, layer: nn.Module, members: int, feature_dims: int) -> None:
        super().__init__()
        self.layer, self.members, self.feature_dims = layer, members, feature_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = x.dim() - self.feature_dims - 1
        return self.layer(x.flatten(start, start + 1))


def _widen_stem(module: nn.Module, members: int) -> nn.Module:
    if isinstance(module, nn.Linear):
        new = nn.Linear(members * module.in_features, module.out_features, module.bias is not None)
        feature_dims = 1
    else:
        new = plain.Conv(module.dim, members * module.in_channels, module.out_channels, module.kernel_size,
                         module.stride, module.padding, module.bias is not None, module.groups)
        feature_dims = module.dim + 1
    if members == 1:  # M = 1 keeps the base network exactly
        new.load_state_dict(module.state_dict())
    return MimoStem(new.to(module.weight.device, module.weight.dtype), members, feature_dims)


def _widen_head(module: nn.Module, members: int) -> nn.Module:
    if not isinstance(module, nn.Linear):
        raise TypeError(f"MIMO needs a linear head, found {type(module).__name__}")
    new = nn.Linear(module.in_features, members * module.out_features, module.bias is not None)
    if members == 1:
        new.load_state_dict(module.state_dict())
    return new.to(module.weight.device, module.weight.dtype)


def stem_and_head(model: nn.Module, in_shape: Sequence[int]) -> tuple[str, str]:
    """Qualified names of the first and the last weight layer a forward pass calls."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    order = [name for name, _ in execution_order(model, example_input(tuple(in_shape), device=device, dtype=dtype))
             if is_weight_layer(model.get_submodule(name))]
    if len(order) < 2:
        raise TypeError("MIMO needs at least two weight layers (a stem and a head)")
    return order[0], order[-1]


class MimoEnsemble(nn.Module):
    """Input `[B, ...]` (repeated M times, the test-time rule) or `[M, B, ...]` (member i's own batch);
    output logits `[M, B, C]`."""

    def __init__(self, network: nn.Module, members: int, input_dims: int) -> None:
        super().__init__()
        self.network, self.members, self.input_dims = network, members, input_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.input_dims + 1:
            x = x.unsqueeze(1).expand(x.shape[0], self.members, *x.shape[1:])
        else:
            x = x.transpose(0, 1)  # [B, M, ...]
        y = self.network(x)  # [B, M·C]
        return y.view(y.shape[0], self.members, -1).transpose(0, 1)


def to_mimo(model: nn.Module, members: int, in_shape: Sequence[int]) -> tuple[MimoEnsemble, list[str]]:
    """A MIMO copy of plain `model`; returns it and the two qualified names replaced (stem, head)."""
    stem, head = stem_and_head(model, in_shape)
    converted = copy.deepcopy(model)

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        if name == stem:
            return _widen_stem(module, members)
        if name == head:
            return _widen_head(module, members)
        return None

    replaced = replace_layers(converted, swap)
    return MimoEnsemble(converted, members, len(in_shape)), replaced


def mimo_param_count(inventory: Inventory, members: int, stem: str, head: str) -> int:
    """Closed form: the stem's weight and the whole head grow M-fold."""
    layers = {layer.name: layer for layer in inventory.layers}
    return inventory.total + (members - 1) * (layers[stem].weight_numel + layers[head].numel)


def mimo_index_sampler(members: int, input_repetition: float = 0.0, batch_repetitions: int = 1):
    """MIMO training batches as an `index_sampler` for `ensplit.train.train`: `[M, B·r]` per step.

    Per step the batch is tiled r times and shuffled; each member then reshuffles the first (1 − ρ) share
    of it independently, and the remaining ρ share is shown to every member in the same order (input
    repetition probability ρ), as in the reference implementation.
    """
    if not 0.0 <= input_repetition <= 1.0:
        raise ValueError(f"input repetition must be in [0, 1], got {input_repetition}")
    if batch_repetitions < 1:
        raise ValueError(f"batch repetitions must be >= 1, got {batch_repetitions}")

    def sampler(n: int, batch_size: int, generators: Sequence[torch.Generator]) -> list[torch.Tensor]:
        g = generators[0]
        order = torch.randperm(n, generator=g)
        batches = []
        for step in range(math.ceil(n / batch_size)):
            batch = order[step * batch_size : (step + 1) * batch_size]
            main = batch.repeat(batch_repetitions)[torch.randperm(batch.numel() * batch_repetitions, generator=g)]
            shuffled = int(main.numel() * (1.0 - input_repetition))
            rows = [torch.cat([main[:shuffled][torch.randperm(shuffled, generator=gm)], main[shuffled:]])
                    for gm in (generators[i % len(generators)] for i in range(members))]
            batches.append(torch.stack(rows))
        return batches

    return sampler
