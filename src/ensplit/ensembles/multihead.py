"""`multihead`: a shared trunk up to a chosen layer, then one independent copy per member.

Layers are ordered as a forward pass calls them; from the split point on, every weight layer and norm is
member-batched (stacked from M seeded copies of the family). Where the trunk's output first meets a
member layer it is expanded to `[M, ...]`; ranks are recorded at conversion, so residual paths that still
carry the shared activation simply broadcast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ensplit.ensembles.convert import replace_layers
from ensplit.ensembles.inventory import NORM_TYPES, Inventory, example_input, execution_order, is_weight_layer
from ensplit.layers import member, plain


class ExpandToMembers(nn.Module):
    """Runs a member-batched layer, first giving a shared input (of the traced rank) a members axis."""

    def __init__(self, layer: nn.Module, members: int, shared_rank: int) -> None:
        super().__init__()
        self.layer, self.members, self.shared_rank = layer, members, shared_rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.shared_rank:
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        return self.layer(x)


def split_layers(model: nn.Module, in_shape: Sequence[int], split_at: str | None = None) -> list[tuple[str, int]]:
    """The per-member layers `[(name, traced input rank)]`: from the first one (in call order) whose
    qualified name is or starts with `split_at`; by default, from the last weight layer (the head)."""
    p = next(model.parameters())
    order = execution_order(model, example_input(tuple(in_shape), device=p.device, dtype=p.dtype))
    if split_at is None:
        start = max(i for i, (name, _) in enumerate(order) if is_weight_layer(model.get_submodule(name)))
    else:
        hits = [i for i, (name, _) in enumerate(order) if name == split_at or name.startswith(split_at + ".")]
        if not hits:
            raise ValueError(f"no weight layer or norm named {split_at!r} (or under it) in the model")
        start = hits[0]
    return order[start:]


def to_multihead(models: Sequence[nn.Module], in_shape: Sequence[int], split_at: str | None = None) -> tuple[
        nn.Module, list[str]]:
    """A multihead network from M plain copies of one family (consumed: models[0] becomes the network and
    supplies the shared trunk). Returns it and the qualified names made per-member."""
    members = len(models)
    heads = dict(split_layers(models[0], in_shape, split_at))
    network = models[0]

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        if name not in heads:
            return None
        group = [m.get_submodule(name) for m in models]
        if isinstance(module, nn.Linear):
            layer = member.MemberLinear.from_modules(group)
        elif isinstance(module, plain.Conv):
            layer = member.MemberConv.from_modules(group)
        elif isinstance(module, NORM_TYPES):
            layer = member.MemberNorm.from_modules(group)
        else:
            return None
        return ExpandToMembers(layer, members, heads[name])

    replaced = replace_layers(network, swap)
    return network, replaced


def multihead_param_count(inventory: Inventory, members: int, head_layers: Sequence[str]) -> int:
    """Closed form: the trunk once, the per-member layers M times."""
    heads = set(head_layers)
    per_member = sum(x.numel for x in inventory.layers if x.name in heads)
    per_member += sum(2 * c for name, c in inventory.norms if name in heads)
    return inventory.total + (members - 1) * per_member
