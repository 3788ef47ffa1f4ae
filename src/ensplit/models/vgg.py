"""`vgg16`: VGG16 for CIFAR (Simonyan & Zisserman 2015, configuration D); width = first-stage channels w.

13 3×3 convs with biases in five stages of [w, 2w, 4w, 8w, 8w] channels (2, 2, 3, 3, 3 convs), each
stage ending in a 2×2 max pool; the head is Dropout–Linear(8w, 8w)–ReLU twice, then Linear(8w, C).
Without batch norm (the default) the count is (109 + 8C)·w + 3719·w² + C: 15,245,130 at w = 64 on
CIFAR-10 and 15,291,300 on CIFAR-100 (Lobacheva et al. 2020). `norm=True` adds batch norm after every
conv (biases kept). Inputs smaller than 32×32 skip the pools that would go below 1×1; the features are
globally averaged before the head, which for 32×32 inputs is the paper's flatten of a 1×1 map.
"""

from __future__ import annotations

import torch
from torch import nn

from ensplit.layers import LayerSet
from ensplit.layers.ops import global_avg_pool, max_pool
from ensplit.models.image import image_shape
from ensplit.models.registry import Family, register_family

STAGES = ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3))  # (channel multiple of w, convs per stage)


class VGG16(nn.Module):
    """Input `[..., C, H, W]`, output `[..., num_classes]`; convs in `convs`, the head in `classifier`."""

    def __init__(self, width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                 norm: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        channels, height, wide = image_shape(in_shape, "vgg16")
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.pool_after: list[bool] = []
        for multiple, count in STAGES:
            for i in range(count):
                self.convs.append(layers.conv(2, channels, multiple * width, 3, 1, 1, True))
                if norm:
                    self.norms.append(layers.norm(2, multiple * width))
                channels = multiple * width
                pool = i == count - 1 and min(height, wide) >= 2
                self.pool_after.append(pool)
                if pool:
                    height, wide = height // 2, wide // 2
        hidden = 8 * width
        self.classifier = nn.Sequential(
            layers.dropout(dropout), layers.linear(hidden, hidden, True), nn.ReLU(),
            layers.dropout(dropout), layers.linear(hidden, hidden, True), nn.ReLU(),
            layers.linear(hidden, num_classes, True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if len(self.norms):
                x = self.norms[i](x)
            x = torch.relu(x)
            if self.pool_after[i]:
                x = max_pool(x, 2, 2)
        return self.classifier(global_avg_pool(x, 2))


def count_vgg16(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, norm: bool = False,
                dropout: float = 0.5) -> int:
    channels, _, _ = image_shape(in_shape, "vgg16")
    total = 0
    for multiple, count in STAGES:
        for _ in range(count):
            out = multiple * width
            total += (9 * channels + 1) * out + (2 * out if norm else 0)
            channels = out
    hidden = 8 * width
    return total + 2 * (hidden + 1) * hidden + (hidden + 1) * num_classes


register_family(Family(
    name="vgg16", build=VGG16, count=count_vgg16, default_depth=16, default_in_shape=(3, 32, 32),
    default_num_classes=10, valid_depth=lambda d: d == 16, depth_rule="16 only (13 convs + 3 linear layers)",
    description="VGG16 for CIFAR: 13 convs [w, 2w, 4w, 8w, 8w] with biases, head 8w–8w–C with dropout",
    width_meaning="first-stage channels w (64 = the standard VGG16)", options={"norm": False, "dropout": 0.5},
))
