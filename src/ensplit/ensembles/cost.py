"""What running and training an ensemble model costs: FLOPs per example, counted by torch's FlopCounterMode."""

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


def training_flops_per_example(model: torch.nn.Module, batch: torch.Tensor, targets: torch.Tensor,
                               examples: int | None = None) -> int:
    """Train-mode forward + backward FLOPs of one training step, per training example drawn from the data set.

    `batch` is the model's input as the training loop feeds it (`[B, ...]` for a shared batch, `[M, B', ...]`
    for one batch per member), `targets` the labels `[M, B']`. The loss is the sum over members of each
    member's mean cross-entropy, as in `ensplit.train`; its gradient reaches every trainable parameter, and
    autograd computes an input gradient only where a parameter needs it (so a plain first layer never does).
    `examples`: the data-set examples this step consumed (default `targets.shape[-1]`); it differs from the
    rows of the batch where a method repeats examples (MIMO's batch repetitions) or splits one batch among its
    members (BatchEnsemble's split batch). Counted as in `forward_flops`: matmuls and convolutions only."""
    was_training = model.training
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    counter = FlopCounterMode(display=False)
    with counter:
        logits = model(batch)
        loss = sum(torch.nn.functional.cross_entropy(logits[m], targets[m]) for m in range(logits.shape[0]))
        torch.autograd.grad(loss, params, allow_unused=True)  # no .grad left on the model
    model.train(was_training)
    return round(counter.get_total_flops() / (targets.shape[-1] if examples is None else examples))
