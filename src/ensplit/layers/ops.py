"""Shape-agnostic pooling and flattening: they accept any leading dimensions (batch, members...)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def flatten_features(x: torch.Tensor, feature_dims: int) -> torch.Tensor:
    """Flatten the last `feature_dims` dimensions into one."""
    return x.flatten(start_dim=x.dim() - feature_dims)


def global_avg_pool(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Mean over the last `spatial_dims` dimensions: `[..., C, *spatial] -> [..., C]`."""
    return x.mean(dim=tuple(range(-spatial_dims, 0)))


def per_example(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, trailing: int) -> torch.Tensor:
    """Apply `fn` (an op on `[N, *rest]`, len(rest) = trailing) to `x = [*lead, *rest]`, all leading dims
    folded into N.

    The leading dims are folded in the order they lie in memory, so a permuted view folds without a copy:
    a member-batched conv hands on `[M, B, C, L]` as a view of a `[B, M, C, L]` tensor, and a plain
    reshape would copy it before and after every pooling layer. The result has `x`'s dim order.
    """
    lead = x.dim() - trailing
    order = sorted(range(lead), key=lambda d: -x.stride(d))  # outermost in memory first (stable for ties)
    permuted = x.permute(*order, *range(lead, x.dim()))
    y = fn(permuted.reshape(-1, *permuted.shape[lead:]))
    y = y.reshape(*permuted.shape[:lead], *y.shape[1:])
    inverse = sorted(range(lead), key=order.__getitem__)
    return y.permute(*inverse, *range(lead, y.dim()))


def max_pool(x: torch.Tensor, spatial_dims: int, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    pool = F.max_pool1d if spatial_dims == 1 else F.max_pool2d
    return per_example(lambda folded: pool(folded, kernel_size, stride), x, spatial_dims + 1)


def avg_pool(x: torch.Tensor, spatial_dims: int, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    pool = F.avg_pool1d if spatial_dims == 1 else F.avg_pool2d
    return per_example(lambda folded: pool(folded, kernel_size, stride), x, spatial_dims + 1)
