"""One battery over every registered family: forward shape, backward reaches every parameter, exact count,
and a member-batched deep ensemble equals its members built separately (float64)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ensplit.ensembles import build_member, deep_ensemble
from ensplit.models import count_params, create, family_names, get_family

# Small but structurally complete settings per family; families not listed get a generic small config.
SMALL: dict[str, dict[str, Any]] = {
    "wrn": {"width": 1},
    "resnext": {"width": 2, "options": {"cardinality": 2, "base_width": 4}},
    "densenet": {"width": 3},
    "densenet-bc": {"width": 3},
    "vgg16": {"width": 2},
}


def small_config(name: str) -> dict[str, Any]:
    """width, depth, in_shape (spatial 8×8 for images) and options for a fast build of `name`."""
    family = get_family(name)
    spec = SMALL.get(name, {})
    in_shape = family.default_in_shape
    if len(in_shape) == 3:
        in_shape = (in_shape[0], 8, 8)
    return {"width": spec.get("width", 3), "depth": family.valid_depths(200)[0], "in_shape": tuple(in_shape),
            "num_classes": 5, **spec.get("options", {})}


@pytest.mark.parametrize("name", family_names())
def test_forward_backward_and_count(name: str) -> None:
    config = small_config(name)
    torch.manual_seed(0)
    model = create(name, **config).train()
    x = torch.randn(4, *config["in_shape"])
    out = model(x)
    assert out.shape == (4, config["num_classes"])
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert count_params(name, **config) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", family_names())
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_member_batched_equals_separate_members(name: str, mode: str) -> None:
    config = small_config(name)
    seeds = [0, 1]
    ensemble = deep_ensemble(name, seeds, **config).double().train(mode == "train")
    members = [build_member(name, s, **config).double().train(mode == "train") for s in seeds]
    x = torch.randn(3, *config["in_shape"], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([m(x) for m in members])
    got = ensemble(x)
    assert got.shape == (2, 3, config["num_classes"])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", family_names())
def test_plain_network_accepts_extra_leading_dims(name: str) -> None:
    """Families must not hard-code the batch dim: `[2, B, ...]` equals running each slice (eval mode)."""
    config = small_config(name)
    torch.manual_seed(0)
    model = create(name, **config).double().eval()
    x = torch.randn(2, 3, *config["in_shape"], dtype=torch.float64)
    torch.testing.assert_close(model(x), torch.stack([model(x[0]), model(x[1])]))
