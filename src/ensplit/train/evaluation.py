"""Evaluate many plain-network states at once: stacked into one member-batched model, batch-norm
statistics recomputed where the state is nobody's trained network (interpolations, samples, averages).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ensplit.data.dataset import Dataset
from ensplit.ensembles import ensemble_of
from ensplit.ensembles.states import State, batch_norm_layers, parameter_names, unflatten
from ensplit.train.loop import predict_log_probs


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, x: torch.Tensor, dataset: Dataset | None = None,
                            batch_size: int = 1024) -> None:
    """Replace running statistics by their average over `x` (the training inputs), chunk by chunk.

    Same rule as `torch.optim.swa_utils.update_bn` (a cumulative average, momentum 1/k for chunk k), which
    only sees torch's `_BatchNorm`, not ensplit's member-batched norm. Dropout stays off meanwhile.
    """
    norms = batch_norm_layers(model)
    if not norms:
        return
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
        m.num_batches_tracked.zero_()
        m.train()
    dtype = next(model.parameters()).dtype
    for k, start in enumerate(range(0, x.shape[0], batch_size)):
        for m in norms:
            m.momentum = 1.0 / (k + 1)
        xb = x[start : start + batch_size]
        model((dataset.prepare(xb) if dataset is not None else xb).to(dtype))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


def load_plain(template: nn.Module, state: State) -> nn.Module:
    """A copy of `template` holding `state`."""
    model = copy.deepcopy(template)
    model.load_state_dict(state)
    return model


@torch.no_grad()
def evaluate_states(template: nn.Module, states: Sequence[State], x: torch.Tensor, dataset: Dataset | None = None,
                    bn_inputs: torch.Tensor | None = None, chunk: int = 64) -> torch.Tensor:
    """Log-probabilities `[S, N, C]` of every state on `x`, `chunk` states per stacked forward.

    With `bn_inputs` (training inputs), batch-norm statistics are recomputed on them first (needed for any
    state that is not a trained network's own: interpolations, samples, averages); else the stored ones are
    used. Families without batch norm are unaffected.
    """
    outputs = []
    for start in range(0, len(states), chunk):
        plains = [load_plain(template, s) for s in states[start : start + chunk]]
        stacked = ensemble_of(plains, x.dim() - 1)
        if bn_inputs is not None:
            recompute_bn_statistics(stacked, bn_inputs, dataset)
        outputs.append(predict_log_probs(stacked, x, dataset))
    return torch.cat(outputs)


def evaluate_vectors(template: nn.Module, vectors: torch.Tensor, x: torch.Tensor, dataset: Dataset | None = None,
                     bn_inputs: torch.Tensor | None = None, chunk: int = 64) -> torch.Tensor:
    """Like `evaluate_states` for flat parameter vectors `[S, P]` (buffers from the template)."""
    names, base = parameter_names(template), template.state_dict()
    outputs = []
    for start in range(0, vectors.shape[0], chunk):
        states = [unflatten(v, base, names) for v in vectors[start : start + chunk]]
        outputs.append(evaluate_states(template, states, x, dataset, bn_inputs, chunk))
    return torch.cat(outputs)
