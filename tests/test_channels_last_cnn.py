"""The 1-d CNN's channels-last path: max pooling by pairs on channels-last activations (against F.max_pool1d),
pooling before the ReLU (against the model written out in the usual order), and a member-batched network that
hands its activations on without copying them into another layout."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from ensplit.ensembles import build_member, deep_ensemble
from ensplit.layers.ops import max_pool


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """`[..., C, L]` stored with C innermost (what a channels-last conv hands on)."""
    return x.transpose(-1, -2).contiguous().transpose(-1, -2)


@pytest.mark.parametrize("length", [2, 9, 40])
@pytest.mark.parametrize("ties", [False, True])
def test_pair_max_pool_on_channels_last_equals_max_pool1d(float64_default, length, ties):
    torch.manual_seed(length)
    x = torch.randn(3, 5, 4, length)
    if ties:  # zeros, and equal pairs: the first of two equal values takes the gradient, as in F.max_pool1d
        x = torch.relu(x)
        x[..., 1 : 2 * (length // 2) : 2] = x[..., 0 : 2 * (length // 2) : 2]
    view = channels_last(x).requires_grad_(True)
    assert view.stride(-1) != 1
    reference = F.max_pool1d(x.reshape(-1, 4, length), 2).reshape(3, 5, 4, -1)
    upstream = torch.randn_like(reference)
    (expected,) = torch.autograd.grad(F.max_pool1d(view.reshape(-1, 4, length), 2).reshape(3, 5, 4, -1), view,
                                      upstream)
    pooled = max_pool(view, 1, 2)
    (got,) = torch.autograd.grad(pooled, view, upstream)
    assert torch.equal(pooled, reference) and torch.equal(got, expected)
    assert pooled.stride(-2) == 1 and got.stride() == view.stride()  # channels stay innermost, both ways


def test_pair_max_pool_on_channels_last_under_vmap_and_grad(float64_default):
    x = channels_last(torch.randn(4, 3, 6, 10))
    ours = vmap(grad(lambda v: max_pool(v, 1, 2).pow(2).sum()))(x)
    theirs = vmap(grad(lambda v: F.max_pool1d(v, 2).pow(2).sum()))(x.contiguous())
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def _relu_then_pool(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The cnn1d forward written out in the usual order (ReLU, then F.max_pool1d) from the net's parameters."""
    h = x.unsqueeze(-2)
    for conv, pool in zip(net.convs, net.pool_after, strict=True):
        h = torch.relu(F.conv1d(h, conv.weight, conv.bias, 1, conv.padding))
        h = F.max_pool1d(h, 2) if pool else h
    return F.linear(h.mean(-1), net.head.weight, net.head.bias)


@pytest.mark.parametrize("length", [40, 13])
def test_pooling_before_the_relu_is_the_same_network(float64_default, length):
    net = build_member("cnn1d", 3, width=6, depth=3, in_shape=(length,))
    x = torch.randn(16, length)
    x[:4] = 0.0  # all-zero inputs: ReLU ties at zero everywhere
    ours, theirs = net(x), _relu_then_pool(net, x)
    upstream = torch.randn_like(ours)
    got = torch.autograd.grad(ours, list(net.parameters()), upstream)
    expected = torch.autograd.grad(theirs, list(net.parameters()), upstream)
    assert torch.equal(ours, theirs)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-13)


class _CopyCounter(TorchDispatchMode):
    """Sizes of the tensors that copies and clones write."""

    def __init__(self) -> None:
        super().__init__()
        self.copied: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.copy_, torch.ops.aten.clone, torch.ops.aten._to_copy):
            self.copied.append(out.numel())
        return out


def test_member_batched_cnn1d_hands_activations_on_without_copies():
    """On the CPU table ("auto" → channels-last), forward and backward copy nothing the size of an activation
    but the input batch itself, packed once; only small weights are converted."""
    members, batch, width, length = 4, 32, 8, 40
    ensemble = deep_ensemble("cnn1d", list(range(members)), width=width, in_shape=(length,))
    x = torch.randn(members, batch, length)
    y = torch.randint(0, 10, (members, batch))
    with _CopyCounter() as counter:
        logits = ensemble(x)
        F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    smallest_activation = members * batch * width * (length // 8)
    large = [n for n in counter.copied if n >= smallest_activation]
    assert large == [members * batch * length], counter.copied
    assert all(n <= members * width * width * 5 for n in counter.copied if n not in large)
