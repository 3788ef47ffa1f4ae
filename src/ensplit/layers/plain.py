"""Ordinary layers that accept any number of leading dimensions (folded into the batch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fold_leading(x: torch.Tensor, trailing: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Reshape `[*lead, *rest]` (len(rest) = trailing) to `[prod(lead), *rest]`; return the lead shape."""
    lead = tuple(x.shape[: x.dim() - trailing])
    return x.reshape(-1, *x.shape[x.dim() - trailing :]), lead


class Conv(nn.Module):
    """A 1-D or 2-D convolution on `[..., C, *spatial]`; parameters named like `nn.ConvNd`."""

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(f"conv dim must be 1 or 2, got {dim}")
        cls = nn.Conv1d if dim == 1 else nn.Conv2d
        template = cls(in_channels, out_channels, kernel_size, stride, padding, bias=bias, groups=groups)
        self.dim = dim
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.groups = kernel_size, stride, padding, groups
        self.weight = template.weight
        self.bias = template.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded, lead = fold_leading(x, self.dim + 1)
        conv = F.conv1d if self.dim == 1 else F.conv2d
        y = conv(folded, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        return y.reshape(*lead, *y.shape[1:])

    def extra_repr(self) -> str:
        return (
            f"{self.dim}d, {self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups}, bias={self.bias is not None}"
        )


class Norm(nn.BatchNorm1d):
    """Batch norm over `[..., C, *spatial]` with `dim` spatial dimensions (0 for plain features)."""

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__(channels)
        self.dim = dim

    def _check_input_dim(self, input: torch.Tensor) -> None:  # any rank after folding
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded, lead = fold_leading(x, self.dim + 1)
        return super().forward(folded).reshape(*lead, *folded.shape[1:])


class Dropout(nn.Module):
    """Dropout whose masks come from the global RNG unless a generator is set (`self.generator`).

    Member-batched training gives each member its own generator, so a member's masks do not depend on
    which other members share its batch.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        # draw on the generator's own device (CPU generators stay valid for CUDA activations)
        device = self.generator.device if self.generator is not None else x.device
        keep = (torch.rand(x.shape, generator=self.generator, device=device, dtype=x.dtype) >= self.p).to(x.device)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
