"""BatchEnsemble layers (Wen et al. 2020): one shared weight W and rank-1 fast weights per member.

Member i uses W_i = W ∘ (r_i s_iᵀ), computed without forming W_i: y_i = r_i ∘ (W (s_i ∘ x_i)) + b_i.
Activations are member-batched, `[members, *batch, features]` or `[members, *batch, C, *spatial]`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ensplit.layers import plain

FAST_INITS = ("random_sign", "normal")


def init_fast_weights(tensor: torch.Tensor, how: str, generator: torch.Generator | None = None) -> None:
    """Fill r or s in place: "random_sign" (±1 with equal odds) or "normal" (N(1, 0.5²)), as in the paper."""
    with torch.no_grad():
        if how == "random_sign":
            signs = torch.randint(0, 2, tensor.shape, generator=generator, dtype=torch.int64) * 2 - 1
            tensor.copy_(signs.to(tensor.dtype))
        elif how == "normal":
            tensor.copy_(1.0 + 0.5 * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype))
        else:
            raise ValueError(f"fast-weight init must be one of {', '.join(FAST_INITS)}, got {how!r}")


def _member_view(v: torch.Tensor, x: torch.Tensor, trailing: int) -> torch.Tensor:
    """Broadcast `[M, C]` against `x = [M, *batch, C, *spatial]` (`trailing` = number of spatial dims)."""
    return v.view(v.shape[0], *([1] * (x.dim() - 2 - trailing)), v.shape[1], *([1] * trailing))


class _RankOneMembers(nn.Module):
    """What the linear and conv layers share: the shared weight, fast weights r [M, out] and s [M, in], and a
    per-member bias [M, out], all taken from a plain `base` layer whose weight is `[out, in, ...]`."""

    def _shared_and_fast(self, base: nn.Module, members: int, fast_init: str,
                         generator: torch.Generator | None) -> None:
        out_features, in_features = base.weight.shape[0], self._s_features(base)
        self.weight = base.weight
        self.r = nn.Parameter(torch.empty(members, out_features))
        self.s = nn.Parameter(torch.empty(members, in_features))
        init_fast_weights(self.r, fast_init, generator)
        init_fast_weights(self.s, fast_init, generator)
        self.bias = nn.Parameter(base.bias.detach().expand(members, -1).clone()) if base.bias is not None else None

    def _s_features(self, base: nn.Module) -> int:
        """Length of s: the full input width (input channels even for grouped convolutions)."""
        return getattr(base, "in_features", None) or base.in_channels

    def _copy_shared(self, layer: nn.Module):
        """Take `layer`'s weight as the shared weight and its bias as every member's bias."""
        with torch.no_grad():
            self.weight.copy_(layer.weight)
            if layer.bias is not None:
                self.bias.copy_(layer.bias.expand(self.members, -1))
        return self.to(layer.weight.device, layer.weight.dtype)


class BatchEnsembleLinear(_RankOneMembers):
    """Shared `weight [out, in]`; per member `r [M, out]`, `s [M, in]`, `bias [M, out]`."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True,
                 fast_init: str = "random_sign", generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self._shared_and_fast(nn.Linear(in_features, out_features, bias=bias), members, fast_init, generator)

    @classmethod
    def from_linear(cls, layer: nn.Linear, members: int, fast_init: str = "random_sign",
                    generator: torch.Generator | None = None) -> BatchEnsembleLinear:
        """Share `layer`'s weight; every member starts from its bias."""
        new = cls(members, layer.in_features, layer.out_features, layer.bias is not None, fast_init, generator)
        return new._copy_shared(layer)

    def member_weight(self, index: int) -> torch.Tensor:
        """W_i = W ∘ (r_i s_iᵀ), `[out, in]` (for tests and analyses)."""
        return self.weight * torch.outer(self.r[index], self.s[index])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x * _member_view(self.s, x, 0), self.weight) * _member_view(self.r, x, 0)
        return y if self.bias is None else y + _member_view(self.bias, x, 0)

    def extra_repr(self) -> str:
        return f"members={self.members}, {self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class BatchEnsembleConv(_RankOneMembers):
    """Shared conv weight `[out, in/groups, *k]`; per member `r [M, out]`, `s [M, in]`, `bias [M, out]`.

    s scales input channels and r output channels, so member i convolves with W ∘ (r_i s_iᵀ) broadcast
    over the kernel (also for grouped convolutions: s is indexed by the full input channel).
    """

    def __init__(self, members: int, dim: int, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True, groups: int = 1,
                 fast_init: str = "random_sign", generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.members, self.dim = members, dim
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.groups = kernel_size, stride, padding, groups
        base = plain.Conv(dim, in_channels, out_channels, kernel_size, stride, padding, bias, groups)
        self._shared_and_fast(base, members, fast_init, generator)

    @classmethod
    def from_conv(cls, layer: plain.Conv, members: int, fast_init: str = "random_sign",
                  generator: torch.Generator | None = None) -> BatchEnsembleConv:
        new = cls(members, layer.dim, layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                  layer.padding, layer.bias is not None, layer.groups, fast_init, generator)
        return new._copy_shared(layer)

    def member_weight(self, index: int) -> torch.Tensor:
        """W_i = W ∘ (r_i s_iᵀ) over `[out, in/groups, *k]` (s taken per group slice)."""
        s = self.s[index].view(self.groups, -1)  # [groups, in/groups]
        s = s.repeat_interleave(self.out_channels // self.groups, dim=0)  # [out, in/groups]
        scale = self.r[index].unsqueeze(1) * s
        return self.weight * scale.view(*scale.shape, *([1] * self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded, lead = plain.fold_leading(x * _member_view(self.s, x, self.dim), self.dim + 1)
        conv = F.conv1d if self.dim == 1 else F.conv2d
        y = conv(folded, self.weight, None, self.stride, self.padding, 1, self.groups)
        y = y.reshape(*lead, *y.shape[1:])
        y = y * _member_view(self.r, y, self.dim)
        return y if self.bias is None else y + _member_view(self.bias, y, self.dim)

    def extra_repr(self) -> str:
        return (f"members={self.members}, {self.dim}d, {self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, groups={self.groups}")
