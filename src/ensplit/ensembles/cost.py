"""What running an ensemble model costs: forward FLOPs per example, counted by torch's FlopCounterMode."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def forward_flops(model: torch.nn.Module, batch: torch.Tensor) -> int:
    """Eval-mode forward FLOPs per object, counted by FlopCounterMode on `batch` and divided by its size:
    every member's work, 2 FLOPs per multiply-add, matmuls and convolutions only. Work done once per batch
    (MixtureEnsembles building member weights from templates) is shared by the batch's objects."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(batch)
    model.train(was_training)
    return round(counter.get_total_flops() / batch.shape[0])
