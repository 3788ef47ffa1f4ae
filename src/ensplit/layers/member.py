"""Member-batched layers: M independent members held as one weight tensor with a members axis.

Activations are `[members, batch, ...]`. A layer of M members computes exactly what M separate plain
layers compute on their own slices; `from_modules` builds one from M plain layers (same parameters),
which is how a deep ensemble inherits each member's own seeded initialisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ensplit.layers import plain
from ensplit.layers.conv_strategy import choose_strategy

STRATEGIES = ("auto", "grouped", "loop", "im2col", "grouped_nhwc")
ONE_D_STRATEGIES = ("im2col", "grouped_nhwc")  # strategies MemberConv implements for 1-d convs only


def is_channels_last(weight: torch.Tensor) -> bool:
    """Whether a 2-d conv weight `[out, in, kh, kw]` is laid out channels-last (NHWC).

    Compares strides, not `is_contiguous(memory_format=torch.channels_last)`: that is also true of
    ordinary NCHW weights whose size-1 dims make the two layouts coincide (1×1 kernels, one input
    channel per group), which would switch those convs to NHWC in a model never converted.
    """
    if weight.dim() != 4:
        return False
    _, c, h, w = weight.shape
    return weight.stride() == (h * w * c, 1, w * c, c)


class MemberLinear(nn.Module):
    """M linear maps, `y[m] = x[m] @ W[m]^T + b[m]`, computed with one `baddbmm` over the members axis."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members, out_features)) if bias else None
        for m in range(members):  # the same distribution as nn.Linear, member by member
            template = nn.Linear(in_features, out_features, bias=bias)
            with torch.no_grad():
                self.weight[m].copy_(template.weight)
                if bias:
                    self.bias[m].copy_(template.bias)

    @classmethod
    def from_modules(cls, modules: Sequence[nn.Linear]) -> MemberLinear:
        first = modules[0]
        layer = cls(len(modules), first.in_features, first.out_features, first.bias is not None)
        with torch.no_grad():
            layer.weight.copy_(torch.stack([m.weight for m in modules]))
            if layer.bias is not None:
                layer.bias.copy_(torch.stack([m.bias for m in modules]))
        return layer.to(first.weight.device, first.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._rows(self._feature_major(x), x)

    def forward_relu(self, x: torch.Tensor) -> torch.Tensor:
        """`relu(self(x))`, rectified in place on the product before it is viewed as rows.

        The product is a fresh tensor that `baddbmm` does not save for its backward, so the ReLU may
        overwrite it: one activation buffer fewer per layer and step (3-5% of an MLP ensemble's CPU step,
        benchmarks/results/member_batched.md). Done on the transposed view instead, the in-place ReLU
        would cost autograd a view replay and measured slower than the out-of-place one.
        """
        return self._rows(self._feature_major(x).relu_(), x)

    def _feature_major(self, x: torch.Tensor) -> torch.Tensor:
        """`y^T = W x^T + b` as `[M, out, rows]`.

        Feature-major, the weight gradient comes out of the backward bmm in the weight's own
        `[M, out, in]` layout. The row-major form (x W^T) leaves it transposed and costs a strided
        `[M, out, in]` copy per layer and step (10-15% of an MLP step on CPU; see
        benchmarks/results/member_batched.md). (Storing the weight `[M, in, out]` to get a contiguous
        output instead measured 0.99-1.14× this step time, so it was not kept.) `[M, B, in]` inputs (the
        usual case) skip the reshape: fewer ops and autograd nodes per layer, which a small MLP's step
        notices.
        """
        flat = x if x.dim() == 3 else x.reshape(self.members, -1, self.in_features)
        flat_t = flat.transpose(1, 2)  # [M, in, rows]
        if self.bias is None:
            return torch.bmm(self.weight, flat_t)
        return torch.baddbmm(self.bias.unsqueeze(2), self.weight, flat_t)

    def _rows(self, y_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The `[M, out, rows]` product as `x`'s shape with `out` features: a transposed view, which the next
        layer reads without a copy."""
        y = y_t.transpose(1, 2)
        return y if x.dim() == 3 else y.reshape(self.members, *x.shape[1:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"members={self.members}, {self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class MemberConv(nn.Module):
    """M convolutions run as one grouped convolution (groups = M × groups per member) or one by one.

    The weight is stored `[M·out, in/groups, *kernel]`, the layout the grouped convolution reads, so no
    copy is made per step. strategy: "grouped", "loop" (members one by one), for 1-d convs also "im2col"
    (unfolded input and small matrix products batched over examples and members; groups = 1 only)
    and "grouped_nhwc" (the grouped convolution run channels-last as a 2-d one), or "auto" (the default):
    per input shape and device type, the choice of `ensplit.layers.conv_strategy.choose_strategy`.
    """

    def __init__(self, members: int, dim: int, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True, groups: int = 1,
                 strategy: str = "auto") -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown conv strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        if strategy in ONE_D_STRATEGIES and (dim != 1 or (strategy == "im2col" and groups != 1)):
            raise ValueError(f"conv strategy {strategy!r} is for 1-d convs" + (" with groups=1" * (dim == 1)))
        self.members, self.dim = members, dim
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.groups = kernel_size, stride, padding, groups
        self.strategy = strategy
        self._auto_choices: dict[tuple[str, tuple[int, ...]], str] = {}  # (device type, spatial shape) -> choice
        templates = [plain.Conv(dim, in_channels, out_channels, kernel_size, stride, padding, bias, groups)
                     for _ in range(members)]
        self.weight = nn.Parameter(torch.cat([t.weight.detach() for t in templates]))
        self.bias = nn.Parameter(torch.cat([t.bias.detach() for t in templates])) if bias else None

    @classmethod
    def from_modules(cls, modules: Sequence[plain.Conv], strategy: str = "auto") -> MemberConv:
        f = modules[0]
        layer = cls(len(modules), f.dim, f.in_channels, f.out_channels, f.kernel_size, f.stride, f.padding,
                    f.bias is not None, f.groups, strategy)
        with torch.no_grad():
            layer.weight.copy_(torch.cat([m.weight for m in modules]))
            if layer.bias is not None:
                layer.bias.copy_(torch.cat([m.bias for m in modules]))
        return layer.to(f.weight.device, f.weight.dtype)

    def resolved_strategy(self, x: torch.Tensor) -> str:
        """"grouped" or "loop" for input `x` (`[..., C, *spatial]`): "auto" asks the measured table once per
        device type and spatial shape; non-square images count as the square of the same area."""
        if self.strategy != "auto":
            return self.strategy
        shape = tuple(x.shape[x.dim() - self.dim :])
        key = (x.device.type, shape)
        choice = self._auto_choices.get(key)
        if choice is None:
            size = max(1, round(math.prod(shape) ** (1 / self.dim)))
            choice = choose_strategy(x.device.type, self.dim, self.members, self.in_channels, size,
                                     self.out_channels)
            if choice in ONE_D_STRATEGIES and (self.dim != 1 or (choice == "im2col" and self.groups != 1)):
                choice = "grouped"
            self._auto_choices[key] = choice
        return choice

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int):
        conv = F.conv1d if self.dim == 1 else F.conv2d
        return conv(x, weight, bias, self.stride, self.padding, 1, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [M, *batch, C, *spatial]
        m, spatial = self.members, self.dim
        batch_shape = x.shape[1 : x.dim() - spatial - 1]
        x = x.reshape(m, -1, *x.shape[x.dim() - spatial - 1 :])  # [M, B, C, *S]
        strategy = self.resolved_strategy(x)
        if strategy == "im2col":
            y = member_conv1d_im2col(x, self.weight.view(m, self.out_channels, -1), self.bias, self.kernel_size,
                                     self.stride, self.padding)
        elif strategy == "grouped_nhwc":
            y = _grouped_conv1d_nhwc(x, self.weight, self.bias, m * self.groups, self.stride, self.padding)
        elif strategy == "loop":
            w = self.weight.view(m, self.out_channels, *self.weight.shape[1:])
            b = self.bias.view(m, -1) if self.bias is not None else None
            y = torch.stack([self._conv(x[i], w[i], None if b is None else b[i], self.groups)
                             for i in range(m)])
        else:
            b_size = x.shape[1]
            if is_channels_last(self.weight):
                # pack [M, B, C, H, W] as [B, H, W, M·C] (NHWC) so the grouped conv runs channels-last: a view
                # when x comes from a channels-last grouped MemberConv or a MemberNorm after one, else one copy
                # (the reshape copies unless it can view; then only an NCHW-packed view is left to convert)
                packed = x.permute(1, 3, 4, 0, 2).reshape(b_size, *x.shape[3:], m * self.in_channels)
                packed = packed.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            else:
                packed = x.transpose(0, 1).reshape(b_size, m * self.in_channels, *x.shape[3:])
            y = self._conv(packed, self.weight, self.bias, m * self.groups)
            y = y.view(b_size, m, self.out_channels, *y.shape[2:]).transpose(0, 1)
        return y.reshape(m, *batch_shape, *y.shape[2:])

    def extra_repr(self) -> str:
        return (f"members={self.members}, {self.dim}d, {self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"groups={self.groups}, strategy={self.strategy}")


class _MemberIm2col(torch.autograd.Function):
    """y[b, m] = W[m] · unfold(x[m, b]) + bias[m]: the members' 1-d convolutions (groups = 1) as small matrix
    products batched over (example, member), `[out, C·k] @ [C·k, L_out]` each, so the result comes out laid
    out `[B, M, out, L_out]`, the grouped conv's layout (no transposing copy of the largest activation). The
    backward is written out (batched products and k shifted adds), so autograd keeps no unfold graph."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel: int, stride: int,
                padding: int) -> tuple[torch.Tensor, torch.Tensor]:
        m, b, c, length = x.shape
        padded = F.pad(x, (padding, padding))
        out_length = (length + 2 * padding - kernel) // stride + 1
        s_m, s_b, s_c, s_l = padded.stride()
        cols = padded.as_strided((b, m, c, kernel, out_length), (s_b, s_m, s_c, s_l, s_l * stride))
        cols = cols.reshape(b, m, c * kernel, out_length)  # the im2col copy
        y = torch.matmul(weight, cols)  # [B, M, out, L_out]
        if bias is not None:
            y += bias.view(m, -1, 1)
        return y.transpose(0, 1), cols

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: tuple) -> None:
        x, weight, bias, kernel, stride, padding = inputs
        ctx.save_for_backward(weight, output[1])
        ctx.mark_non_differentiable(output[1])
        ctx.geometry = (x.shape, kernel, stride, padding, bias is not None)

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _: torch.Tensor):
        weight, cols = ctx.saved_tensors
        (m, b, c, length), kernel, stride, padding, has_bias = ctx.geometry
        g = grad.transpose(0, 1)  # [B, M, out, L_out]
        grad_weight = torch.matmul(g, cols.transpose(2, 3)).sum(0) if ctx.needs_input_grad[1] else None
        grad_bias = g.sum((0, 3)).view(-1) if has_bias and ctx.needs_input_grad[2] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_cols = torch.matmul(weight.transpose(1, 2), g).view(b, m, c, kernel, -1)
            padded = grad.new_zeros(b, m, c, length + 2 * padding)
            span = stride * (g.shape[-1] - 1) + 1
            for t in range(kernel):  # col2im: every kernel tap adds its shifted slice back
                padded[..., t : t + span : stride] += grad_cols[:, :, :, t]
            grad_x = padded[..., padding : padding + length].transpose(0, 1)
        return grad_x, grad_weight, grad_bias, None, None, None


