"""Weight-space plumbing for landscape analyses: flat parameter vectors, batch-norm statistics, and
evaluating many plain-network states at once (stacked into one member-batched model).

A *state* is a plain network's state dict (what `MemberBatchedEnsemble.member_state_dict(i)` returns and
what trajectory checkpoints hold). A *template* is any plain network of the architecture; it supplies
parameter names, shapes and buffers.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ensplit.data.dataset import Dataset
from ensplit.ensembles import MemberBatchedEnsemble, stack_members
from ensplit.layers.member import MemberNorm
from ensplit.train import predict_log_probs

State = dict[str, torch.Tensor]


def parameter_names(template: nn.Module, skip_norm: bool = False) -> list[str]:
    """Names of the trainable parameters, in module order (batch-norm buffers are not weights).

    With `skip_norm`, batch-norm scales and shifts are left out too: their scales start at 1 in every
    init, so they can dominate the cosine similarity of small networks.
    """
    skipped = set()
    if skip_norm:
        for prefix, module in template.named_modules():
            if module in batch_norm_layers(template):
                skipped.update(f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters())
    return [name for name, _ in template.named_parameters() if name not in skipped]


def flatten_state(state: State, names: Sequence[str]) -> torch.Tensor:
    """One flat float64 vector `[P]` of the parameters `names` of `state`."""
    return torch.cat([state[n].detach().reshape(-1).to(torch.float64) for n in names])


def flatten_states(states: Sequence[State], names: Sequence[str]) -> torch.Tensor:
    """Flat parameter vectors `[S, P]` (float64)."""
    return torch.stack([flatten_state(s, names) for s in states])


def unflatten(vector: torch.Tensor, template_state: State, names: Sequence[str]) -> State:
    """A state with the parameters `names` taken from `vector` `[P]`; buffers copied from `template_state`."""
    state = {k: v.detach().clone() for k, v in template_state.items()}
    offset = 0
    for n in names:
        size = state[n].numel()
        state[n] = vector[offset : offset + size].reshape(state[n].shape).to(state[n].dtype).clone()
        offset += size
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, the parameters {offset}")
    return state


def batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    """The batch-norm layers of a plain or member-batched model."""
    return [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, MemberNorm))]


def has_batch_norm(model: nn.Module) -> bool:
    return bool(batch_norm_layers(model))


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
        stacked = MemberBatchedEnsemble(stack_members(plains), len(plains), x.dim() - 1)
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
