"""Pinned parameter counts from the papers (science.md §5) and closed-form counts vs built modules."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ensplit.models import count_params, create, family_names, get_family


def built(name: str, width: int, depth: int | None = None, **kw: Any) -> int:
    """sum(p.numel()) of the built module, on the meta device (any size builds instantly)."""
    with torch.device("meta"):
        return sum(p.numel() for p in create(name, width, depth, **kw).parameters())


@pytest.mark.parametrize("classes, expected", [(10, 15_245_130), (100, 15_291_300)])
def test_vgg16_matches_the_power_law_paper(classes: int, expected: int) -> None:
    assert count_params("vgg16", 64, num_classes=classes) == expected
    assert built("vgg16", 64, num_classes=classes) == expected


@pytest.mark.parametrize("width", [1, 2, 7, 64, 181])
@pytest.mark.parametrize("classes", [10, 100])
def test_vgg16_closed_form(width: int, classes: int) -> None:
    assert count_params("vgg16", width, num_classes=classes) == (109 + 8 * classes) * width + 3719 * width**2 + classes


@pytest.mark.parametrize("name, width, classes, expected", [
    ("wrn", 10, 10, 36_479_194),      # Zagoruyko & Komodakis: stem 3→16, no conv biases
    ("wrn", 10, 100, 36_536_884),     # MixtureEnsembles' "36.5M"
    ("wrn-pl", 160, 100, 36_755_940),  # the power-law paper's code: stem 3→w, conv biases ("36.8M")
])
def test_wrn_28_10_both_conventions(name: str, width: int, classes: int, expected: int) -> None:
    assert count_params(name, width, 28, num_classes=classes) == expected
    assert built(name, width, 28, num_classes=classes) == expected


def test_resnet20_option_a() -> None:
    assert count_params("resnet", 16, 20) == 269_722
    assert built("resnet", 16, 20) == 269_722


@pytest.mark.parametrize("name, width, depth, options, expected", [
    ("densenet-bc", 12, 100, {}, 769_162),                     # DenseNet-BC-100-12 ("0.8M")
    ("densenet", 12, 40, {}, 1_059_298),                       # DenseNet-40-12 with a 2k stem ("1.0M")
    ("resnext", 64, 29, {"cardinality": 8}, 34_426_698),       # ResNeXt-29 8×64d ("34.4M")
    ("resnext", 64, 29, {"cardinality": 16}, 68_155_210),      # ResNeXt-29 16×64d ("68.1M")
])
def test_other_reference_counts(name: str, width: int, depth: int, options: dict, expected: int) -> None:
    assert count_params(name, width, depth, **options) == expected
    assert built(name, width, depth, **options) == expected


def test_resnext_37x10d_is_the_largest_cardinality_within_1x128d() -> None:
    """Collegial ensembles (seed 004): m_p ≈ 37 for ResNeXt-29 paths of width 10 vs the 1×128d network."""
    budget = count_params("resnext", 128, 29, cardinality=1)
    assert count_params("resnext", 10, 29, cardinality=37) <= budget < count_params("resnext", 10, 29, cardinality=38)


VARIANTS: dict[str, list[dict[str, Any]]] = {
    "resnet": [{"shortcut": "A"}, {"shortcut": "B"}],
    "vgg16": [{"norm": False}, {"norm": True}],
    "densenet-bc": [{"compression": 0.5}, {"compression": 0.8}],
    "resnext": [{"cardinality": 1, "base_width": 4}, {"cardinality": 3, "base_width": 8}],
    "mlp": [{"bias": True, "norm": False}, {"bias": False, "norm": True}],
    "cnn1d": [{"norm": False}, {"norm": True}],
}


@pytest.mark.parametrize("name", family_names())
def test_count_equals_built_over_a_grid(name: str) -> None:
    family = get_family(name)
    shapes = [(family.default_in_shape, 10)]
    if len(family.default_in_shape) == 3:
        shapes.append(((1, 28, 28), 100))
    for options in VARIANTS.get(name, [{}]):
        for depth in family.valid_depths(60)[:3]:
            for width in (1, 2, 5):
                for in_shape, classes in shapes:
                    kw = dict(in_shape=in_shape, num_classes=classes, **options)
                    assert count_params(name, width, depth, **kw) == built(name, width, depth, **kw), (
                        name, width, depth, kw)


@pytest.mark.parametrize("name", family_names())
def test_counting_a_100m_parameter_network_builds_nothing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting is a closed form: no module is built and no tensor allocated, whatever the size (a
    deterministic stand-in for "it takes milliseconds")."""
    width = 1
    while count_params(name, width) < 100_000_000:
        width *= 2

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("count_params built a module")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)
    assert count_params(name, width + 1) >= 100_000_000  # a width not counted yet (no cache can answer)
