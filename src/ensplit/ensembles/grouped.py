"""`grouped`: m members of width n run as grouped convolutions and block-diagonal linear layers (Littwin et al.).

The member-batched layers are exactly these: `MemberConv` is one convolution with groups = m·groups,
`MemberLinear` a batched matmul, i.e. the block-diagonal linear map diag(W_1, ..., W_m) on the
concatenated features. Two read-outs:
- "collegial": F(x) = (1/√m) Σ_j F_j(x), trained as one model (output `[1, B, C]`);
- "ensemble": the members' logits `[m, B, C]`, averaged as probabilities downstream.
"""

from __future__ import annotations

import torch
from torch import nn

from ensplit.ensembles.independent import MemberBatchedEnsemble

AGGREGATIONS = ("collegial", "ensemble")


class GroupedEnsemble(nn.Module):
    """Wraps a member-batched network of m paths; input `[B, ...]` (every path sees it) or `[m, B, ...]`."""

    def __init__(self, network: MemberBatchedEnsemble, aggregation: str = "collegial") -> None:
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
        self.network, self.aggregation, self.paths = network, aggregation, network.members

    @property
    def output_members(self) -> int:
        return 1 if self.aggregation == "collegial" else self.paths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)  # [m, B, C]
        if self.aggregation == "collegial":
            return logits.sum(0, keepdim=True) / self.paths**0.5
        return logits
