"""`cnn1d`: a 1-D convolutional network; width = channels, depth = conv layers."""

from __future__ import annotations

import torch
from torch import nn

from ensplit.layers import LayerSet
from ensplit.layers.ops import global_avg_pool, max_pool
from ensplit.models.registry import Family, register_family

KERNEL = 5


class CNN1d(nn.Module):
    """[conv(k=5) → (norm) → ReLU → max-pool 2] × depth → global average pool → linear head.

    Each max-pool runs before its ReLU: the two commute, in values and in gradients, and the ReLU then
    touches half the elements.

    Input `[..., L]` is read as one channel; `[..., C, L]` (in_shape of length 2) as C channels.
    """

    def __init__(self, width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                 norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.single_channel = len(in_shape) == 1
        in_channels = 1 if self.single_channel else in_shape[0]
        length = in_shape[-1]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.pool_after: list[bool] = []
        for i in range(depth):
            self.convs.append(layers.conv(1, in_channels if i == 0 else width, width, KERNEL, 1, KERNEL // 2,
                                          not norm))
            if norm:
                self.norms.append(layers.norm(1, width))
            self.pool_after.append(length >= 4)
            length = length // 2 if length >= 4 else length
        self.dropout = layers.dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = layers.linear(width, num_classes, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.single_channel:
            x = x.unsqueeze(-2)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if len(self.norms):
                x = self.norms[i](x)
            if self.pool_after[i]:  # pooled before the ReLU: they commute (values and gradients), and the
                x = max_pool(x, 1, 2)  # ReLU then runs on half the elements
            x = torch.relu(x)
        return self.head(self.dropout(global_avg_pool(x, 1)))


def count_cnn1d(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, norm: bool = False,
                dropout: float = 0.0) -> int:
    in_channels = 1 if len(in_shape) == 1 else in_shape[0]
    bias = 0 if norm else 1
    convs = (in_channels * KERNEL + bias) * width + (depth - 1) * (width * KERNEL + bias) * width
    return convs + (2 * width * depth if norm else 0) + (width + 1) * num_classes


register_family(Family(
    name="cnn1d", build=CNN1d, count=count_cnn1d, default_depth=3, default_in_shape=(40,),
    default_num_classes=10, valid_depth=lambda d: d >= 1, depth_rule="any depth >= 1 (conv layers)",
    description="1-D CNN with max pooling and a global-average-pool head; width = channels",
    width_meaning="channels", options={"norm": False, "dropout": 0.0},
))
