"""Grouped ensembles: grouped conv / block-diagonal layers equal M separate layers (float64), and the
collegial read-out is (1/√m) Σ F_j."""

from __future__ import annotations

import pytest
import torch

from ensplit.ensembles.independent import build_member
from ensplit.ensembles.methods import build_method, method_param_count
from ensplit.layers import member, plain

pytestmark = pytest.mark.usefixtures("float64_default")


def test_block_diagonal_linear_equals_separate_layers() -> None:
    torch.manual_seed(0)
    layers = [torch.nn.Linear(5, 3) for _ in range(4)]
    grouped = member.MemberLinear.from_modules(layers)
    x = torch.randn(4, 6, 5)
    y = grouped(x)
    block = torch.block_diag(*[l.weight for l in layers])  # diag(W_1..W_m) on concatenated features
    packed = x.transpose(0, 1).reshape(6, 20) @ block.T + torch.cat([l.bias for l in layers])
    torch.testing.assert_close(y.transpose(0, 1).reshape(6, 12), packed)
    for j, layer in enumerate(layers):
        torch.testing.assert_close(y[j], layer(x[j]))


@pytest.mark.parametrize("strategy", ["grouped", "loop", "auto"])
def test_grouped_conv_equals_separate_convs(strategy: str) -> None:
    torch.manual_seed(0)
    convs = [plain.Conv(2, 3, 4, 3, 1, 1, True, 1) for _ in range(3)]
    grouped = member.MemberConv.from_modules(convs, strategy=strategy)
    assert grouped.strategy == strategy
    assert member.MemberConv.from_modules(convs).strategy == "auto"  # the default
    x = torch.randn(3, 2, 3, 6, 6)
    y = grouped(x)
    for j, conv in enumerate(convs):
        torch.testing.assert_close(y[j], conv(x[j]))


@pytest.mark.parametrize("family,kw", [("mlp", {"width": 6}), ("resnet", {"width": 2, "depth": 8,
                                                                            "in_shape": (3, 8, 8)})])
def test_grouped_network_equals_separate_networks(family: str, kw: dict) -> None:
    m = 3
    shape = kw.get("in_shape", (40,))
    separate = [build_member(family, 10 + j, num_classes=4, **kw).eval() for j in range(m)]
    x = torch.randn(5, *shape)
    logits = torch.stack([net(x) for net in separate])
    ensemble = build_method("grouped", family, m, seed=10, num_classes=4, aggregation="ensemble", **kw).eval()
    torch.testing.assert_close(ensemble(x), logits)
    collegial = build_method("grouped", family, m, seed=10, num_classes=4, **kw).eval()
    assert collegial.members == 1
    torch.testing.assert_close(collegial(x), logits.sum(0, keepdim=True) / m**0.5)


def test_param_count_is_m_times_a_member() -> None:
    assert method_param_count("grouped", "mlp", 5, 7) == 5 * method_param_count("single", "mlp", 1, 7)
