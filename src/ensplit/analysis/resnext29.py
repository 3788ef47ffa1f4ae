"""Closed-form parameters and FLOPs of CIFAR ResNeXt-29 (C×dd) and the whole-network collegial step.

Convention (Xie et al. 2017, CIFAR; 8×64d -> 34,426,698 and 16×64d -> 68,155,210 parameters on CIFAR-10,
the paper's 34.4M and 68.1M):
- stem: 3×3 conv 3->64 (no bias) + batch norm;
- 3 stages × 3 bottleneck blocks with output channels 256, 512, 1024 and group width C·d·2^s in stage s
  (s = 0, 1, 2); a block is 1×1 conv in->w, grouped 3×3 conv w->w (C groups), 1×1 conv w->out, each
  followed by a batch norm (2 parameters per channel), no conv biases;
- projection shortcut (1×1 conv in->out + batch norm) in the first block of every stage
  (64->256, 256->512 stride 2, 512->1024 stride 2);
- global average pooling and a linear classifier 1024 -> classes with bias.
FLOPs are 2 per multiply-add of the convolutions and the classifier for one 32×32 image (the 3×3 conv
carries the stride, so the first 1×1 conv of stages 2 and 3 runs at the input resolution); norms,
activations, pooling and biases are not counted (torch's FlopCounterMode convention).
This module does not depend on the `resnext` model family; tests compare the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ensplit.errors import EnsplitError

STEM = 64
STAGE_OUT = (256, 512, 1024)
BLOCKS_PER_STAGE = 3


def count_resnext29(cardinality: int, bottleneck_width: int, num_classes: int = 10) -> int:
    """Exact parameters of ResNeXt-29 (cardinality × bottleneck_width d) for CIFAR, per the convention above."""
    if cardinality < 1 or bottleneck_width < 1 or num_classes < 1:
        raise EnsplitError("cardinality, bottleneck width and classes must be positive")
    total = 3 * STEM * 9 + 2 * STEM
    c_in = STEM
    for stage, c_out in enumerate(STAGE_OUT):
        w = cardinality * bottleneck_width * 2**stage
        for _ in range(BLOCKS_PER_STAGE):
            total += c_in * w + 2 * w                      # 1×1 reduce + BN
            total += 9 * w * (w // cardinality) + 2 * w    # grouped 3×3 + BN
            total += w * c_out + 2 * c_out                 # 1×1 expand + BN
            if c_in != c_out:
                total += c_in * c_out + 2 * c_out          # projection shortcut + BN
            c_in = c_out
    return total + STAGE_OUT[-1] * num_classes + num_classes


def flops_resnext29(cardinality: int, bottleneck_width: int, num_classes: int = 10, size: int = 32) -> int:
    """Forward FLOPs of ResNeXt-29 (C×dd) for one size×size image, per the convention above."""
    if cardinality < 1 or bottleneck_width < 1 or num_classes < 1 or size < 4:
        raise EnsplitError("cardinality, bottleneck width and classes must be positive, the image at least 4 px")
    total = 2 * size * size * STEM * 3 * 9
    c_in, res = STEM, size
    for stage, c_out in enumerate(STAGE_OUT):
        w = cardinality * bottleneck_width * 2**stage
        for block in range(BLOCKS_PER_STAGE):
            out = (res + 1) // 2 if stage > 0 and block == 0 else res
            total += 2 * res * res * c_in * w                       # 1×1 reduce, input resolution
            total += 2 * out * out * 9 * w * (w // cardinality)     # grouped 3×3 (stride)
            total += 2 * out * out * w * c_out                      # 1×1 expand
            if c_in != c_out:
                total += 2 * out * out * c_in * c_out               # projection shortcut
            c_in, res = c_out, out
    return total + 2 * STAGE_OUT[-1] * num_classes


@dataclass(frozen=True)
class WholeNetworkDesign:
    """The largest cardinality C whose ResNeXt-29 C×nd fits within the baseline network's cost."""

    cardinality: int
    bottleneck_width: int
    params: int
    baseline_cardinality: int
    baseline_bottleneck_width: int
    baseline_params: int
    efficiency: float   # baseline cost / cost, in `cost` (params or FLOPs)
    flops: int = 0
    baseline_flops: int = 0
    cost: str = "params"

    @property
    def name(self) -> str:
        return f"{self.cardinality}x{self.bottleneck_width}d"


def whole_network_design(bottleneck_width: int, baseline_cardinality: int, baseline_bottleneck_width: int,
                         num_classes: int = 10, cardinality: int | None = None,
                         cost: Literal["params", "flops"] = "params") -> WholeNetworkDesign:
    """ResNeXt-29 C×nd at n = bottleneck_width: the given cardinality, or the largest within the baseline's
    cost (parameters, or FLOPs with cost="flops").

    Seed 004 §4.2.1: the block-level primal optimum n = 10 becomes 37×10d, the largest cardinality whose
    whole network fits within the 1×128d network's parameters (13,775,178 on CIFAR-10).
    """
    if cost not in ("params", "flops"):
        raise EnsplitError(f"cost must be 'params' or 'flops', got {cost!r}")
    count: Callable[[int, int, int], int] = count_resnext29 if cost == "params" else flops_resnext29
    budget = count(baseline_cardinality, baseline_bottleneck_width, num_classes)
    if cardinality is None:
        if count(1, bottleneck_width, num_classes) > budget:
            raise EnsplitError(f"even 1x{bottleneck_width}d exceeds the baseline's {budget:,} {cost}")
        cardinality = 1
        while count(cardinality + 1, bottleneck_width, num_classes) <= budget:
            cardinality += 1
    params = count_resnext29(cardinality, bottleneck_width, num_classes)
    flops = flops_resnext29(cardinality, bottleneck_width, num_classes)
    baseline_params = count_resnext29(baseline_cardinality, baseline_bottleneck_width, num_classes)
    baseline_flops = flops_resnext29(baseline_cardinality, baseline_bottleneck_width, num_classes)
    efficiency = baseline_params / params if cost == "params" else baseline_flops / flops
    return WholeNetworkDesign(cardinality, bottleneck_width, params, baseline_cardinality,
                              baseline_bottleneck_width, baseline_params, efficiency, flops, baseline_flops, cost)
