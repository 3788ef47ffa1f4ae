"""MixtureEnsembles layers (the MixtureEnsembles paper, eq. 2): member i's layer weight is θ_{j,i} = Σ_l α_{l,i} T_l.

Templates come from a bank shared by all members (and by all layers of a parameter group):
- `TemplateBank`: a parameter group of equal-shaped layers, `templates [t, *weight_shape]`;
- `FlatBank`: the single-group case, one flat vector; a layer's template is a circular slice of it,
  reshaped to the layer (Plummer et al.), so any layer can draw on any part of the bank.
Each member has its own α and bias; the layer runs member-batched on `[M, *batch, ...]`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ensplit.layers.member_functional import member_conv, member_linear


class TemplateBank(nn.Module):
    """`templates [t, *shape]`, initialised N(0, std²) (std: the layer's ordinary init scale)."""

    def __init__(self, count: int, shape: Sequence[int], std: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.templates = nn.Parameter(torch.randn(count, *self.shape, generator=generator) * std)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 - nn.Module's signature
        """As nn.Module's, but 5-d templates (a 2-d conv's `[t, out, in, kh, kw]`) go through `fn` flat.

        `Module.to(memory_format=torch.channels_last)`, which training with `channels_last` calls, converts
        every 4- and 5-d tensor and refuses a 5-d one; a bank has no memory layout of its own to convert
        (its layers gather and mix templates into fresh weights), so only device and dtype apply.
        """
        return super()._apply(lambda t: fn(t.flatten(1)).view(t.shape) if t.dim() == 5 else fn(t), recurse)

    def gather(self, assignment: Sequence[Sequence[int]], shape: Sequence[int]) -> torch.Tensor:
        """Templates `[M', c, *shape]` for template ids `assignment [M'][c]`."""
        ids = torch.as_tensor(assignment, device=self.templates.device)
        return self.templates[ids]

    def extra_repr(self) -> str:
        return f"templates={self.templates.shape[0]}, shape={self.shape}"


class FlatBank(nn.Module):
    """One flat parameter vector `bank [size]`; template (start, shape) is `bank[start : start + numel]`
    read circularly and reshaped."""

    def __init__(self, size: int, std: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.bank = nn.Parameter(torch.randn(size, generator=generator) * std)

    def gather(self, assignment: Sequence[Sequence[int]], shape: Sequence[int]) -> torch.Tensor:
        size, numel = self.bank.numel(), math.prod(shape)
        reps = (max(s % size for row in assignment for s in row) + numel + size - 1) // size
        extended = self.bank.repeat(reps) if reps > 1 else self.bank
        rows = [torch.stack([extended[s % size : s % size + numel] for s in row]) for row in assignment]
        return torch.stack(rows).view(len(assignment), len(assignment[0]), *shape)

    def extra_repr(self) -> str:
        return f"size={self.bank.numel()}"


class MixtureLayer(nn.Module):
    """A linear (`dim = 0`) or conv (`dim` = 1, 2) layer whose member weights mix bank templates.

    assignment: template ids (TemplateBank) or starts (FlatBank), one row per member, or one row shared
    by all members. alpha `[M, c]`, bias `[M, out]`.
    """

    def __init__(self, bank: TemplateBank | FlatBank, members: int, weight_shape: Sequence[int],
                 assignment: Sequence[Sequence[int]], bias: bool, dim: int = 0, stride: int = 1,
                 padding: int = 0, groups: int = 1, alpha_std: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if len(assignment) not in (1, members):
            raise ValueError("assignment needs one row, or one row per member")
        self.bank, self.members, self.weight_shape = bank, members, tuple(weight_shape)
        self.assignment = [list(row) for row in assignment]
        self.dim, self.stride, self.padding, self.groups = dim, stride, padding, groups
        c = len(self.assignment[0])
        self.alpha = nn.Parameter(torch.randn(members, c, generator=generator) * alpha_std)
        self.bias = nn.Parameter(torch.zeros(members, weight_shape[0])) if bias else None

    def templates(self) -> torch.Tensor:
        """The templates this layer combines, `[M' (1 or M), c, *weight_shape]`."""
        return self.bank.gather(self.assignment, self.weight_shape)

    def member_weights(self) -> torch.Tensor:
        """θ_{j,i} = Σ_l α_{l,i} T_l for every member: `[M, *weight_shape]` (MixtureEnsembles, eq. 2)."""
        t = self.templates().flatten(2)  # [M', c, p]
        if t.shape[0] == 1:
            w = self.alpha @ t[0]
        else:
            w = torch.einsum("mc,mcp->mp", self.alpha, t)
        return w.view(self.members, *self.weight_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.member_weights()
        if self.dim == 0:
            return member_linear(x, w, self.bias)
        return member_conv(x, w, self.bias, self.dim, self.stride, self.padding, self.groups)

    def extra_repr(self) -> str:
        kind = "linear" if self.dim == 0 else f"conv{self.dim}d"
        return (f"{kind}, members={self.members}, shape={self.weight_shape}, "
                f"templates_per_layer={len(self.assignment[0])}, shared_assignment={len(self.assignment) == 1}")
