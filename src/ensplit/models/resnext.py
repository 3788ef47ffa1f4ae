"""`resnext`: CIFAR ResNeXt (Xie et al. 2017, §5.1); width = bottleneck width d, option `cardinality` C.

Depth 9n+2 (29 = ResNeXt-29): a 3×3 stem conv 3→b (b = `base_width`, 64) with norm and ReLU, three
stages of n bottleneck blocks whose outputs are [4b, 8b, 16b] = [256, 512, 1024] channels, global
average pooling and a linear head. A block is conv1×1 → C·d·2^s (C paths of width d·2^s in stage s) →
grouped conv3×3 (groups = C, stride 2 opening stages 2 and 3) → conv1×1 → output, each followed by norm,
ReLU after the first two and after the sum; shortcuts are 1×1 conv + norm where the shape changes.
"C×dd" in the papers maps to `width=d, cardinality=C`: 8×64d is `width=64, cardinality=8` (the
default), the collegial paper's 1×128d and 37×10d are `width=128, cardinality=1` and `width=10,
cardinality=37`. Solving for width at a budget keeps the cardinality and the block outputs fixed.
"""

from __future__ import annotations

import torch
from torch import nn

from ensplit.errors import EnsplitError
from ensplit.layers import LayerSet
from ensplit.layers.ops import global_avg_pool
from ensplit.models.image import image_shape
from ensplit.models.registry import Family, register_family


class Bottleneck(nn.Module):
    """ResNeXt block (form c): `[..., cin, H, W] -> [..., cout, H/stride, W/stride]`."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int, cardinality: int,
                 layers: LayerSet) -> None:
        super().__init__()
        self.conv1 = layers.conv(2, in_channels, inner, 1, 1, 0, False)
        self.norm1 = layers.norm(2, inner)
        self.conv2 = layers.conv(2, inner, inner, 3, stride, 1, False, cardinality)
        self.norm2 = layers.norm(2, inner)
        self.conv3 = layers.conv(2, inner, out_channels, 1, 1, 0, False)
        self.norm3 = layers.norm(2, out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(layers.conv(2, in_channels, out_channels, 1, stride, 0, False),
                                          layers.norm(2, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        y = torch.relu(self.norm2(self.conv2(y)))
        return torch.relu(self.norm3(self.conv3(y)) + self.shortcut(x))


def _plan(width: int, depth: int, cardinality: int, base_width: int) -> list[tuple[int, int, int, int]]:
    """(in_channels, inner channels, out_channels, stride) of every block."""
    if cardinality < 1 or base_width < 1:
        raise EnsplitError(f"resnext needs cardinality >= 1 and base_width >= 1, got {cardinality}, {base_width}")
    plan, channels = [], base_width
    for s in range(3):
        for b in range((depth - 2) // 9):
            out = 4 * base_width * 2**s
            plan.append((channels, cardinality * width * 2**s, out, 2 if s > 0 and b == 0 else 1))
            channels = out
    return plan


class ResNeXt(nn.Module):
    """Input `[..., C, H, W]`, output `[..., num_classes]`; blocks live in `stages[s][b]`."""

    def __init__(self, width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                 cardinality: int = 8, base_width: int = 64) -> None:
        super().__init__()
        in_channels, _, _ = image_shape(in_shape, "resnext")
        plan = _plan(width, depth, cardinality, base_width)
        blocks = (depth - 2) // 9
        self.stem = layers.conv(2, in_channels, base_width, 3, 1, 1, False)
        self.stem_norm = layers.norm(2, base_width)
        self.stages = nn.ModuleList(
            nn.Sequential(*(Bottleneck(cin, inner, cout, stride, cardinality, layers)
                            for cin, inner, cout, stride in plan[s * blocks : (s + 1) * blocks]))
            for s in range(3)
        )
        self.head = layers.linear(16 * base_width, num_classes, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_norm(self.stem(x)))
        for stage in self.stages:
            x = stage(x)
        return self.head(global_avg_pool(x, 2))


def count_resnext(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, cardinality: int = 8,
                  base_width: int = 64) -> int:
    in_channels, _, _ = image_shape(in_shape, "resnext")
    total = 9 * in_channels * base_width + 2 * base_width
    for cin, inner, cout, stride in _plan(width, depth, cardinality, base_width):
        total += cin * inner + 9 * inner * (inner // cardinality) + inner * cout + 4 * inner + 2 * cout
        if stride != 1 or cin != cout:
            total += cin * cout + 2 * cout
    return total + (16 * base_width + 1) * num_classes


register_family(Family(
    name="resnext", build=ResNeXt, count=count_resnext, default_depth=29, default_in_shape=(3, 32, 32),
    default_num_classes=10, valid_depth=lambda d: d >= 11 and (d - 2) % 9 == 0,
    depth_rule="9n+2 with n >= 1 (11, 20, 29, 38, ...)",
    description="CIFAR ResNeXt (Xie et al.): bottleneck blocks with grouped 3×3 convs, outputs [4b, 8b, 16b]",
    width_meaning="bottleneck width d per path (C×dd: cardinality C is an option, default 8)",
    options={"cardinality": 8, "base_width": 64},
))
