"""Samplers of networks around one solution θ* (Fort et al. 2019, §4), on flat parameter vectors `[P]`.

Each sampler has one scale knob and states its mean and covariance exactly (`mean()`, `covariance(s)`),
so tests can check the samples against them:
- `DiagonalGaussian`: θ* + s·σ⊙z, σ² the per-weight variance of the trajectory's tail (SWAG-diagonal);
  covariance s²·diag(σ²).
- `LowRankGaussian`: θ* + s·F z, z ~ N(0, I_r); covariance s²·F Fᵀ. `from_tail`: F = the top-r principal
  directions of the tail's deviations, scaled by √eigenvalue (SWAG's low-rank part).
  `random_directions`: F = r random orthonormal directions scaled by ‖θ*‖/√r, so s is the expected
  relative displacement ‖θ − θ*‖/‖θ*‖.
- `DropoutSampler`: MC dropout as a weight-space sampler: one Bernoulli(1 − p) mask per hidden unit (the
  input units of every weight layer after the first), kept units scaled by 1/(1 − p); one mask per sampled
  network, fixed over the data, so a sample is one function. Scale s = p; mean θ*; covariance
  θ*_i θ*_j · p/(1 − p) for weights i, j reading the same unit, else 0.
"""

from __future__ import annotations

import torch
from torch import nn

from ensplit.layers import plain


class DiagonalGaussian:
    """θ* + s·σ⊙z, z ~ N(0, I)."""

    name = "diagonal Gaussian"
    default_scales = tuple(0.25 * 2 ** (i / 2) for i in range(16))

    def __init__(self, center: torch.Tensor, std: torch.Tensor) -> None:
        self.center, self.std = center.double(), std.double()

    @classmethod
    def from_tail(cls, center: torch.Tensor, tail: torch.Tensor) -> DiagonalGaussian:
        """σ = per-weight standard deviation of the tail checkpoints `[T, P]` (T ≥ 2)."""
        return cls(center, tail.double().std(0))

    def sample(self, scale: float, count: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(count, self.center.numel(), generator=generator, dtype=torch.float64)
        return self.center + scale * self.std * z

    def mean(self) -> torch.Tensor:
        return self.center

    def covariance(self, scale: float) -> torch.Tensor:
        return torch.diag(scale**2 * self.std**2)


class LowRankGaussian:
    """θ* + s·F z, z ~ N(0, I_r), F `[P, r]`."""

    default_scales = tuple(0.25 * 2 ** (i / 2) for i in range(16))

    def __init__(self, center: torch.Tensor, factor: torch.Tensor, name: str = "low-rank Gaussian") -> None:
        self.center, self.factor, self.name = center.double(), factor.double(), name

    @classmethod
    def from_tail(cls, center: torch.Tensor, tail: torch.Tensor, rank: int = 5) -> LowRankGaussian:
        """F = top-`rank` PCA directions of the tail checkpoints `[T, P]` times √(eigenvalue)."""
        deviations = tail.double() - tail.double().mean(0)
        _, singular, vh = torch.linalg.svd(deviations, full_matrices=False)
        r = min(rank, tail.shape[0] - 1)
        factor = vh[:r].T * (singular[:r] / (tail.shape[0] - 1) ** 0.5)
        return cls(center, factor)

    def sample(self, scale: float, count: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(count, self.factor.shape[1], generator=generator, dtype=torch.float64)
        return self.center + scale * z @ self.factor.T

    def mean(self) -> torch.Tensor:
        return self.center

    def covariance(self, scale: float) -> torch.Tensor:
        return scale**2 * self.factor @ self.factor.T


def random_directions(center: torch.Tensor, rank: int, generator: torch.Generator) -> LowRankGaussian:
    """A Gaussian in a random `rank`-dimensional subspace, scale = expected relative displacement."""
    gaussian = torch.randn(center.numel(), rank, generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(gaussian)
    sampler = LowRankGaussian(center, q * (center.double().norm() / rank**0.5), name="random directions")
    sampler.default_scales = tuple(0.005 * 2 ** (i / 2) for i in range(16))
    return sampler


def dropout_units(template: nn.Module) -> tuple[torch.Tensor, int]:
    """For each flat parameter, the hidden unit dropout removes it with (−1: never removed), and the count.

    A unit is an input feature (channel) of a linear (conv) layer other than the first one in module
    order, which reads the data itself.
    """
    owners = {}
    layers = [m for m in template.modules() if isinstance(m, (nn.Linear, plain.Conv))]
    for layer in layers[1:]:
        owners[id(layer.weight)] = layer.weight
    pieces, units = [], 0
    for param in template.parameters():
        if id(param) in owners:
            columns = param.shape[1]
            index = torch.arange(units, units + columns).view(1, columns, *([1] * (param.dim() - 2)))
            pieces.append(index.expand(param.shape).reshape(-1))
            units += columns
        else:
            pieces.append(torch.full((param.numel(),), -1, dtype=torch.long))
    return torch.cat(pieces), units


class DropoutSampler:
    """MC dropout in weight space (see the module docstring); scale = drop probability p."""

    name = "MC dropout"
    default_scales = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

    def __init__(self, center: torch.Tensor, unit_index: torch.Tensor, units: int) -> None:
        self.center, self.unit_index, self.units = center.double(), unit_index, units

    @classmethod
    def for_model(cls, center: torch.Tensor, template: nn.Module) -> DropoutSampler:
        return cls(center, *dropout_units(template))

    def sample(self, scale: float, count: int, generator: torch.Generator) -> torch.Tensor:
        if not 0.0 <= scale < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {scale}")
        keep = (torch.rand(count, self.units, generator=generator, dtype=torch.float64) >= scale).double()
        factor = torch.cat([keep / (1.0 - scale), torch.ones(count, 1, dtype=torch.float64)], dim=1)
        index = torch.where(self.unit_index >= 0, self.unit_index, self.units)  # the last column is "kept"
        return self.center * factor[:, index]

    def mean(self) -> torch.Tensor:
        return self.center

    def covariance(self, scale: float) -> torch.Tensor:
        same_unit = (self.unit_index.view(-1, 1) == self.unit_index.view(1, -1)) & (self.unit_index >= 0)
        return same_unit.double() * torch.outer(self.center, self.center) * scale / (1.0 - scale)


Sampler = DiagonalGaussian | LowRankGaussian | DropoutSampler
