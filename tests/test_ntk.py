"""Empirical NTK against naive loops, collegial aggregation, and Var(K_e) = Var(K)/m by Monte Carlo."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, grad, vmap

from ensplit.analysis.collegial_montecarlo import ensemble_ntk_convergence
from ensplit.analysis.ntk import (
    CollegialBottleneck,
    CollegialMLP,
    NTKConv2d,
    NTKLinear,
    ntk_diagonal,
    ntk_matrix,
    path_ntk_diagonal,
    path_ntk_matrix,
)


def _loop_diagonal(module: torch.nn.Module, inputs: torch.Tensor, readout=None) -> torch.Tensor:
    """Θ(x, x) by autograd, one example and one parameter tensor at a time."""
    out = []
    for x in inputs:
        y = module(x.unsqueeze(0))
        f = y.sum() if readout is None else readout(y)
        total = torch.zeros((), dtype=inputs.dtype)
        for p in module.parameters():
            (g,) = torch.autograd.grad(f, p, retain_graph=True)
            total = total + g.pow(2).sum()
        out.append(total)
    return torch.stack(out)


def _finite_difference_diagonal(module: torch.nn.Module, x: torch.Tensor, eps: float = 1e-6) -> float:
    """Θ(x, x) = Σ_k (∂f/∂θ_k)² with central differences, one scalar parameter at a time (float64)."""
    total = 0.0
    with torch.no_grad():
        for p in module.parameters():
            flat = p.view(-1)
            for k in range(flat.numel()):
                old = flat[k].item()
                flat[k] = old + eps
                up = module(x.unsqueeze(0)).sum().item()
                flat[k] = old - eps
                down = module(x.unsqueeze(0)).sum().item()
                flat[k] = old
                total += ((up - down) / (2 * eps)) ** 2
    return total


@pytest.mark.parametrize("paths", [1, 3])
def test_ntk_diagonal_matches_per_example_loop_mlp(paths: int) -> None:
    torch.manual_seed(0)
    module = CollegialMLP(6, 5, 3, outputs=2, paths=paths).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(ntk_diagonal(module, x), _loop_diagonal(module, x), rtol=1e-12, atol=0)
    first = lambda y: y[..., 0].sum()  # noqa: E731 - a custom scalar readout
    torch.testing.assert_close(ntk_diagonal(module, x, first), _loop_diagonal(module, x, first), rtol=1e-12, atol=0)


def test_ntk_diagonal_matches_per_example_loop_bottleneck() -> None:
    torch.manual_seed(1)
    module = CollegialBottleneck(channels=4, width=2, paths=3).double()
    x = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(ntk_diagonal(module, x), _loop_diagonal(module, x), rtol=1e-12, atol=0)


def test_ntk_diagonal_matches_finite_differences() -> None:
    torch.manual_seed(2)
    module = CollegialMLP(3, 3, 2, outputs=1, paths=2).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    theta = ntk_diagonal(module, x)
    for i in range(len(x)):
        assert theta[i].item() == pytest.approx(_finite_difference_diagonal(module, x[i]), rel=1e-6)


def test_ntk_matrix_diagonal_and_symmetry() -> None:
    torch.manual_seed(3)
    module = CollegialMLP(4, 6, 2, paths=2).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    k = ntk_matrix(module, x)
    torch.testing.assert_close(k, k.T)
    torch.testing.assert_close(torch.diagonal(k), ntk_diagonal(module, x))
    assert torch.linalg.eigvalsh(k).min() > -1e-9 * k.diagonal().max()


def test_ntk_parameterisation_scales_by_fan_in() -> None:
    torch.manual_seed(4)
    linear = NTKLinear(400, 300, gain=1.0)
    x = torch.randn(64, 400)
    # y = W x / √in with W ~ N(0, 1): Var(y) = ||x||² / in
    assert linear(x).var().item() == pytest.approx(x.pow(2).sum(1).mean().item() / 400, rel=0.05)
    conv = NTKConv2d(8, 16, 3, groups=2)
    assert conv.fan_in == 4 * 9
    assert CollegialBottleneck(256, 10, 4).path_fan_ins() == [256, 90, 10]
    assert CollegialMLP(748, 48, 5).path_fan_ins() == [748, 48, 48, 48, 48, 48]


def test_aggregated_mlp_kernel_is_mean_of_path_kernels() -> None:
    """K_e = (1/m) Σ_j K(θ_j): the (1/√m) Σ_j aggregation of block-diagonal layers."""
    torch.manual_seed(5)
    m = 4
    ensemble = CollegialMLP(5, 6, 3, outputs=2, paths=m).double()
    separate = CollegialMLP(5, 6, 3, outputs=2, paths=m, aggregate=False).double()
    separate.load_state_dict(ensemble.state_dict())
    x = torch.randn(3, 5, dtype=torch.float64)
    per_path = torch.stack([path_ntk_diagonal(separate, xi) for xi in x], 1)  # [m, N]
    torch.testing.assert_close(ntk_diagonal(ensemble, x), per_path.mean(0))
    torch.testing.assert_close(ntk_matrix(ensemble, x), path_ntk_matrix(separate, x, x).mean(0))
    # each path alone is an ordinary one-path network
    single = CollegialMLP(5, 6, 3, outputs=2, paths=1).double()
    state = {k: v.clone() for k, v in ensemble.state_dict().items()}
    j = 2
    single.load_state_dict({
        "hidden.0.weight": state["hidden.0.weight"][:, 6 * j : 6 * (j + 1)],
        **{k: v[j : j + 1] for k, v in state.items() if k != "hidden.0.weight"},
    })
    torch.testing.assert_close(ntk_diagonal(single, x), per_path[j])


def test_aggregated_bottleneck_kernel_is_mean_of_path_kernels() -> None:
    torch.manual_seed(6)
    m, n, c = 3, 2, 4
    ensemble = CollegialBottleneck(c, n, m).double()
    separate = CollegialBottleneck(c, n, m, aggregate=False).double()
    state = dict(ensemble.state_dict())
    dense = state.pop("expand.weight")  # [C, m·n, 1, 1] -> per path [C, n] blocks stacked: [m·C, n, 1, 1]
    state["expand.weight"] = torch.cat([dense[:, n * j : n * (j + 1)] for j in range(m)], 0)
    separate.load_state_dict(state)
    x = torch.randn(c, 3, 3, dtype=torch.float64)
    expected = path_ntk_diagonal(separate, x).mean()
    assert ntk_diagonal(ensemble, x[None])[0].item() == pytest.approx(expected.item(), rel=1e-12)


def test_path_ntk_needs_separate_paths() -> None:
    with pytest.raises(ValueError):
        path_ntk_diagonal(CollegialMLP(2, 3, 1, paths=2), torch.randn(2))


def _variance_and_stderr(samples: torch.Tensor) -> tuple[float, float]:
    """Sample variance and its standard error sqrt((μ4 − σ⁴)/S) (no normality assumed)."""
    centred = samples.double() - samples.double().mean()
    var = centred.pow(2).mean().item()
    return var, math.sqrt(max(centred.pow(4).mean().item() - var**2, 0.0) / len(samples))


def _ensemble_diagonals(module: torch.nn.Module, x: torch.Tensor, draws: int) -> torch.Tensor:
    """K_e(x, x) of `draws` fresh N(0, 1) initialisations of one aggregated module, vmapped over draws."""
    params = {k: torch.randn(draws, *p.shape) for k, p in module.named_parameters()}
    f = lambda p, x: functional_call(module, p, (x[None],)).sum()  # noqa: E731
    grads = vmap(grad(f), in_dims=(0, None))(params, x)
    return sum(g.flatten(1).pow(2).sum(1) for g in grads.values())


def test_ensemble_kernel_variance_shrinks_as_one_over_m() -> None:
    """Var(K_e) ≈ Var(K)/m (seed 004 eq. 11), from aggregated m-path modules vs single networks."""
    torch.manual_seed(7)
    m, width, layers, dim = 8, 8, 2, 8
    x = torch.randn(dim)
    single = torch.cat([path_ntk_diagonal(CollegialMLP(dim, width, layers, paths=2000, aggregate=False), x)
                        for _ in range(2)]).detach()
    ensembles = _ensemble_diagonals(CollegialMLP(dim, width, layers, paths=m), x, 600)
    var_1, se_1 = _variance_and_stderr(single)
    var_e, se_e = _variance_and_stderr(ensembles)
    ratio = m * var_e / var_1
    ratio_se = ratio * math.hypot(se_e / var_e, se_1 / var_1)
    # 600 ensembles give the ratio to ~10%: enough to tell 1/m (ratio 1) from 1/√m (ratio √8 ≈ 2.8)
    assert ratio_se < 0.2
    assert abs(ratio - 1.0) < 4 * ratio_se
    # the mean kernel does not depend on m (Lemma 1)
    mean_se = math.hypot(math.sqrt(var_e / len(ensembles)), math.sqrt(var_1 / len(single)))
    assert abs(ensembles.mean().item() - single.mean().item()) < 4 * mean_se


def test_ensemble_ntk_converges_to_mean_kernel() -> None:
    check = ensemble_ntk_convergence(width=16, hidden_layers=2, members=(1, 16), angles=9, mean_samples=256,
                                     repeats=6, seed=0)
    assert len(check.kernels) == 2 and len(check.mean_kernel) == 9
    # expected ratio 1/√16 = 1/4; allow Monte Carlo slack
    assert check.deviation[1] < 0.5 * check.deviation[0]
