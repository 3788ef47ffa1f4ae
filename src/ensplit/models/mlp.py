"""`mlp`: a fully connected network; width = hidden units, depth = hidden layers."""

from __future__ import annotations

import math

import torch
from torch import nn

from ensplit.layers import LayerSet
from ensplit.layers.activation import linear_relu
from ensplit.layers.ops import flatten_features
from ensplit.models.registry import Family, register_family


class MLP(nn.Module):
    def __init__(self, width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                 dropout: float = 0.0, norm: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.in_dims = len(in_shape)
        in_features = math.prod(in_shape)
        blocks: list[nn.Module] = []
        relu_after_linear: list[int] = []
        for i in range(depth):
            blocks.append(layers.linear(in_features if i == 0 else width, width, bias))
            if norm:
                blocks.append(layers.norm(0, width))
            else:
                relu_after_linear.append(len(blocks))
            blocks.append(nn.ReLU())
            if dropout > 0:
                blocks.append(layers.dropout(dropout))
        self.body = nn.Sequential(*blocks)  # keeps the state-dict keys (body.0.weight, ...) of saved models
        self.head = layers.linear(width, num_classes, bias)
        self._relu_after_linear = frozenset(relu_after_linear)  # indices of ReLUs right after a linear
        self.relu_in_place = True  # False: every module runs on its own, each ReLU out of place (as before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = flatten_features(x, self.in_dims)
        fused = self._relu_after_linear if self.relu_in_place else frozenset()
        for i, module in enumerate(self.body):
            if i + 1 in fused:  # the linear and its ReLU in one call: rectified in place
                h = linear_relu(module, h)
            elif i not in fused:
                h = module(h)
        return self.head(h)


def count_mlp(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0,
              norm: bool = False, bias: bool = True) -> int:
    in_features = math.prod(in_shape)
    b = 1 if bias else 0
    hidden = (in_features + b) * width + (depth - 1) * (width + b) * width
    return hidden + (width + b) * num_classes + (2 * width * depth if norm else 0)


register_family(Family(
    name="mlp", build=MLP, count=count_mlp, default_depth=2, default_in_shape=(40,), default_num_classes=10,
    valid_depth=lambda d: d >= 1, depth_rule="any depth >= 1 (hidden layers)",
    description="fully connected ReLU network; width = hidden units, depth = hidden layers",
    width_meaning="hidden units", options={"dropout": 0.0, "norm": False, "bias": True},
))
