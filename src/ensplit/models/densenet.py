"""`densenet` and `densenet-bc`: DenseNets for CIFAR (Huang et al. 2017); width = growth rate k.

A 3×3 stem conv 3→2k, three dense blocks of n layers separated by transitions (norm → ReLU → 1×1 conv
→ 2×2 average pool), then norm → ReLU → global average pool → linear. Convs have no biases; each layer's
output (k channels) is concatenated to its input along the channel dim.
- `densenet`: layer = norm → ReLU → conv3×3 (k); depth = 3n + 4; transitions keep the channels.
- `densenet-bc`: layer = norm → ReLU → conv1×1 (4k) → norm → ReLU → conv3×3 (k); depth = 6n + 4;
  transitions compress channels to ⌊θ·c⌋ (θ = `compression`, 0.5). DenseNet-BC-100-12 has 769,162
  parameters on CIFAR-10.
Inputs too small for a transition's pool skip that pool.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ensplit.errors import EnsplitError
from ensplit.layers import LayerSet
from ensplit.layers.ops import avg_pool, global_avg_pool
from ensplit.models.image import image_shape
from ensplit.models.registry import Family, register_family


class DenseLayer(nn.Module):
    """Adds `growth` channels: `[..., c, H, W] -> [..., c + growth, H, W]`."""

    def __init__(self, channels: int, growth: int, bottleneck: bool, layers: LayerSet) -> None:
        super().__init__()
        self.norm1 = layers.norm(2, channels)
        if bottleneck:
            self.conv1 = layers.conv(2, channels, 4 * growth, 1, 1, 0, False)
            self.norm2 = layers.norm(2, 4 * growth)
            self.conv2 = layers.conv(2, 4 * growth, growth, 3, 1, 1, False)
        else:
            self.conv1 = layers.conv(2, channels, growth, 3, 1, 1, False)
        self.bottleneck = bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(torch.relu(self.norm1(x)))
        if self.bottleneck:
            y = self.conv2(torch.relu(self.norm2(y)))
        return torch.cat([x, y], dim=-3)


class Transition(nn.Module):
    def __init__(self, channels: int, out_channels: int, pool: bool, layers: LayerSet) -> None:
        super().__init__()
        self.norm = layers.norm(2, channels)
        self.conv = layers.conv(2, channels, out_channels, 1, 1, 0, False)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.relu(self.norm(x)))
        return avg_pool(x, 2, 2) if self.pool else x


def _plan(growth: int, depth: int, bottleneck: bool, compression: float) -> tuple[int, list[int], list[int]]:
    """(stem channels, channels entering each block, channels after each block's transition)."""
    if not 0.0 < compression <= 1.0:
        raise EnsplitError(f"densenet compression must be in (0, 1], got {compression}")
    per_block = (depth - 4) // (6 if bottleneck else 3)
    stem = 2 * growth
    entering, leaving, channels = [], [], stem
    for _ in range(3):
        entering.append(channels)
        channels += per_block * growth
        leaving.append(channels)
        channels = max(1, math.floor(channels * compression))
    return stem, entering, leaving


class DenseNet(nn.Module):
    """Input `[..., C, H, W]`, output `[..., num_classes]`; blocks in `blocks[s]`, transitions in `transitions`."""

    def __init__(self, width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                 bottleneck: bool, compression: float, name: str) -> None:
        super().__init__()
        in_channels, height, wide = image_shape(in_shape, name)
        stem, entering, leaving = _plan(width, depth, bottleneck, compression)
        per_block = (depth - 4) // (6 if bottleneck else 3)
        self.stem = layers.conv(2, in_channels, stem, 3, 1, 1, False)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for s in range(3):
            self.blocks.append(nn.Sequential(*(DenseLayer(entering[s] + i * width, width, bottleneck, layers)
                                               for i in range(per_block))))
            if s < 2:
                pool = min(height, wide) >= 2
                self.transitions.append(Transition(leaving[s], entering[s + 1], pool, layers))
                height, wide = (height // 2, wide // 2) if pool else (height, wide)
        self.norm = layers.norm(2, leaving[2])
        self.head = layers.linear(leaving[2], num_classes, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for s, block in enumerate(self.blocks):
            x = block(x)
            if s < 2:
                x = self.transitions[s](x)
        return self.head(global_avg_pool(torch.relu(self.norm(x)), 2))


def _count(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, bottleneck: bool,
           compression: float, name: str) -> int:
    in_channels, _, _ = image_shape(in_shape, name)
    stem, entering, leaving = _plan(width, depth, bottleneck, compression)
    per_block = (depth - 4) // (6 if bottleneck else 3)
    total = 9 * in_channels * stem
    for s in range(3):
        for i in range(per_block):
            c = entering[s] + i * width
            if bottleneck:
                total += 2 * c + c * 4 * width + 2 * 4 * width + 9 * 4 * width * width
            else:
                total += 2 * c + 9 * c * width
        if s < 2:
            total += 2 * leaving[s] + leaving[s] * entering[s + 1]
    return total + 2 * leaving[2] + (leaving[2] + 1) * num_classes


def build_densenet(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int,
                   layers: LayerSet) -> DenseNet:
    return DenseNet(width, depth, in_shape, num_classes, layers, False, 1.0, "densenet")


def count_densenet(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int) -> int:
    return _count(width, depth, in_shape, num_classes, False, 1.0, "densenet")


def build_densenet_bc(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                      compression: float = 0.5) -> DenseNet:
    return DenseNet(width, depth, in_shape, num_classes, layers, True, compression, "densenet-bc")


def count_densenet_bc(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int,
                      compression: float = 0.5) -> int:
    return _count(width, depth, in_shape, num_classes, True, compression, "densenet-bc")


register_family(Family(
    name="densenet", build=build_densenet, count=count_densenet, default_depth=40, default_in_shape=(3, 32, 32),
    default_num_classes=10, valid_depth=lambda d: d >= 7 and (d - 4) % 3 == 0,
    depth_rule="3n+4 with n >= 1 (7, 10, 13, ..., 40, ...)",
    description="DenseNet (Huang et al.) without bottlenecks or compression; stem 3→2k",
    width_meaning="growth rate k (12 = DenseNet-40-12)",
))

register_family(Family(
    name="densenet-bc", build=build_densenet_bc, count=count_densenet_bc, default_depth=100,
    default_in_shape=(3, 32, 32), default_num_classes=10, valid_depth=lambda d: d >= 10 and (d - 4) % 6 == 0,
    depth_rule="6n+4 with n >= 1 (10, 16, 22, ..., 100, ...)",
    description="DenseNet-BC (Huang et al.): bottleneck layers (1×1 to 4k) and compression 0.5; stem 3→2k",
    width_meaning="growth rate k (12 = DenseNet-BC-100-12)", options={"compression": 0.5},
))
