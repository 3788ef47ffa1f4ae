"""BatchEnsemble layers against naive references (float64) and its converter on a nested ResNet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ensplit.ensembles.batchensemble import to_batchensemble
from ensplit.ensembles.methods import _split_sampler, build_method, method_param_count
from ensplit.layers import member, plain
from ensplit.layers.batchensemble import BatchEnsembleConv, BatchEnsembleLinear
from ensplit.models import create

pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def float64():
    previous, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # tiny tensors on 2 shared cores
    yield
    torch.set_default_dtype(previous)
    torch.set_num_threads(threads)




def test_linear_with_unit_fast_weights_equals_base_layer() -> None:
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    be = BatchEnsembleLinear.from_linear(base, members=3)
    with torch.no_grad():
        be.r.fill_(1.0)
        be.s.fill_(1.0)
    x = torch.randn(3, 5, 6)
    torch.testing.assert_close(be(x), base(x))


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_with_unit_fast_weights_equals_base_layer(groups: int) -> None:
    torch.manual_seed(0)
    base = plain.Conv(2, 4, 6, 3, 1, 1, True, groups)
    be = BatchEnsembleConv.from_conv(base, members=2)
    with torch.no_grad():
        be.r.fill_(1.0)
        be.s.fill_(1.0)
    x = torch.randn(2, 3, 4, 5, 5)
    torch.testing.assert_close(be(x), base(x))


def test_each_linear_member_equals_plain_layer_with_rank1_weight() -> None:
    torch.manual_seed(1)
    be = BatchEnsembleLinear(3, 6, 4, fast_init="normal", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        be.bias.normal_()
    x = torch.randn(3, 5, 6)
    y = be(x)
    for i in range(3):
        w = be.weight * be.r[i][:, None] * be.s[i][None, :]  # W ∘ r sᵀ, written out
        torch.testing.assert_close(y[i], x[i] @ w.T + be.bias[i])
        torch.testing.assert_close(be.member_weight(i), w)


@pytest.mark.parametrize("dim,groups", [(1, 1), (2, 1), (2, 2)])
def test_each_conv_member_equals_plain_conv_with_rank1_weight(dim: int, groups: int) -> None:
    torch.manual_seed(2)
    be = BatchEnsembleConv(3, dim, 4, 6, 3, 1, 1, True, groups, fast_init="normal")
    with torch.no_grad():
        be.bias.normal_()
    x = torch.randn(3, 2, 4, *([7] * dim))
    y = be(x)
    for i in range(3):
        ref = plain.Conv(dim, 4, 6, 3, 1, 1, True, groups)
        s_full = be.s[i].view(groups, -1).repeat_interleave(6 // groups, 0)  # in-channels seen by each output
        with torch.no_grad():
            ref.weight.copy_(be.weight * (be.r[i][:, None] * s_full).view(6, -1, *([1] * dim)))
            ref.bias.copy_(be.bias[i])
        torch.testing.assert_close(y[i], ref(x[i]))


def test_random_sign_init_is_plus_minus_one() -> None:
    be = BatchEnsembleLinear(4, 50, 50, fast_init="random_sign", generator=torch.Generator().manual_seed(0))
    assert set(be.r.unique().tolist()) == {-1.0, 1.0}


def test_converter_replaces_every_layer_of_a_nested_resnet() -> None:
    model = create("resnet", width=2, depth=8, in_shape=(3, 8, 8), num_classes=3, shortcut="B")
    targets = [n for n, m in model.named_modules()
               if isinstance(m, (nn.Linear, plain.Conv, nn.modules.batchnorm._BatchNorm))]
    converted, replaced = to_batchensemble(model, members=2)
    assert replaced == targets and len(targets) == 2 + 3 * 4 + 2 * 2 + 1  # stem+norm, 3 blocks, 2 shortcuts, head
    kinds = {type(converted.get_submodule(n)) for n in replaced}
    assert kinds == {BatchEnsembleConv, BatchEnsembleLinear, member.MemberNorm}
    assert any("shortcut" in n for n in replaced)


def test_param_count_adds_m_in_plus_out_per_linear_layer() -> None:
    m, w = 3, 8
    base = create("mlp", width=w)  # 40 -> 8 -> 8 -> 10, biases
    layers = [(40, 8), (8, 8), (8, 10)]
    expected = sum(p.numel() for p in base.parameters())
    expected += sum(m * (i + o) + (m - 1) * o for i, o in layers)  # fast weights + per-member biases
    assert method_param_count("batchensemble", "mlp", m, w) == expected
    built = build_method("batchensemble", "mlp", m, w)
    assert sum(p.numel() for p in built.parameters()) == expected


def test_split_batch_sampler_gives_each_member_its_own_slice() -> None:
    batches = _split_sampler(4)(100, 32, [torch.Generator().manual_seed(0)])
    assert all(b.shape == (4, 8) for b in batches)
    flat = torch.cat([b.flatten() for b in batches])
    assert flat.unique().numel() == flat.numel()


def _be_mlp(member_norms: bool, members: int = 3) -> nn.Module:
    return build_method("batchensemble", "mlp", members, 8, depth=2, num_classes=3, seed=0, fast_init="normal",
                        member_norms=member_norms, family_options={"norm": True})


def test_param_count_without_member_norms_keeps_one_norm_for_all_members() -> None:
    m, w = 3, 8
    layers = [(40, 8), (8, 8), (8, 3)]  # 40 -> 8 -> 8 -> 3 with a norm after each hidden layer
    base = sum(i * o + o for i, o in layers) + 2 * (2 * w)
    fast = sum(m * (i + o) + (m - 1) * o for i, o in layers)
    shared, per_member = _be_mlp(False), _be_mlp(True)
    kw = {"depth": 2, "num_classes": 3, "family_options": {"norm": True}}
    assert sum(p.numel() for p in shared.parameters()) == base + fast == method_param_count(
        "batchensemble", "mlp", m, w, member_norms=False, **kw)
    assert sum(p.numel() for p in per_member.parameters()) == base + fast + (m - 1) * 2 * (2 * w) == \
        method_param_count("batchensemble", "mlp", m, w, **kw)
    norms = [shared.network.network.get_submodule(n) for n in ("body.1", "body.4")]
    assert all(type(norm) is plain.Norm for norm in norms)


def _randomise_norms(model: nn.Module) -> None:
    with torch.no_grad():
        for norm in (m for m in model.modules() if isinstance(m, plain.Norm)):
            for t in (norm.weight, norm.bias, norm.running_mean):
                t.normal_()
            norm.running_var.uniform_(0.5, 2.0)


def test_without_member_norms_each_member_in_eval_equals_its_plain_network() -> None:
    model = _be_mlp(False).eval()
    _randomise_norms(model)
    net = model.network.network
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    out = model(x)
    for i in range(3):
        ref = create("mlp", 8, 2, num_classes=3, norm=True).eval()
        with torch.no_grad():
            for name, module in net.named_modules():
                if isinstance(module, BatchEnsembleLinear):
                    ref.get_submodule(name).weight.copy_(module.member_weight(i))
                    ref.get_submodule(name).bias.copy_(module.bias[i])
                elif isinstance(module, plain.Norm):  # the one shared norm, running statistics included
                    ref.get_submodule(name).load_state_dict(module.state_dict())
        torch.testing.assert_close(out[i], ref(x))


def test_without_member_norms_training_statistics_pool_every_member() -> None:
    """Train mode, written out: y_i = r_i ∘ (W (s_i ∘ x)) + b_i per member, then one batch norm whose mean and
    (biased) variance run over all members' rows together."""
    model = _be_mlp(False).train()
    _randomise_norms(model)
    net = model.network.network
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(1))

    def rank_one(layer: BatchEnsembleLinear, h: list[torch.Tensor]) -> list[torch.Tensor]:
        return [(h[i] * layer.s[i]) @ layer.weight.T * layer.r[i] + layer.bias[i] for i in range(3)]

    def pooled_norm(norm: plain.Norm, h: list[torch.Tensor]) -> list[torch.Tensor]:
        rows = torch.cat(h)  # [M·B, C]
        mean, var = rows.mean(0), ((rows - rows.mean(0)) ** 2).mean(0)
        return [(hi - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias for hi in h]

    h = [x] * 3
    for index in (0, 3):
        h = [torch.relu(v) for v in pooled_norm(net.body[index + 1], rank_one(net.body[index], h))]
    expected = torch.stack(rank_one(net.head, h))
    torch.testing.assert_close(model(x), expected)
