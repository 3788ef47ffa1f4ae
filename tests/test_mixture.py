"""MixtureEnsembles: member weights are Σ α T over the assigned templates (float64), the budget lands within
one template, fallback and single-group regimes, one-layer shapes plain (paper default) or templated (Thin),
and the converter on a nested ResNet."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ensplit.ensembles.inventory import family_inventory
from ensplit.ensembles.methods import build_method, method_param_count
from ensplit.ensembles.mixture import to_mixture
from ensplit.ensembles.mixture_plan import layer_assignment, mixture_plan
from ensplit.errors import EnsplitError
from ensplit.layers import member, plain
from ensplit.layers.mixture import FlatBank, MixtureLayer, TemplateBank
from ensplit.models import count_params, create

pytestmark = pytest.mark.usefixtures("float64_default")


def naive_templates(layer: MixtureLayer, member_index: int) -> list[torch.Tensor]:
    """The templates of one member, read straight from the bank's parameter (no gather code)."""
    row = layer.assignment[member_index if len(layer.assignment) > 1 else 0]
    if isinstance(layer.bank, TemplateBank):
        return [layer.bank.templates[t] for t in row]
    bank, numel = layer.bank.bank, math.prod(layer.weight_shape)
    return [torch.stack([bank[(s + e) % bank.numel()] for e in range(numel)]).view(layer.weight_shape)
            for s in row]


@pytest.mark.parametrize("grouping,assignment", [("shape", "round_robin"), ("shape", "disjoint"),
                                                 ("single", "round_robin"), ("single", "disjoint")])
def test_member_weights_are_alpha_weighted_sums_of_templates(grouping: str, assignment: str) -> None:
    base = create("mlp", width=6, depth=3, num_classes=3)
    budget = 3 * count_params("mlp", width=6, depth=3, num_classes=3)
    net, plan, _ = to_mixture(base, 3, budget, 2, grouping, assignment, seed=0, singletons="templates")
    x = torch.randn(3, 4, 40)
    layers = [m for m in net.modules() if isinstance(m, MixtureLayer)]
    assert layers
    for layer in layers:
        weights = layer.member_weights()
        for i in range(3):
            expected = sum(a * t for a, t in zip(layer.alpha[i], naive_templates(layer, i), strict=True))
            torch.testing.assert_close(weights[i], expected)
    first = net.body[0]
    for i in range(3):  # and the layer computes the plain map with that member's weight
        torch.testing.assert_close(first(x)[i], x[i] @ first.member_weights()[i].T + first.bias[i])


def test_conv_member_equals_plain_conv_with_mixed_weight() -> None:
    bank = TemplateBank(5, (4, 2, 3, 3))
    layer = MixtureLayer(bank, 3, (4, 2, 3, 3), [[0, 2, 4]], True, dim=2, stride=2, padding=1, groups=1)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 2, 2, 7, 7)
    y = layer(x)
    for i in range(3):
        ref = plain.Conv(2, 2, 4, 3, 2, 1, True)
        with torch.no_grad():
            ref.weight.copy_(sum(layer.alpha[i, l] * bank.templates[t] for l, t in enumerate([0, 2, 4])))
            ref.bias.copy_(layer.bias[i])
        torch.testing.assert_close(y[i], ref(x[i]))


@pytest.mark.parametrize("family,kw", [("mlp", {"width": 32, "depth": 3}), ("cnn1d", {"width": 8, "depth": 3}),
                                       ("resnet", {"width": 4, "depth": 14, "in_shape": (3, 8, 8)})])
@pytest.mark.parametrize("factor", [0.5, 1.0, 2.0, 4.0])
def test_budget_lands_within_one_template(family: str, kw: dict, factor: float) -> None:
    inv = family_inventory(family, **kw)
    budget = int(factor * count_params(family, **kw))
    for grouping in ("auto", "shape", "single"):
        try:
            plan = mixture_plan(inv, 4, budget, grouping=grouping)
        except Exception:
            assert grouping == "shape"  # only the shape grouping may refuse a low budget
            continue
        sizes = [math.prod(x.weight_shape) for x in inv.layers]
        assert 0 <= budget - plan.total_params < max(sizes), (grouping, budget, plan.total_params)
        if plan.grouping == "single":
            assert plan.total_params == budget
    built = build_method("mixture", family, 4, budget=budget, **kw)
    assert sum(p.numel() for p in built.parameters()) == method_param_count("mixture", family, 4, budget=budget,
                                                                             **kw)


