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


def memory_order(x: torch.Tensor, dims: int | None = None) -> list[int]:
    """The first `dims` dims of `x` (default all), outermost in memory first (stable for equal strides)."""
    return sorted(range(x.dim() if dims is None else dims), key=lambda d: -x.stride(d))


def per_example(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, trailing: int) -> torch.Tensor:
    """Apply `fn` (an op on `[N, *rest]`, len(rest) = trailing) to `x = [*lead, *rest]`, all leading dims
    folded into N.

    The leading dims are folded in the order they lie in memory, so a permuted view folds without a copy:
    a member-batched conv hands on `[M, B, C, L]` as a view of a `[B, M, C, L]` tensor, and a plain
    reshape would copy it before and after every pooling layer. The result has `x`'s dim order.
    """
    lead = x.dim() - trailing
    order = memory_order(x, lead)
    permuted = x.permute(*order, *range(lead, x.dim()))
    y = fn(permuted.reshape(-1, *permuted.shape[lead:]))
    y = y.reshape(*permuted.shape[:lead], *y.shape[1:])
    inverse = sorted(range(lead), key=order.__getitem__)
    return y.permute(*inverse, *range(lead, y.dim()))


class _PairMax(torch.autograd.Function):
    """1-D max pooling with kernel 2 and stride 2 over the last dim, as F.max_pool1d computes it (the first
    of two equal values wins; an odd last element is dropped), from two element-wise passes.

    F.max_pool1d runs through max_pool2d_with_indices, which on CPU costs ~3× as much forward and backward
    (benchmarks/results/member_batched.md); on a member-batched 1-D CNN it was the largest single kernel.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = x.shape[-1] // 2
        pairs = x[..., : 2 * half].unflatten(-1, (half, 2)).movedim(-1, 0).contiguous()  # [2, ..., half]
        return torch.maximum(pairs[0], pairs[1]), pairs[0] >= pairs[1]

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        ctx.length = inputs[0].shape[-1]
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        (first,) = ctx.saved_tensors
        out = grad.new_zeros(*grad.shape[:-1], ctx.length) if ctx.length % 2 else \
            grad.new_empty(*grad.shape[:-1], ctx.length)
        pairs = out[..., : 2 * grad.shape[-1]].unflatten(-1, (grad.shape[-1], 2))
        pairs[..., 0] = grad * first
        pairs[..., 1] = grad - pairs[..., 0]
        return out


class _StridedPairMax(torch.autograd.Function):
    """The same pooling for inputs whose last dim is not the innermost in memory (channels-last activations,
    `[..., C, L]` stored with C innermost): the two halves of each pair are read as strided views, so every
    element-wise pass runs along the contiguous channels and nothing is copied into another layout; the
    output, and the gradient, keep the input's layout."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = x.shape[-1] // 2
        first, second = x[..., 0 : 2 * half : 2], x[..., 1 : 2 * half : 2]
        return torch.maximum(first, second), first >= second

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        ctx.shape, ctx.strides = inputs[0].shape, inputs[0].stride()
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        (first,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # a differentiable backward (create_graph, torch.func): no out= writes
            pairs = torch.stack((grad * first, grad * ~first), dim=-1).flatten(-2)
            return F.pad(pairs, (0, ctx.shape[-1] % 2))
        out = grad.new_empty_strided(ctx.shape, ctx.strides)
        if ctx.shape[-1] % 2:
            out[..., -1] = 0
        half = grad.shape[-1]
        to_first, to_second = out[..., 0 : 2 * half : 2], out[..., 1 : 2 * half : 2]
        torch.mul(grad, first, out=to_first)  # written in place: the gradient keeps the input's layout
        torch.sub(grad, to_first, out=to_second)
        return out


def _dense(x: torch.Tensor) -> bool:
    """Whether `x` covers its storage span exactly (a permutation of a contiguous tensor), so its strides can
    be reused for a gradient buffer of the same layout."""
    return x.permute(*memory_order(x)).is_contiguous()


def max_pool(x: torch.Tensor, spatial_dims: int, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    if spatial_dims == 1 and kernel_size == 2 and stride in (None, 2) and x.shape[-1] >= 2:
        if x.stride(-1) != 1 and _dense(x):
            return _StridedPairMax.apply(x)[0]
        # folded in memory order like every pooling here, so the output (and, backwards, the gradient) keeps
        # the input's layout: element-wise kernels on operands of mixed layouts run several times slower
        return per_example(lambda folded: _PairMax.apply(folded)[0], x, spatial_dims + 1)
    pool = F.max_pool1d if spatial_dims == 1 else F.max_pool2d
    return per_example(lambda folded: pool(folded, kernel_size, stride), x, spatial_dims + 1)


def avg_pool(x: torch.Tensor, spatial_dims: int, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    pool = F.avg_pool1d if spatial_dims == 1 else F.avg_pool2d
    return per_example(lambda folded: pool(folded, kernel_size, stride), x, spatial_dims + 1)
