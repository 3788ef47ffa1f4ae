"""A linear layer followed by its ReLU, with the ReLU done in place where that is safe and saves memory."""

from __future__ import annotations

import torch
from torch import nn


def linear_relu(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`relu(layer(x))` for a linear layer of any `LayerSet`, overwriting the layer's output when it may.

    A layer with a `forward_relu` method (`MemberLinear`) rectifies its own product before viewing it.
    Otherwise a fresh output (not a view: `nn.Linear` on a batch of rows, whose `addmm` saves its inputs but
    not its output) is rectified in place, like `nn.ReLU(inplace=True)`: no second activation buffer per
    layer and step. Any other output gets the ordinary out-of-place ReLU.
    """
    fused = getattr(layer, "forward_relu", None)
    if fused is not None:
        return fused(x)
    y = layer(x)
    return torch.relu_(y) if y._base is None and y is not x else torch.relu(y)