def test_small_budget_falls_back_to_shared_layers_and_very_small_to_one_group() -> None:
    kw = {"width": 8, "depth": 14, "in_shape": (3, 8, 8)}
    inv = family_inventory("resnet", **kw)
    plain_count = count_params("resnet", **kw)
    plan = mixture_plan(inv, 4, plain_count, grouping="shape")
    assert plan.fallback_layers and "stem" in plan.fallback_layers  # a one-layer group with too small a share
    net, plan, _ = to_mixture(create("resnet", **kw), 4, plain_count, grouping="shape")
    assert isinstance(net.get_submodule("stem"), plain.Conv)
    assert mixture_plan(inv, 4, plain_count // 5).grouping == "single"  # auto, very low budget


def test_round_robin_uses_every_template_and_disjoint_members_do_not_overlap() -> None:
    inv = family_inventory("resnet", width=4, depth=14, in_shape=(3, 8, 8))
    plan = mixture_plan(inv, 2, 6 * count_params("resnet", width=4, depth=14, in_shape=(3, 8, 8)), 2, "shape")
    for group in plan.groups:
        if group.templates == 0:
            continue
        used = {t for name in group.layers for t in layer_assignment(plan, inv, name)[0]}
        assert used == set(range(group.templates))
        rows = [layer_assignment(plan, inv, name, "disjoint") for name in group.layers]
        if group.templates >= 2 * group.per_layer * len(group.layers):
            assert not {t for r in rows for t in r[0]} & {t for r in rows for t in r[1]}


def test_converter_on_nested_resnet_replaces_every_layer() -> None:
    kw = {"width": 4, "depth": 8, "in_shape": (3, 8, 8), "shortcut": "B"}
    model = create("resnet", **kw)
    weights = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, plain.Conv))]
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    net, plan, replaced = to_mixture(model, 3, 3 * count_params("resnet", **kw), grouping="single")
    assert len(replaced) == len(weights) + len(norms) == 10 + 9  # stem, 3 blocks × 2, 2 shortcuts, head; their norms
    assert all(isinstance(net.get_submodule(n), MixtureLayer) for n in weights)
    assert all(isinstance(net.get_submodule(n), member.MemberNorm) for n in norms)
    banks = {id(m) for m in net.modules() if isinstance(m, FlatBank)}
    assert len(banks) == 1


# An MLP with one hidden shape repeated (body.3, body.6: [6, 6]) and two unique ones (body.0: [6, 40], head: [3, 6]),
# with norms so members also differ there. Body: linear, norm, relu (× 3), then the head.
SINGLETON_MLP = {"width": 6, "depth": 3, "num_classes": 3, "family_options": {"norm": True}}


def _mlp_mixture(singletons: str, members: int = 3) -> tuple[nn.Module, int]:
    budget = 3 * count_params("mlp", 6, 3, num_classes=3, norm=True)
    model = build_method("mixture", "mlp", members, budget=budget, grouping="shape", singletons=singletons, seed=1,
                         **SINGLETON_MLP)
    return model, budget


def _closed_form(singletons: str, budget: int, members: int) -> int:
    """Σ over the plan's groups of templates × template size, M·c α and M·out biases per templated layer,
    whole ordinary layers for fallback ones, and M·2C per norm (three norms of 6 channels)."""
    inv = family_inventory("mlp", 6, 3, num_classes=3, norm=True)
    plan = mixture_plan(inv, members, budget, grouping="shape", singletons=singletons)
    shapes = {"body.0": (6, 40), "body.3": (6, 6), "body.6": (6, 6), "head": (3, 6)}
    total = members * 2 * 6 * 3
    for group in plan.groups:
        layers, t, c = group.layers, group.templates, group.per_layer
        out, fan_in = shapes[layers[0]]
        if t == 0:
            total += len(layers) * (out * fan_in + out)
        else:
            total += t * out * fan_in + len(layers) * members * (c + out)
    return total


