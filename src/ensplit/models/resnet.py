"""`resnet`: the CIFAR ResNet of He et al. (2016, §4.2); width = first-stage channels w.

Depth 6n+2: a 3×3 stem conv, three stages of n basic blocks with [w, 2w, 4w] channels (the second and
third stages start with stride 2), global average pooling and a linear head. w = 16 gives the paper's
ResNet-20/32/44/56/110 (ResNet-20 has 269,722 parameters on CIFAR-10 with option A).

Shortcuts where the shape changes: option "A" (the paper's CIFAR default) subsamples and zero-pads the
channels, so it has no parameters; option "B" uses a 1×1 conv (stride 2) followed by batch norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ensplit.errors import EnsplitError
from ensplit.layers import LayerSet
from ensplit.layers.ops import global_avg_pool
from ensplit.models.image import image_shape
from ensplit.models.registry import Family, register_family

SHORTCUTS = ("A", "B")


class PadShortcut(nn.Module):
    """Option-A shortcut on `[..., C, H, W]`: subsample by `stride`, zero-pad channels to `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        # pad (W, H, C) from the last dim backwards; channels split as evenly as possible, as in He et al.
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """conv3×3 → norm → ReLU → conv3×3 → norm, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, layers: LayerSet, shortcut: str) -> None:
        super().__init__()
        self.conv1 = layers.conv(2, in_channels, out_channels, 3, stride, 1, False)
        self.norm1 = layers.norm(2, out_channels)
        self.conv2 = layers.conv(2, out_channels, out_channels, 3, 1, 1, False)
        self.norm2 = layers.norm(2, out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.shortcut = PadShortcut(in_channels, out_channels, stride)
            else:
                self.shortcut = nn.Sequential(layers.conv(2, in_channels, out_channels, 1, stride, 0, False),
                                              layers.norm(2, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


def stage_plan(width: int, blocks: int) -> list[tuple[int, int, int]]:
    """(in_channels, out_channels, stride) of every block, stage by stage."""
    plan, channels = [], width
    for stage, out in enumerate((width, 2 * width, 4 * width)):
        for b in range(blocks):
            plan.append((channels, out, 2 if stage > 0 and b == 0 else 1))
            channels = out
    return plan


def _check(depth: int, shortcut: str) -> int:
    if shortcut not in SHORTCUTS:
        raise EnsplitError(f"resnet shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
    return (depth - 2) // 6


class ResNet(nn.Module):
    """CIFAR ResNet; input `[..., C, H, W]`, output `[..., num_classes]`. Blocks live in `stages[s][b]`."""

    def __init__(self, width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, layers: LayerSet,
                 shortcut: str = "A") -> None:
        super().__init__()
        blocks = _check(depth, shortcut)
        in_channels, _, _ = image_shape(in_shape, "resnet")
        self.stem = layers.conv(2, in_channels, width, 3, 1, 1, False)
        self.stem_norm = layers.norm(2, width)
        plan = stage_plan(width, blocks)
        self.stages = nn.ModuleList(
            nn.Sequential(*(BasicBlock(*spec, layers, shortcut) for spec in plan[s * blocks : (s + 1) * blocks]))
            for s in range(3)
        )
        self.head = layers.linear(4 * width, num_classes, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_norm(self.stem(x)))
        for stage in self.stages:
            x = stage(x)
        return self.head(global_avg_pool(x, 2))


def count_resnet(width: int, depth: int, in_shape: tuple[int, ...], num_classes: int, shortcut: str = "A") -> int:
    blocks = _check(depth, shortcut)
    in_channels, _, _ = image_shape(in_shape, "resnet")
    total = 9 * in_channels * width + 2 * width
    for cin, cout, stride in stage_plan(width, blocks):
        total += 9 * cin * cout + 9 * cout * cout + 4 * cout
        if shortcut == "B" and (stride != 1 or cin != cout):
            total += cin * cout + 2 * cout
    return total + 4 * width * num_classes + num_classes


register_family(Family(
    name="resnet", build=ResNet, count=count_resnet, default_depth=20, default_in_shape=(3, 32, 32),
    default_num_classes=10, valid_depth=lambda d: d >= 8 and (d - 2) % 6 == 0,
    depth_rule="6n+2 with n >= 1 (8, 14, 20, 26, 32, ...)",
    description="CIFAR ResNet (He et al.): basic blocks, stages [w, 2w, 4w]; shortcut A (default) or B",
    width_meaning="first-stage channels w (16 = the paper's ResNet)", options={"shortcut": "A"},
))
