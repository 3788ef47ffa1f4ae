"""The training loss of M members: each member's mean cross-entropy (their sum is what training minimises,
so every member's gradient is the one it would get alone)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def member_losses(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-member mean cross-entropy: logits `[M, B, C]`, targets `[M, B]` -> `[M]`; plain logits `[B, C]`
    with targets `[B]` count as one member.

    When the classes are not innermost in memory (MemberLinear hands logits on as a `[M, C, B]` tensor),
    the loss runs on that `[M, C, B]` view, classes as dim 1: the softmax then sweeps the contiguous batch,
    about 2x faster on a CPU than over rows of ten classes, and no copy is made. It is written as
    log-softmax and gather rather than `F.cross_entropy`, whose `[M, C, B]` path (`nll_loss2d`) took ~20%
    longer, forward and backward, at M = 8, B = 128 on a CPU (121 against 100 µs, medians of five processes;
    benchmarks/results/member_batched.md). Values and gradients are the same.
    """
    if logits.dim() == 2:
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing).unsqueeze(0)
    if logits.stride(-1) != 1:
        log_probs = torch.log_softmax(logits.transpose(1, 2), 1)  # [M, C, B], classes as dim 1
        per_example = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
        if label_smoothing:  # F.cross_entropy's definition: the target mixed with the uniform distribution
            per_example = (1 - label_smoothing) * per_example - label_smoothing * log_probs.mean(1)
        return per_example.mean(1)
    per_example = F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1), reduction="none",
                                  label_smoothing=label_smoothing)
    return per_example.view(logits.shape[0], -1).mean(1)
