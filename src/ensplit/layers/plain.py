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


def generator_on(generator: torch.Generator | None, device: torch.device,
                 cache: dict[str, torch.Generator]) -> torch.Generator | None:
    """The generator to draw masks on `device` with: `generator` itself if it lives there; otherwise one
    generator on `device`, seeded once from `generator` and kept in `cache`.

    Members carry CPU generators (seeded from their own seeds). On a GPU, drawing masks on the CPU and
    copying them over would cost a host-to-device copy, and a sync, per layer and step; a device generator
    keeps the draws on the device and stays reproducible from the member's seed.
    """
    if generator is None or generator.device == device:
        return generator
    key = str(device)
    if key not in cache:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        cache[key] = torch.Generator(device=device).manual_seed(seed)
    return cache[key]


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
        self.device_generators: dict[str, torch.Generator] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        generator = generator_on(self.generator, x.device, self.device_generators)
        keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
