"""Member-batched linear and conv maps with weights computed on the fly (`[M, out, ...]` per call).

The same packing as `member.MemberLinear` (batched matmul) and `member.MemberConv` (one grouped
convolution over M·groups), for layers whose member weights are generated rather than stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def member_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`x [M, *batch, in]`, `weight [M, out, in]`, `bias [M, out]` -> `[M, *batch, out]`."""
    m, out_features = weight.shape[0], weight.shape[1]
    lead = x.shape[1:-1]
    flat = x.reshape(m, -1, x.shape[-1])
    w_t = weight.transpose(1, 2)
    y = torch.bmm(flat, w_t) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, w_t)
    return y.reshape(m, *lead, out_features)


def member_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dim: int, stride: int,
                padding: int, groups: int) -> torch.Tensor:
    """`x [M, *batch, C_in, *spatial]`, `weight [M, out, in/groups, *k]`, `bias [M, out]`."""
    m, out_channels = weight.shape[0], weight.shape[1]
    batch_shape = x.shape[1 : x.dim() - dim - 1]
    x = x.reshape(m, -1, *x.shape[x.dim() - dim - 1 :])  # [M, B, C, *S]
    b_size, c_in = x.shape[1], x.shape[2]
    packed = x.transpose(0, 1).reshape(b_size, m * c_in, *x.shape[3:])
    conv = F.conv1d if dim == 1 else F.conv2d
    y = conv(packed, weight.reshape(m * out_channels, *weight.shape[2:]),
             None if bias is None else bias.reshape(-1), stride, padding, 1, m * groups)
    y = y.view(b_size, m, out_channels, *y.shape[2:]).transpose(0, 1)
    return y.reshape(m, *batch_shape, *y.shape[2:])
