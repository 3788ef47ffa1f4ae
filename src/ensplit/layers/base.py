"""The `LayerSet` contract shared by model families and ensemble methods."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ensplit.layers import plain


@dataclass(frozen=True)
class LayerSet:
    """Factories for the layers a family needs.

    linear(in_features, out_features, bias) -> module on [..., in_features]
    conv(dim, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, groups=1)
        -> module on [..., C, *spatial] (dim = 1 or 2 spatial dimensions)
    norm(dim, channels) -> batch norm over [..., C, *spatial] (dim = 0 for [..., C] features)
    dropout(p) -> module
    """

    linear: Callable[..., nn.Module]
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module]
    dropout: Callable[..., nn.Module]


def _plain_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    return nn.Linear(in_features, out_features, bias=bias)


def _plain_conv(
    dim: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    bias: bool = True,
    groups: int = 1,
) -> nn.Module:
    return plain.Conv(dim, in_channels, out_channels, kernel_size, stride, padding, bias, groups)


def _plain_norm(dim: int, channels: int) -> nn.Module:
    return plain.Norm(dim, channels)


def _plain_dropout(p: float) -> nn.Module:
    return plain.Dropout(p)


PLAIN = LayerSet(linear=_plain_linear, conv=_plain_conv, norm=_plain_norm, dropout=_plain_dropout)
