"""`wrn` and `wrn-pl`: pre-activation WideResNets (Zagoruyko & Komodakis, 2016) in two conventions.

Depth 6n+4: a 3×3 stem conv, three stages of n pre-activation blocks (norm → ReLU → conv3×3 →
[dropout] → norm → ReLU → conv3×3), a final norm → ReLU, global average pooling and a linear head.
Where a block changes the shape, its shortcut is a 1×1 conv (stride 2 in stages 2 and 3) applied to
the pre-activated input, as in the authors' code.

- `wrn` (the paper's convention): width = widen factor k; stem 3→16, stages [16k, 32k, 64k], no conv
  biases. WRN-28-10 has 36,479,194 parameters on CIFAR-10 and 36,536,884 on CIFAR-100.
- `wrn-pl` (the power-law paper's code, Lobacheva et al. 2020): width = first-stage channels w; stem 3→w,
  stages [w, 2w, 4w], conv biases everywhere. w = 160 is WRN-28-10: 36,755,940 parameters on CIFAR-100.
"""

from __future__ import annotations

import torch
from torch import nn

from ensplit.layers import LayerSet
from ensplit.layers.ops import global_avg_pool
from ensplit.models.image import image_shape
from ensplit.models.registry import Family, register_family


class PreActBlock(nn.Module):
    """Pre-activation wide basic block; `shortcut` is a 1×1 conv where the shape changes, else None."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, layers: LayerSet, bias: bool,
                 dropout: float) -> None:
        super().__init__()
        self.norm1 = layers.norm(2, in_channels)
        self.conv1 = layers.conv(2, in_channels, out_channels, 3, stride, 1, bias)
        self.dropout = layers.dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm2 = layers.norm(2, out_channels)
        self.conv2 = layers.conv(2, out_channels, out_channels, 3, 1, 1, bias)
        self.shortcut = (layers.conv(2, in_channels, out_channels, 1, stride, 0, bias)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.norm1(x))
        y = self.conv2(torch.relu(self.norm2(self.dropout(self.conv1(pre)))))
        return y + (x if self.shortcut is None else self.shortcut(pre))


def _plan(stem: int, stages: tuple[int, int, int], blocks: int) -> list[tuple[int, int, int]]:
    plan, channels = [], stem
    for s, out in enumerate(stages):
        for b in range(blocks):
            plan.append((channels, out, 2 if s > 0 and b == 0 else 1))
            channels = out
    return plan


class WideResNet(nn.Module):
    """Input `[..., C, H, W]`, output `[..., num_classes]`; blocks live in `stages[s][b]`."""

    def __init__(self, stem: int, stages: tuple[int, int, int], depth: int, in_shape: tuple[int, ...],
                 num_classes: int, layers: LayerSet, bias: bool, dropout: float, name: str) -> None:
        super().__init__()
        in_channels, _, _ = image_shape(in_shape, name)
        blocks = (depth - 4) // 6
        self.stem = layers.conv(2, in_channels, stem, 3, 1, 1, bias)
        plan = _plan(stem, stages, blocks)
        self.stages = nn.ModuleList(
            nn.Sequential(*(PreActBlock(*spec, layers, bias, dropout) for spec in plan[s * blocks : (s + 1) * blocks]))
            for s in range(3)
        )
        self.norm = layers.norm(2, stages[-1])
        self.head = layers.linear(stages[-1], num_classes, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(global_avg_pool(torch.relu(self.norm(x)), 2))


def _count(stem: int, stages: tuple[int, int, int], depth: int, in_channels: int, num_classes: int,
           bias: bool) -> int:
    b = int(bias)
    total = (9 * in_channels + b) * stem
    for cin, cout, stride in _plan(stem, stages, (depth - 4) // 6):
        total += 2 * cin + (9 * cin + b) * cout + 2 * cout + (9 * cout + b) * cout
        if stride != 1 or cin != cout:
            total += (cin + b) * cout
    return total + 2 * stages[-1] + (stages[-1] + 1) * num_classes


def build_wrn(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
              dropout: float = 0.0) -> WideResNet:
    """`wrn`: width = widen factor k, stages [16k, 32k, 64k], stem 3→16, no conv biases."""
    return WideResNet(16, (16 * width, 32 * width, 64 * width), depth, in_shape, num_classes, layers, False,
                      dropout, "wrn")


def count_wrn(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> int:
    in_channels, _, _ = image_shape(in_shape, "wrn")
    return _count(16, (16 * width, 32 * width, 64 * width), depth, in_channels, num_classes, False)


def build_wrn_pl(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                 dropout: float = 0.0) -> WideResNet:
    """`wrn-pl`: width = first-stage channels w, stages [w, 2w, 4w], stem 3→w, conv biases."""
    return WideResNet(width, (width, 2 * width, 4 * width), depth, in_shape, num_classes, layers, True,
                      dropout, "wrn-pl")


def count_wrn_pl(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> int:
    in_channels, _, _ = image_shape(in_shape, "wrn-pl")
    return _count(width, (width, 2 * width, 4 * width), depth, in_channels, num_classes, True)


def _valid(d: int) -> bool:
    return d >= 10 and (d - 4) % 6 == 0


_RULE = "6n+4 with n >= 1 (10, 16, 22, 28, 34, 40, ...)"

register_family(Family(
    name="wrn", build=build_wrn, count=count_wrn, default_depth=28, default_in_shape=(3, 32, 32),
    default_num_classes=10, valid_depth=_valid, depth_rule=_RULE,
    description="WideResNet (Zagoruyko & Komodakis): pre-activation, stages [16k, 32k, 64k], stem 3→16, "
                "no conv biases",
    width_meaning="widen factor k (10 = WRN-28-10)", options={"dropout": 0.0},
))

register_family(Family(
    name="wrn-pl", build=build_wrn_pl, count=count_wrn_pl, default_depth=28, default_in_shape=(3, 32, 32),
    default_num_classes=10, valid_depth=_valid, depth_rule=_RULE,
    description="WideResNet in the power-law paper's convention: stages [w, 2w, 4w], stem 3→w, conv biases",
    width_meaning="first-stage channels w (160 = WRN-28-10)", options={"dropout": 0.0},
))
