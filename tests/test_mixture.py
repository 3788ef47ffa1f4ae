"""MixtureEnsembles: member weights are Σ α T over the assigned templates (float64), the budget lands within
one template, fallback and single-group regimes, and the converter on a nested ResNet."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ensplit.ensembles.inventory import family_inventory
from ensplit.ensembles.methods import build_method, method_param_count
from ensplit.ensembles.mixture import to_mixture
from ensplit.ensembles.mixture_plan import layer_assignment, mixture_plan
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
    net, plan, _ = to_mixture(base, 3, budget, 2, grouping, assignment, seed=0)
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
