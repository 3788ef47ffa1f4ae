"""Empirical neural tangent kernels and NTK-parameterised collegial networks (Littwin et al. 2020).

NTK parameterisation: every weight is drawn from N(0, 1) and multiplied at forward time by
gain / √fan_in (eq. 3 of the seed: gain √2 before a ReLU, 1 at the readout). A collegial ensemble of m
paths of width n aggregates F_e(x) = (1/√m) Σ_j F(x; θ_j) (eq. 4); its NTK is K_e = (1/m) Σ_j K(θ_j).
Paths are implemented as block-diagonal linear layers and grouped convolutions, so one module holds all
m paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

RELU_GAIN = math.sqrt(2.0)


class NTKLinear(nn.Module):
    """Block-diagonal linear map in NTK parameterisation on [..., paths·in] -> [..., paths·out].

    y_j = gain/√in · W_j x_j for each path j, W_j ∈ R^{out×in} standard normal; fan-in is `in`.
    """

    def __init__(self, in_features: int, out_features: int, paths: int = 1, gain: float = RELU_GAIN) -> None:
        super().__init__()
        self.in_features, self.out_features, self.paths, self.gain = in_features, out_features, paths, gain
        self.weight = nn.Parameter(torch.randn(paths, out_features, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.reshape(*x.shape[:-1], self.paths, self.in_features)
        y = torch.einsum("...pi,poi->...po", xs, self.weight) * (self.gain / math.sqrt(self.in_features))
        return y.reshape(*x.shape[:-1], self.paths * self.out_features)


class NTKConv2d(nn.Module):
    """Grouped 2-d convolution in NTK parameterisation ('same' padding, no bias).

    Weight [out, in/groups, k, k] standard normal, scaled by gain/√fan_in with fan_in = (in/groups)·k².
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int = 1,
                 gain: float = RELU_GAIN) -> None:
        super().__init__()
        self.groups, self.padding, self.gain = groups, kernel_size // 2, gain
        self.fan_in = (in_channels // groups) * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, kernel_size, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * (self.gain / math.sqrt(self.fan_in))
        return F.conv2d(x, w, padding=self.padding, groups=self.groups)


class CollegialMLP(nn.Module):
    """m fully connected ReLU paths of `hidden_layers` layers of width n, aggregated by (1/√m) Σ_j.

    Input [batch, input_dim] -> output [batch, outputs]; with aggregate=False the m path outputs
    [batch, m·outputs] (independent networks). No biases. Fan-ins: input_dim, n, ..., n.
    """

    def __init__(self, input_dim: int, width: int, hidden_layers: int, outputs: int = 1, paths: int = 1,
                 aggregate: bool = True) -> None:
        super().__init__()
        self.paths, self.outputs, self.aggregate = paths, outputs, aggregate
        layers: list[nn.Module] = [NTKLinear(input_dim, paths * width)]  # shared input: one dense map
        layers += [NTKLinear(width, width, paths) for _ in range(hidden_layers - 1)]
        self.hidden = nn.ModuleList(layers)
        self.readout = NTKLinear(width, outputs, paths, gain=1.0)

    def path_fan_ins(self) -> list[int]:
        """Per-path fan-ins (input_dim, n, ..., n) of the layers entering Σ_l 1/fan_in_l (readout included)."""
        return [layer.in_features for layer in self.hidden] + [self.readout.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.relu(layer(x))
        y = self.readout(x)
        if not self.aggregate:
            return y
        return y.reshape(*x.shape[:-1], self.paths, self.outputs).sum(-2) / math.sqrt(self.paths)


class CollegialBottleneck(nn.Module):
    """A ResNeXt bottleneck block as m collegial paths (Littwin et al. Fig. 5), NTK parameterisation.

    Path j: 1×1 C->n, ReLU, 3×3 n->n, ReLU, 1×1 n->C (fan-ins C, 9n, n); out = x + (1/√m) Σ_j path_j(x).
    Input and output [batch, C, H, W] (with aggregate=False: [batch, m·C, H, W], the m blocks side by side,
    each with its own residual). The aggregation (1/√m) Σ_j equals one dense 1×1 conv over the m·n
    concatenated channels with fan-in m·n, which is how ResNeXt implements it.
    """

    def __init__(self, channels: int = 256, width: int = 4, paths: int = 1, aggregate: bool = True) -> None:
        super().__init__()
        self.paths, self.width, self.aggregate = paths, width, aggregate
        self.reduce = NTKConv2d(channels, paths * width, 1)
        self.spatial = NTKConv2d(paths * width, paths * width, 3, groups=paths)
        if aggregate:  # gain 1/√(fan-in m·n) = (1/√n per path) · (1/√m aggregation)
            self.expand = NTKConv2d(paths * width, channels, 1, gain=1.0)
        else:  # m independent blocks side by side: [batch, m·C, H, W]
            self.expand = NTKConv2d(paths * width, paths * channels, 1, groups=paths, gain=1.0)

    def path_fan_ins(self) -> list[int]:
        """Per-path fan-ins (C, 9n, n) entering Σ_l 1/fan_in_l."""
        return [self.reduce.fan_in, self.spatial.fan_in, self.width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(torch.relu(self.spatial(torch.relu(self.reduce(x)))))
        if not self.aggregate:  # each path's own residual output
            return y + x.repeat(1, self.paths, 1, 1)
        return x + y


def _scalar_fn(module: nn.Module, readout: Callable[[torch.Tensor], torch.Tensor] | None):
    """(params, x) -> scalar, with x one unbatched input."""
    def f(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = functional_call(module, params, (x.unsqueeze(0),))
        return out.sum() if readout is None else readout(out)
    return f


def ntk_diagonal(module: nn.Module, inputs: torch.Tensor,
                 readout: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Θ(x, x) = ||∇_θ f(x)||² for each x in `inputs` [N, ...] -> [N].

    f is the scalar readout of module(x[None]) (default: the sum of its outputs). Batched with vmap(grad).
    """
    params = {k: p.detach() for k, p in module.named_parameters()}
    grads = vmap(grad(_scalar_fn(module, readout)), in_dims=(None, 0))(params, inputs)
    return sum(g.flatten(1).pow(2).sum(1) for g in grads.values())


def ntk_matrix(module: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None,
               readout: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Empirical NTK K(x, x') = ∇_θ f(x) · ∇_θ f(x') for x1 [N, ...], x2 [M, ...] -> [N, M]."""
    params = {k: p.detach() for k, p in module.named_parameters()}
    per_example = vmap(grad(_scalar_fn(module, readout)), in_dims=(None, 0))
    g1 = per_example(params, x1)
    g2 = g1 if x2 is None else per_example(params, x2)
    return sum(g1[k].flatten(1) @ g2[k].flatten(1).T for k in g1)


def path_ntk_diagonal(module: CollegialMLP | CollegialBottleneck, x: torch.Tensor) -> torch.Tensor:
    """Θ_j(x, x) = ||∇_{θ_j} f_j(x)||² of each path j of a non-aggregated module at one input x -> [paths].

    With aggregate=False the paths are m independent networks, so one backward of Σ_j f_j (f_j the sum of
    path j's outputs) gives every path's gradient; every parameter is laid out path-major, so reshaping it
    to [paths, -1] splits it by path. This is how the Monte Carlo draws many initialisations at once.
    """
    if module.aggregate:
        raise ValueError("path_ntk_diagonal needs a module built with aggregate=False")
    params = [p for p in module.parameters()]
    grads = torch.autograd.grad(module(x.unsqueeze(0)).sum(), params)
    return sum(g.reshape(module.paths, -1).pow(2).sum(1) for g in grads)


def path_ntk_matrix(module: CollegialMLP | CollegialBottleneck, x1: torch.Tensor, x2: torch.Tensor
                    ) -> torch.Tensor:
    """K_j(x, x') = ∇_{θ_j} f_j(x) · ∇_{θ_j} f_j(x') of every path j of a non-aggregated module.

    x1 [N, ...], x2 [M, ...] -> [paths, N, M]; per-input gradients of Σ_j f_j with vmap(grad).
    """
    if module.aggregate:
        raise ValueError("path_ntk_matrix needs a module built with aggregate=False")
    params = {k: p.detach() for k, p in module.named_parameters()}
    per_example = vmap(grad(_scalar_fn(module, None)), in_dims=(None, 0))
    g1, g2 = per_example(params, x1), per_example(params, x2)
    paths = module.paths
    return sum(torch.einsum("npk,mpk->pnm", g1[k].reshape(len(x1), paths, -1), g2[k].reshape(len(x2), paths, -1))
               for k in g1)
