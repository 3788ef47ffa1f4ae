"""The faster member-batched paths against plain layers (float64): 1-d max pooling by pairs, MemberConv's
"im2col" and "grouped_nhwc" strategies, MemberLinear, and a 1-d CNN ensemble on the measured table against
its separate members."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ensplit.ensembles import build_member, deep_ensemble
from ensplit.layers import plain
from ensplit.layers.member import MemberConv, MemberLinear, member_slice
from ensplit.layers.ops import max_pool


@pytest.mark.parametrize("length", [2, 9, 40])
@pytest.mark.parametrize("ties", [False, True])
def test_pair_max_pool_equals_max_pool1d_in_values_and_gradients(float64_default, length, ties):
    torch.manual_seed(length)
    x = torch.randn(3, 5, 4, length)
    if ties:  # zeros after ReLU, and equal positive pairs: the first of two equal values takes the gradient
        x = torch.relu(x)
        x[..., 1::2] = torch.where(torch.rand_like(x[..., 1::2]) < 0.3, x[..., 0::2][..., : x[..., 1::2].shape[-1]],
                                   x[..., 1::2])
    view = x.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_(True)  # a permuted view, as members hand on
    reference = F.max_pool1d(view.reshape(-1, 4, length), 2).reshape(3, 5, 4, -1)
    upstream = torch.randn_like(reference)
    (expected,) = torch.autograd.grad(reference, view, upstream)
    pooled = max_pool(view, 1, 2)
    (got,) = torch.autograd.grad(pooled, view, upstream)
    assert torch.equal(pooled, reference) and torch.equal(got, expected)
    assert pooled.stride(1) > pooled.stride(0)  # the input's memory order is kept (batch outermost)


def test_pair_max_pool_under_vmap_and_grad_equals_max_pool1d(float64_default):
    x = torch.randn(4, 3, 10)
    ours = vmap(grad(lambda v: max_pool(v, 1, 2).pow(2).sum()))(x)
    theirs = vmap(grad(lambda v: F.max_pool1d(v, 2).pow(2).sum()))(x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("strategy", ["im2col", "grouped_nhwc"])
@pytest.mark.parametrize("kernel,stride,padding,bias,batch,in_channels",
                         [(5, 1, 2, True, (6,), 1), (3, 2, 1, False, (2, 3), 3), (3, 1, 0, True, (), 2),
                          (5, 3, 2, True, (4,), 4)])
def test_one_d_strategies_equal_separate_convs(float64_default, strategy, kernel, stride, padding, bias, batch,
                                               in_channels):
    torch.manual_seed(kernel + stride)
    convs = [plain.Conv(1, in_channels, 4, kernel, stride, padding, bias) for _ in range(3)]
    x = torch.randn(3, *batch, in_channels, 11, requires_grad=True)
    expected = torch.stack([conv(x[i]) for i, conv in enumerate(convs)])
    upstream = torch.randn_like(expected)
    parameters = [p for conv in convs for p in conv.parameters()]
    expected_grads = torch.autograd.grad(expected, [x, *parameters], upstream)
    layer = MemberConv.from_modules(convs, strategy=strategy)
    out = layer(x)
    got = torch.autograd.grad(out, [x, *layer.parameters()], upstream)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(got[0], expected_grads[0], rtol=0, atol=1e-12)
    weights = expected_grads[1::2] if bias else expected_grads[1:]
    torch.testing.assert_close(got[1], torch.cat(weights), rtol=0, atol=1e-12)
    if bias:
        torch.testing.assert_close(got[2], torch.cat(expected_grads[2::2]), rtol=0, atol=1e-12)


def test_im2col_under_vmap_and_grad_equals_grouped(float64_default):
    im2col = MemberConv(3, 1, 2, 4, 5, padding=2, strategy="im2col")
    grouped = MemberConv(3, 1, 2, 4, 5, padding=2, strategy="grouped")
    grouped.load_state_dict(im2col.state_dict())
    xs = torch.randn(5, 3, 2, 2, 10)

    def per_example(layer):
        return vmap(grad(lambda p, x: functional_call(layer, p, (x,)).pow(2).sum()), in_dims=(None, 0))(
            dict(layer.named_parameters()), xs)

    ours, theirs = per_example(im2col), per_example(grouped)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-12)


def test_one_d_strategies_are_refused_where_they_do_not_apply():
    with pytest.raises(ValueError, match="1-d"):
        MemberConv(2, 2, 3, 4, 3, strategy="im2col")
    with pytest.raises(ValueError, match="groups=1"):
        MemberConv(2, 1, 4, 4, 3, groups=2, strategy="im2col")
    MemberConv(2, 1, 4, 4, 3, groups=2, strategy="grouped_nhwc")  # a grouped conv either way


@pytest.mark.parametrize("lead", [(2, 4), (4,)])  # extra leading dims, and the usual [M, B, in]
def test_member_linear_equals_separate_linears(float64_default, lead):
    torch.manual_seed(0)
    linears = [torch.nn.Linear(5, 7) for _ in range(3)]
    layer = MemberLinear.from_modules(linears)
    x = torch.randn(3, *lead, 5, requires_grad=True)
    expected = torch.stack([linear(x[i]) for i, linear in enumerate(linears)])
    upstream = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [x, *[p for lin in linears for p in lin.parameters()]], upstream)
    out = layer(x)
    got = torch.autograd.grad(out, [x, layer.weight, layer.bias], upstream)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(got[0], expected_grads[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(got[1], torch.stack(expected_grads[1::2]), rtol=0, atol=1e-12)
    torch.testing.assert_close(got[2], torch.stack(expected_grads[2::2]), rtol=0, atol=1e-12)
    assert got[1].stride() == layer.weight.stride()  # the gradient comes out in the weight's own layout (no copy)
    for i, linear in enumerate(linears):
        assert torch.equal(member_slice(layer, i)["weight"], linear.weight)
    restored = MemberLinear(3, 5, 7).double()
    restored.load_state_dict(copy.deepcopy(layer).state_dict())
    assert torch.equal(restored.weight, layer.weight)


@pytest.mark.parametrize("strategy", ["auto", "grouped", "im2col", "grouped_nhwc", "loop"])
def test_cnn1d_ensemble_trains_like_its_separate_members(float64_default, strategy):
    """One SGD step of the member-batched 1-d CNN (channels-last end to end under "auto" on the CPU) against
    each plain member trained alone: same logits, gradients and updated weights."""
    seeds = [0, 1, 2]
    ensemble = deep_ensemble("cnn1d", seeds, conv_strategy=strategy, width=4, in_shape=(40,))
    plains = [build_member("cnn1d", s, width=4, in_shape=(40,)) for s in seeds]
    x = torch.randn(3, 6, 40)
    y = torch.randint(0, 10, (3, 6))
    logits = ensemble(x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, -1).mean(1).sum()
    loss.backward()
    with torch.no_grad():
        for p in ensemble.parameters():
            p -= 0.1 * p.grad
    for i, net in enumerate(plains):
        out = net(x[i])
        torch.testing.assert_close(logits[i].detach(), out.detach(), rtol=0, atol=1e-12)
        F.cross_entropy(out, y[i]).backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
        state = ensemble.member_state_dict(i)
        for name, value in net.state_dict().items():
            torch.testing.assert_close(state[name], value, rtol=0, atol=1e-12)