def member_conv1d_im2col(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel: int,
                         stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Members' 1-d convolutions by im2col and batched matrix products: x `[M, B, C, L]`, weight
    `[M, out, C·k]`, bias `[M·out]` -> `[M, B, out, L_out]` (a transposed view of `[B, M, out, L_out]`)."""
    return _MemberIm2col.apply(x, weight, bias, kernel, stride, padding)[0]


def _grouped_conv1d_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int,
                         stride: int, padding: int) -> torch.Tensor:
    """The grouped 1-d convolution of members `[M, B, C, L]` run as a channels-last 2-d one (height 1):
    `[M, B, out, L_out]`, a view of the `[B, L_out, M·out]` result."""
    m, b_size, c, length = x.shape
    packed = x.transpose(0, 1).reshape(b_size, m * c, 1, length).contiguous(memory_format=torch.channels_last)
    kernel = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # [M·out, C/g, 1, k]
    y = F.conv2d(packed, kernel, bias, (1, stride), (0, padding), 1, groups)  # [B, M·out, 1, L_out], NHWC
    return y.squeeze(2).unflatten(1, (m, -1)).transpose(0, 1)


class MemberNorm(nn.Module):
    """Batch norm with separate statistics and affine parameters per member (flattened `[M·C]`)."""

    def __init__(self, members: int, dim: int, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.members, self.dim, self.channels = members, dim, channels
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(members * channels))
        self.bias = nn.Parameter(torch.zeros(members * channels))
        self.register_buffer("running_mean", torch.zeros(members * channels))
        self.register_buffer("running_var", torch.ones(members * channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_modules(cls, modules: Sequence[nn.modules.batchnorm._BatchNorm]) -> MemberNorm:
        f = modules[0]
        layer = cls(len(modules), getattr(f, "dim", 0), f.num_features, f.eps, f.momentum)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(layer, name).copy_(torch.cat([getattr(m, name) for m in modules]))
            layer.num_batches_tracked.copy_(f.num_batches_tracked)
        return layer.to(f.weight.device, f.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, spatial = self.members, self.dim
        tail = x.shape[x.dim() - spatial - 1 :]  # [C, *S]
        batch_shape = x.shape[1 : x.dim() - spatial - 1]
        x = x.reshape(m, -1, *tail)
        b_size = x.shape[1]
        packed = x.transpose(0, 1).reshape(b_size, m * self.channels, *tail[1:])
        if self.training:
            self.num_batches_tracked.add_(1)
        y = F.batch_norm(packed, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum, self.eps)
        y = y.view(b_size, m, *tail).transpose(0, 1)
        return y.reshape(m, *batch_shape, *tail)

    def extra_repr(self) -> str:
        return f"members={self.members}, {self.dim}d, channels={self.channels}"


class MemberDropout(nn.Module):
    """Dropout with one generator per member, so a member's masks do not depend on its batch-mates."""

    def __init__(self, p: float, generators: Sequence[torch.Generator | None]) -> None:
        super().__init__()
        self.p = p
        self.generators = list(generators)
        self.device_generators: list[dict[str, torch.Generator]] = [{} for _ in self.generators]

    @classmethod
    def from_modules(cls, modules: Sequence[plain.Dropout]) -> MemberDropout:
        return cls(modules[0].p, [m.generator for m in modules])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        masks = [torch.rand(x.shape[1:], generator=plain.generator_on(g, x.device, cache), device=x.device,
                            dtype=x.dtype) >= self.p for g, cache in zip(self.generators, self.device_generators,
                                                                         strict=True)]
        return x * torch.stack(masks) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"members={len(self.generators)}, p={self.p}"


def _stacked(layer: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters and running statistics of a member-batched layer as `[members, ...]` views, named as in
    the plain layer (none for dropout; `num_batches_tracked`, shared by the members, is not among them)."""
    if isinstance(layer, MemberDropout):
        return {}
    if isinstance(layer, MemberLinear):
        named = {"weight": layer.weight, "bias": layer.bias}
    elif isinstance(layer, MemberConv):
        m = layer.members
        named = {"weight": layer.weight.view(m, -1, *layer.weight.shape[1:]),
                 "bias": None if layer.bias is None else layer.bias.view(m, -1)}
    elif isinstance(layer, MemberNorm):
        named = {name: getattr(layer, name).view(layer.members, -1)
                 for name in ("weight", "bias", "running_mean", "running_var")}
    else:
        raise TypeError(f"not a member-batched layer: {type(layer).__name__}")
    return {name: tensor for name, tensor in named.items() if tensor is not None}


def member_slice(layer: nn.Module, index: int) -> dict[str, torch.Tensor]:
    """Parameters and buffers of member `index`, named as in the plain layer it came from."""
    out = {name: tensor[index] for name, tensor in _stacked(layer).items()}
    if isinstance(layer, MemberNorm):
        out["num_batches_tracked"] = layer.num_batches_tracked
    return out


def member_views(layer: nn.Module) -> dict[str, tuple[torch.Tensor, ...]]:
    """Every member's parameters and running statistics of `layer`, named as in the plain layer, as one
    `unbind` per tensor: views that autograd joins back with one stack in the backward (a slice per member
    would cost a zero-filled full-size gradient each). Running statistics come out as views a plain batch
    norm updates in place; `num_batches_tracked`, shared by the members, is left to the caller."""
    return {name: tensor.unbind(0) for name, tensor in _stacked(layer).items()}
