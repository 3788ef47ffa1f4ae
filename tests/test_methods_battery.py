"""One battery over every ensemble method × registered family: forward gives `[members, batch, classes]`,
backward reaches every parameter, and the closed-form count equals the built model's."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ensplit.ensembles.methods import build_method, method_names, method_param_count
from ensplit.ensembles.multihead import ExpandToMembers
from ensplit.models import count_params, family_names, get_family

SMALL: dict[str, dict[str, Any]] = {  # tiny but structurally complete; other families get width 2
    "wrn": {"width": 1},
    "wrn-pl": {"width": 1},
    "resnext": {"width": 2, "family_options": {"cardinality": 2, "base_width": 4}},
}
MEMBERS = 2


def small(family: str) -> dict[str, Any]:
    spec = get_family(family)
    in_shape = spec.default_in_shape
    if len(in_shape) == 3:
        in_shape = (in_shape[0], 8, 8)
    config = {"width": 2, "depth": spec.valid_depths(200)[0], "in_shape": tuple(in_shape), "num_classes": 3}
    return {**config, **SMALL.get(family, {})}


def method_options(method: str, family: str, config: dict[str, Any]) -> dict[str, Any]:
    if method == "mixture":  # twice one network: every family can hold templates at that budget
        plain = {k: v for k, v in config.items() if k != "family_options"}
        return {"budget": 2 * count_params(family, **plain, **config.get("family_options", {}))}
    if method == "mimo":
        return {"batch_repetitions": 1}
    return {}


@pytest.mark.parametrize("family", family_names())
@pytest.mark.parametrize("method", method_names())
def test_forward_backward_and_count(method: str, family: str) -> None:
    config = small(family)
    options = method_options(method, family, config)
    model = build_method(method, family, MEMBERS, seed=0, **config, **options).train()
    x = torch.randn(3, *config["in_shape"], generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (model.members, 3, config["num_classes"])
    assert model.members == (1 if method in ("single", "grouped") else MEMBERS)
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert sum(p.numel() for p in model.parameters()) == method_param_count(method, family, MEMBERS, **config,
                                                                            **options)
    per_member = torch.randn(model.members if method != "grouped" else MEMBERS, 3, *config["in_shape"])
    if method not in ("single",):  # one batch per member is accepted too (independent / split batching)
        assert model(per_member).shape == out.shape


VARIANTS = [("mixture", {"singletons": "templates"}), ("mixture", {"grouping": "shape"}),
            ("batchensemble", {"member_norms": False})]


@pytest.mark.parametrize("family", family_names())
@pytest.mark.parametrize("method,variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items())
                         if isinstance(v, dict) else v)
def test_variants_forward_backward_and_count(method: str, variant: dict[str, Any], family: str) -> None:
    """The method options that change the construction (Thin mixture, shape groups with plain one-layer
    shapes, BatchEnsemble with shared norms) keep the battery's guarantees."""
    config = small(family)
    options = {**method_options(method, family, config), **variant}
    model = build_method(method, family, MEMBERS, seed=0, **config, **options).train()
    out = model(torch.randn(3, *config["in_shape"], generator=torch.Generator().manual_seed(0)))
    assert out.shape == (MEMBERS, 3, config["num_classes"])
    out.square().sum().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    assert sum(p.numel() for p in model.parameters()) == method_param_count(method, family, MEMBERS, **config,
                                                                            **options)


def test_multihead_split_at_a_resnet_stage() -> None:
    config = small("resnet")
    model = build_method("multihead", "resnet", 3, split_at="stages.2", **config)
    heads = model.info["per_member_layers"]
    assert heads[0].startswith("stages.2") and heads[-1] == "head"
    assert all(isinstance(model.network.get_submodule(n), ExpandToMembers) for n in heads)
    assert model(torch.randn(4, *config["in_shape"])).shape == (3, 4, 3)
