"""Shape-agnostic pooling and flattening: they accept any leading dimensions (batch, members...)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ensplit.layers.plain import fold_leading


def flatten_features(x: torch.Tensor, feature_dims: int) -> torch.Tensor:
    """Flatten the last `feature_dims` dimensions into one."""
    return x.flatten(start_dim=x.dim() - feature_dims)


def global_avg_pool(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Mean over the last `spatial_dims` dimensions: `[..., C, *spatial] -> [..., C]`."""
    return x.mean(dim=tuple(range(-spatial_dims, 0)))


def max_pool(x: torch.Tensor, spatial_dims: int, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    folded, lead = fold_leading(x, spatial_dims + 1)
    pool = F.max_pool1d if spatial_dims == 1 else F.max_pool2d
    y = pool(folded, kernel_size, stride)
    return y.reshape(*lead, *y.shape[1:])


def avg_pool(x: torch.Tensor, spatial_dims: int, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    folded, lead = fold_leading(x, spatial_dims + 1)
    pool = F.avg_pool1d if spatial_dims == 1 else F.avg_pool2d
    y = pool(folded, kernel_size, stride)
    return y.reshape(*lead, *y.shape[1:])
