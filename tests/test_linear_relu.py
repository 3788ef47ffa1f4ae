"""The MLP's in-place ReLU after each linear layer (`ensplit.layers.activation.linear_relu`) against the
same model run module by module with out-of-place `nn.ReLU`s (float64), for every ensemble method; and
`MemberLinear.forward_relu` against `relu(MemberLinear(x))`."""

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ensplit.ensembles import build_member, build_method, deep_ensemble
from ensplit.layers.activation import linear_relu
from ensplit.layers.member import MemberLinear
from ensplit.models.mlp import MLP


class OpCounter(TorchDispatchMode):
    """Counts the aten ops a block of code runs."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def reference_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`model(x)` with every MLP inside it run module by module (out-of-place `nn.ReLU`)."""
    mlps = [m for m in model.modules() if isinstance(m, MLP)]
    try:
        for m in mlps:
            m.relu_in_place = False
        return model(x)
    finally:
        for m in mlps:
            m.relu_in_place = True


def assert_same_values_and_gradients(model: nn.Module, x: torch.Tensor) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(x)
    upstream = torch.randn_like(out)
    got = torch.autograd.grad(out, params, upstream)
    expected_out = reference_forward(model, x)
    expected = torch.autograd.grad(expected_out, params, upstream)
    assert torch.equal(out, expected_out)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["single", "deep", "batchensemble", "mimo", "mixture", "grouped", "multihead"])
def test_every_method_on_mlp_equals_out_of_place_relu(float64_default, method):
    torch.manual_seed(0)
    model = build_method(method, "mlp", 3, 12, depth=3, in_shape=(7,), num_classes=4).train()
    assert any(m._relu_after_linear for m in model.modules() if isinstance(m, MLP))
    x = torch.randn(model.members, 5, 7) if model.batching == "independent" else torch.randn(5, 7)
    assert_same_values_and_gradients(model, x)


@pytest.mark.parametrize("options", [{"dropout": 0.3}, {"norm": True}, {"bias": False}])
def test_mlp_options_equal_out_of_place_relu(float64_default, options):
    model = deep_ensemble("mlp", [0, 1], width=6, depth=2, in_shape=(5,), **options).eval()
    assert_same_values_and_gradients(model, torch.randn(2, 4, 5))
    plain = build_member("mlp", 0, width=6, depth=2, in_shape=(5,), **options).eval()
    assert_same_values_and_gradients(plain, torch.randn(4, 5))


def test_state_dict_keys_are_unchanged():
    """Saved models load: the body keeps its Sequential of linear, (norm), ReLU, (dropout) modules."""
    keys = list(build_member("mlp", 0, width=4, depth=2, in_shape=(3,), norm=True).state_dict())
    assert keys[:3] == ["body.0.weight", "body.0.bias", "body.1.weight"]
    assert "body.3.weight" in keys and keys[-2:] == ["head.weight", "head.bias"]
    assert list(build_member("mlp", 0, width=4, depth=2, in_shape=(3,)).state_dict()) == [
        "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias", "head.weight", "head.bias"]


def test_member_batched_mlp_rectifies_in_place():
    model = deep_ensemble("mlp", [0, 1, 2], width=8, depth=2, in_shape=(5,))
    with OpCounter() as ops:
        model(torch.randn(3, 4, 5)).sum().backward()
    assert ops.names.count("relu_") == 2 and "relu" not in ops.names
    plain = build_member("mlp", 0, width=8, depth=2, in_shape=(5,))
    with OpCounter() as ops:
        plain(torch.randn(4, 5)).sum().backward()
    assert ops.names.count("relu_") == 2 and "relu" not in ops.names


@pytest.mark.parametrize("shape", [(3, 6, 5), (3, 2, 4, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_member_linear_forward_relu_equals_relu_of_forward(float64_default, shape, bias):
    layer = MemberLinear(3, 5, 4, bias)
    x = torch.randn(*shape, requires_grad=True)
    upstream = torch.randn(*shape[:-1], 4)
    expected = torch.relu(layer(x))
    expected_grads = torch.autograd.grad(expected, [x, *layer.parameters()], upstream)
    got = layer.forward_relu(x)
    got_grads = torch.autograd.grad(got, [x, *layer.parameters()], upstream)
    assert torch.equal(got, expected)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-13)


def test_linear_relu_never_overwrites_a_view_or_the_input():
    x = torch.randn(4, 3)
    identity = nn.Identity()
    assert torch.equal(linear_relu(identity, x.clone()), torch.relu(x))
    kept = x.clone()
    linear_relu(identity, kept)
    assert torch.equal(kept, x)  # the layer handed back its input: rectified out of place

    class Viewing(nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return (v * 2).view(-1)

    assert torch.equal(linear_relu(Viewing(), x), torch.relu(x * 2).view(-1))
