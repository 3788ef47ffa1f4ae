"""The collegial designer reproduces the optima of seed 004 (science.md §5) from the stated conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ensplit.analysis.collegial import (
    BottleneckBaseline,
    MLPBaseline,
    design_curves,
    integer_members,
    solve,
)
from ensplit.analysis.collegial_montecarlo import fit_alpha, fit_line_through_origin, log_moment_ratio
from ensplit.analysis.ntk import CollegialBottleneck, CollegialMLP
from ensplit.analysis.resnext29 import count_resnext29, flops_resnext29, whole_network_design
from ensplit.errors import EnsplitError

FC = MLPBaseline(input_dim=748, width=500, hidden_layers=5, outputs=1, bias=False)
BLOCK = BottleneckBaseline(channels=256, width=128)


@pytest.mark.parametrize("alpha_times_5", [18.1, 18.2, 18.3])
def test_fully_connected_optima(alpha_times_5: float) -> None:
    primal = solve(FC, alpha_times_5 / 5, "primal")
    dual = solve(FC, alpha_times_5 / 5, "dual")
    assert primal.width == dual.width == 48
    assert primal.members == pytest.approx(30.4, abs=0.05)
    assert primal.efficiency == pytest.approx(1.0)
    assert dual.members == pytest.approx(12.4, abs=0.06)
    assert dual.efficiency == pytest.approx(2.45, abs=0.01)
    assert dual.variance == pytest.approx(dual.baseline_variance)


def test_fully_connected_counts_come_from_the_mlp_family() -> None:
    from ensplit.models import count_params, create

    for n in (1, 48, 500):
        assert FC.path_cost(n, "params") == 748 * n + 4 * n * n + n
        assert FC.path_cost(n, "params") == count_params("mlp", width=n, depth=5, in_shape=(748,), num_classes=1,
                                                         bias=False)
    model = create("mlp", width=48, depth=5, in_shape=(748,), num_classes=1, bias=False)
    assert sum(p.numel() for p in model.parameters()) == 748 * 48 + 4 * 48**2 + 48
    assert FC.baseline_cost("params") == 1_374_500
    assert float(FC.variance_sum(50)) == pytest.approx(0.1)


def test_bottleneck_optima() -> None:
    primal = solve(BLOCK, 1.60, "primal")
    dual = solve(BLOCK, 1.60, "dual")
    assert primal.width == dual.width == 10
    assert dual.members == pytest.approx(9.9, abs=0.05)
    assert dual.efficiency == pytest.approx(3.3, abs=0.05)
    assert integer_members(dual) == 10
    assert integer_members(primal) == math.floor(primal.members)


def _plain_block(channels: int, cardinality: int, n: int) -> nn.Module:
    w = cardinality * n
    return nn.Sequential(nn.Conv2d(channels, w, 1, bias=False), nn.BatchNorm2d(w),
                         nn.Conv2d(w, w, 3, padding=1, groups=cardinality, bias=False), nn.BatchNorm2d(w),
                         nn.Conv2d(w, channels, 1, bias=False), nn.BatchNorm2d(channels))


def test_bottleneck_counts_and_fan_ins() -> None:
    for n in (1, 10, 128):
        assert BLOCK.path_cost(n, "params") == 9 * n * n + 516 * n + 512
        assert BLOCK.block_params(1, n) == sum(p.numel() for p in _plain_block(256, 1, n).parameters())
        assert float(BLOCK.variance_sum(n)) == pytest.approx(1 / 256 + 1 / (9 * n) + 1 / n)
    assert BLOCK.block_params(37, 10) == sum(p.numel() for p in _plain_block(256, 37, 10).parameters())
    assert BottleneckBaseline(64, 8, paths=4).baseline_cost("params") == sum(
        p.numel() for p in _plain_block(64, 4, 8).parameters())


def test_primal_and_dual_share_the_optimal_width() -> None:
    """Strong duality (seed 004 §3): n_d = n_p for any α and baseline."""
    for alpha in (0.5, 1.6, 4.0):
        for baseline in (FC, BLOCK, MLPBaseline(40, 256, 2, 10, True), BottleneckBaseline(64, 32, 2)):
            assert solve(baseline, alpha, "primal").width == solve(baseline, alpha, "dual").width


def test_curves_are_consistent() -> None:
    curves = design_curves(BLOCK, 1.6)
    n = np.asarray(curves.widths)
    assert n[0] == 1 and n[-1] == 128
    # at n = ñ with one path: one member, the baseline's own variance and efficiency 1
    assert curves.primal_members[-1] == pytest.approx(1.0)
    assert curves.dual_members[-1] == pytest.approx(1.0)
    assert curves.dual_efficiency[-1] == pytest.approx(1.0)
    assert curves.primal_variance[-1] == pytest.approx(curves.baseline_variance)


def test_whole_network_resnext29() -> None:
    assert count_resnext29(8, 64) == 34_426_698      # "34.4M" (Xie et al., CIFAR-10)
    assert count_resnext29(16, 64) == 68_155_210     # "68.1M"
    design = whole_network_design(10, baseline_cardinality=1, baseline_bottleneck_width=128)
    assert design.name == "37x10d"
    assert design.baseline_params == count_resnext29(1, 128) == 13_775_178
    assert design.params <= design.baseline_params < count_resnext29(38, 10)
    assert whole_network_design(10, 1, 128, num_classes=100).cardinality == 37
    assert whole_network_design(10, 1, 128, cardinality=10).params == count_resnext29(10, 10)


@pytest.mark.parametrize(("cardinality", "width"), [(1, 128), (37, 10), (8, 64)])
def test_resnext29_count_matches_the_resnext_family(cardinality: int, width: int) -> None:
    from ensplit.models import count_params, family_names

    if "resnext" not in family_names():
        pytest.skip("the resnext family is not registered yet")
    for classes in (10, 100):
        assert count_resnext29(cardinality, width, classes) == count_params(
            "resnext", width=width, depth=29, num_classes=classes, cardinality=cardinality)


@pytest.mark.parametrize(("cardinality", "width", "classes"), [(1, 128, 10), (37, 10, 10), (8, 64, 100), (50, 7, 10)])
def test_resnext29_flops_match_the_flop_counter(cardinality: int, width: int, classes: int) -> None:
    from ensplit.models.scaling import flops_per_example  # FlopCounterMode on a meta-device build

    assert flops_resnext29(cardinality, width, classes) == flops_per_example(
        "resnext", width, 29, cardinality=cardinality, num_classes=classes)


def test_whole_network_by_flops() -> None:
    budget = flops_resnext29(1, 128)
    design = whole_network_design(7, 1, 128, cost="flops")
    brute = max(c for c in range(1, 300) if flops_resnext29(c, 7) <= budget)
    assert (design.cardinality, design.cost, design.baseline_flops) == (brute, "flops", budget)
    assert design.flops == flops_resnext29(brute, 7) <= budget < flops_resnext29(brute + 1, 7)
    assert design.efficiency == pytest.approx(budget / design.flops)
    assert design.params == count_resnext29(brute, 7)
    # the parameter design of the paper's n = 10 (37x10d) costs more FLOPs than 1x128d: FLOPs give fewer paths
    by_flops = whole_network_design(10, 1, 128, cost="flops").cardinality
    assert by_flops < 37 == whole_network_design(10, 1, 128).cardinality
    with pytest.raises(EnsplitError):
        whole_network_design(10, 1, 128, cost="time")  # type: ignore[arg-type]


def test_flops_formulas_match_the_flop_counter() -> None:
    for n in (3, 48):
        with FlopCounterMode(display=False) as counter:
            CollegialMLP(748, n, 5, outputs=1)(torch.randn(1, 748))
        assert counter.get_total_flops() == FC.path_cost(n, "flops")
    spatial = BottleneckBaseline(256, 128, spatial=4)
    for n in (2, 10):
        with FlopCounterMode(display=False) as counter:
            CollegialBottleneck(256, n, 1)(torch.randn(1, 256, 4, 4))
        assert counter.get_total_flops() == spatial.path_cost(n, "flops")


def test_flops_variant() -> None:
    design = solve(BLOCK, 1.6, "dual", cost="flops")
    assert design.cost == "flops"
    assert design.baseline_cost == round(float(BLOCK.path_cost(128, "flops")))
    # no batch-norm parameters in the FLOPs: a smaller optimal width than with parameters
    assert design.width < solve(BLOCK, 1.6, "dual").width


def test_bad_inputs_raise() -> None:
    with pytest.raises(EnsplitError):
        solve(BLOCK, 0.0)
    with pytest.raises(EnsplitError):
        solve(BLOCK, float("nan"))
    with pytest.raises(EnsplitError):
        solve(BLOCK, 1.6, objective="both")  # type: ignore[arg-type]
    with pytest.raises(EnsplitError):
        solve(BLOCK, 1.6, cost="time")  # type: ignore[arg-type]
    with pytest.raises(EnsplitError):
        fit_alpha(BLOCK, widths=(4,), samples=100)


def test_line_through_origin() -> None:
    x = np.array([0.1, 0.2, 0.5, 1.0])
    slope, stderr = fit_line_through_origin(x, 1.55 * x)
    assert slope == pytest.approx(1.55) and stderr == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    noisy = [fit_line_through_origin(x, 1.55 * x + rng.normal(0, 0.05, 4)) for _ in range(400)]
    slopes, errors = np.array(noisy).T
    # the reported SE matches the spread of the slopes (σ/√Σx² = 0.0429)
    assert slopes.mean() == pytest.approx(1.55, abs=0.01)
    assert slopes.std() == pytest.approx(0.05 / math.sqrt(x @ x), rel=0.15)
    assert np.median(errors) == pytest.approx(slopes.std(), rel=0.3)


def test_log_moment_ratio_of_a_known_distribution() -> None:
    # Θ ~ Exponential: E[Θ²]/E[Θ]² = 2
    theta = torch.distributions.Exponential(1.0).sample((200_000,))
    value, stderr = log_moment_ratio(theta)
    assert value == pytest.approx(math.log(2), abs=4 * stderr)
    assert 0 < stderr < 0.02


def test_small_seeded_alpha_fit_for_the_bottleneck() -> None:
    fit = fit_alpha(BLOCK, widths=(4, 8, 16), samples=300, seed=0)
    assert fit.widths == (4, 8, 16) and len(fit.log_ratio) == 3
    # 300 draws per width: the slope is known to about ±0.15; the benchmark (2000 draws) gives ≈ 1.53
    assert 1.0 < fit.alpha < 2.1
    again = fit_alpha(BLOCK, widths=(4, 8, 16), samples=300, seed=0)
    assert again.alpha == fit.alpha
