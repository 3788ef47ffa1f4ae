"""Closed-form parameter count of CIFAR ResNeXt-29 (C×dd) and the whole-network collegial step.

Convention (Xie et al. 2017, CIFAR; 8×64d -> 34,426,698 and 16×64d -> 68,155,210 parameters on CIFAR-10,
the paper's 34.4M and 68.1M):
- stem: 3×3 conv 3->64 (no bias) + batch norm;
- 3 stages × 3 bottleneck blocks with output channels 256, 512, 1024 and group width C·d·2^s in stage s
  (s = 0, 1, 2); a block is 1×1 conv in->w, grouped 3×3 conv w->w (C groups), 1×1 conv w->out, each
  followed by a batch norm (2 parameters per channel), no conv biases;
- projection shortcut (1×1 conv in->out + batch norm) in the first block of every stage
  (64->256, 256->512 stride 2, 512->1024 stride 2);
- global average pooling and a linear classifier 1024 -> classes with bias.
This module does not depend on the `resnext` model family; a test compares the two when it is registered.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class WholeNetworkDesign:
    """The largest cardinality C whose ResNeXt-29 C×nd fits within the baseline network's parameters."""

    cardinality: int
    bottleneck_width: int
    params: int
    baseline_cardinality: int
    baseline_bottleneck_width: int
    baseline_params: int
    efficiency: float   # baseline_params / params

    @property
    def name(self) -> str:
        return f"{self.cardinality}x{self.bottleneck_width}d"


def whole_network_design(bottleneck_width: int, baseline_cardinality: int, baseline_bottleneck_width: int,
                         num_classes: int = 10, cardinality: int | None = None) -> WholeNetworkDesign:
    """ResNeXt-29 C×nd at n = bottleneck_width: the given cardinality, or the largest within the budget.

    Seed 004 §4.2.1: the block-level primal optimum n = 10 becomes 37×10d, the largest cardinality whose
    whole network fits within the 1×128d network's parameters (13,775,178 on CIFAR-10).
    """
    budget = count_resnext29(baseline_cardinality, baseline_bottleneck_width, num_classes)
    if cardinality is None:
        if count_resnext29(1, bottleneck_width, num_classes) > budget:
            raise EnsplitError(f"even 1x{bottleneck_width}d exceeds the baseline's {budget} parameters")
        cardinality = 1
        while count_resnext29(cardinality + 1, bottleneck_width, num_classes) <= budget:
            cardinality += 1
    params = count_resnext29(cardinality, bottleneck_width, num_classes)
    return WholeNetworkDesign(cardinality, bottleneck_width, params, baseline_cardinality,
                              baseline_bottleneck_width, budget, budget / params)
