"""What a family is made of: its weight layers, norms and other parameters, by qualified name.

Parameter counts of the sharing methods are closed forms over this inventory; it is read from a model
built on the meta device, so no memory is allocated. `execution_order` finds the stem and the head
(the first and last weight layers a forward pass calls), which is what MIMO and multihead convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ensplit.layers import plain
from ensplit.models import create

NORM_TYPES = (nn.modules.batchnorm._BatchNorm,)


@dataclass(frozen=True)
class WeightLayer:
    """A linear or conv layer: `weight_shape` as stored (`[out, in]` or `[out, in/groups, *k]`)."""

    name: str
    kind: str  # "linear" | "conv"
    weight_shape: tuple[int, ...]
    in_features: int  # in_channels for convs
    out_features: int
    bias: bool

    @property
    def weight_numel(self) -> int:
        n = 1
        for d in self.weight_shape:
            n *= d
        return n

    @property
    def numel(self) -> int:
        return self.weight_numel + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class Inventory:
    """Weight layers and norms in definition order; `other` counts parameters held anywhere else."""

    layers: tuple[WeightLayer, ...]
    norms: tuple[tuple[str, int], ...]  # (name, channels)
    other: int

    @property
    def total(self) -> int:
        return sum(layer.numel for layer in self.layers) + sum(2 * c for _, c in self.norms) + self.other


def is_weight_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, plain.Conv))


def describe(name: str, module: nn.Module) -> WeightLayer:
    if isinstance(module, nn.Linear):
        return WeightLayer(name, "linear", tuple(module.weight.shape), module.in_features, module.out_features,
                           module.bias is not None)
    return WeightLayer(name, "conv", tuple(module.weight.shape), module.in_channels, module.out_channels,
                       module.bias is not None)


def inventory_of(model: nn.Module) -> Inventory:
    layers, norms, covered = [], [], set()
    for name, module in model.named_modules():
        if is_weight_layer(module):
            layers.append(describe(name, module))
        elif isinstance(module, NORM_TYPES) and module.affine:
            norms.append((name, module.num_features))
        else:
            continue
        covered.update(id(p) for p in module.parameters())
    other = sum(p.numel() for p in model.parameters() if id(p) not in covered)
    return Inventory(tuple(layers), tuple(norms), other)


def family_inventory(family: str, width: int, depth: int | None = None, in_shape: tuple[int, ...] | None = None,
                     num_classes: int | None = None, **options: Any) -> Inventory:
    """The inventory of `create(family, ...)`, built on the meta device (free of memory and time)."""
    with torch.device("meta"):
        model = create(family, width=width, depth=depth, in_shape=in_shape, num_classes=num_classes, **options)
    return inventory_of(model)


@torch.no_grad()
def execution_order(model: nn.Module, example: torch.Tensor) -> list[tuple[str, int]]:
    """Weight layers and norms in the order a forward pass on `example` first calls them, with the rank
    of each one's input: `[(qualified_name, input_rank), ...]`."""
    order: list[tuple[str, int]] = []
    seen: set[str] = set()
    handles = []
    for name, module in model.named_modules():
        if is_weight_layer(module) or isinstance(module, NORM_TYPES):
            def hook(mod: nn.Module, args: tuple, name: str = name) -> None:
                if name not in seen:
                    seen.add(name)
                    order.append((name, args[0].dim()))
            handles.append(module.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return order


def example_input(in_shape: tuple[int, ...], batch: int = 2, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.zeros(batch, *in_shape, device=device, dtype=dtype)
