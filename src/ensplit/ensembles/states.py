"""Plain-network states as flat parameter vectors, for weight-space analyses (cosine, samplers, paths).

A *state* is a plain network's state dict (what `MemberBatchedEnsemble.member_state_dict(i)` returns and
what trajectory checkpoints hold). A *template* is any plain network of the architecture; it supplies
parameter names, shapes and buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ensplit.layers.member import MemberNorm

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