def _member_as_plain(model: nn.Module, index: int) -> nn.Module:
    """Member `index` written into a plain MLP: θ = Σ α T read from the bank, its own bias and norm slice;
    fallback layers copied as they are."""
    net = model.network.network
    ref = create("mlp", 6, 3, num_classes=3, norm=True)
    with torch.no_grad():
        for name, module in net.named_modules():
            if not isinstance(module, (MixtureLayer, nn.Linear, member.MemberNorm)):
                continue
            target = ref.get_submodule(name)
            if isinstance(module, MixtureLayer):
                target.weight.copy_(sum(a * t for a, t in zip(module.alpha[index], naive_templates(module, index),
                                                               strict=True)))
                target.bias.copy_(module.bias[index])
            elif isinstance(module, nn.Linear):
                target.load_state_dict(module.state_dict())
            elif isinstance(module, member.MemberNorm):
                rows = slice(index * 6, (index + 1) * 6)
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(target, key).copy_(getattr(module, key)[rows])
    return ref


def test_one_layer_shapes_are_plain_by_default_and_templated_in_the_thin_variant() -> None:
    model, budget = _mlp_mixture("plain")
    net = model.network.network
    assert model.info["singletons"] == "plain"
    assert type(net.get_submodule("body.0")) is nn.Linear and type(net.get_submodule("head")) is nn.Linear
    assert all(isinstance(net.get_submodule(name), MixtureLayer) for name in ("body.3", "body.6"))
    assert set(model.info["fallback_layers"]) == {"body.0", "head"}
    assert len([m for m in net.modules() if isinstance(m, TemplateBank)]) == 1

    thin, _ = _mlp_mixture("templates")
    thin_net = thin.network.network
    assert all(isinstance(thin_net.get_submodule(n), MixtureLayer) for n in ("body.0", "body.3", "body.6", "head"))
    assert thin.info["fallback_layers"] == [] and len([m for m in thin_net.modules()
                                                       if isinstance(m, TemplateBank)]) == 3
    for built in (model, thin):
        count = sum(p.numel() for p in built.parameters())
        assert count == _closed_form(built.info["singletons"], budget, 3) == method_param_count(
            "mixture", "mlp", 3, budget=budget, grouping="shape", singletons=built.info["singletons"], **SINGLETON_MLP)
        assert count <= budget


@pytest.mark.parametrize("singletons", ["plain", "templates"])
def test_every_member_equals_its_own_plain_network(singletons: str) -> None:
    model, _ = _mlp_mixture(singletons)
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    out = model.train()(x)  # train mode: each member's norms see that member's batch
    for i in range(3):
        torch.testing.assert_close(out[i], _member_as_plain(model, i).train()(x))


def test_auto_grouping_of_a_two_layer_mlp_uses_the_single_bank_when_every_shape_is_unique() -> None:
    inv = family_inventory("mlp", width=32)
    budget = 4 * count_params("mlp", width=32)
    assert mixture_plan(inv, 4, budget).grouping == "single"  # every layer plain: no ensemble left in shape
    assert mixture_plan(inv, 4, budget, singletons="templates").grouping == "shape"
    with pytest.raises(EnsplitError, match="singletons"):
        mixture_plan(inv, 4, budget, singletons="thin")


def test_a_one_value_bank_builds_finite_weights() -> None:
    """The smallest mixture (its flat bank holds one value, whose std is undefined) used to scale every layer by
    nan; recommend --flops-budget sizes mixtures down to it."""
    model = build_method("mixture", "mlp", 4, 1, None, (40,), 10, 0, {}, budget=97)
    assert [b.bank.numel() for b in model.modules() if isinstance(b, FlatBank)] == [1]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(model(torch.randn(3, 40))).all()
