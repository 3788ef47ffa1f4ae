"""Subspace samplers: Monte Carlo mean and covariance against the stated ones."""

from __future__ import annotations

import pytest
import torch

from ensplit.analysis.subspace import DiagonalGaussian, DropoutSampler, LowRankGaussian, random_directions
from ensplit.ensembles import build_member
from ensplit.ensembles.states import flatten_state, parameter_names

SAMPLES = 20_000


def _tiny():
    model = build_member("mlp", 3, width=3, depth=2, in_shape=(4,), num_classes=3)  # 57 parameters
    return model, flatten_state(model.state_dict(), parameter_names(model))


def _samplers():
    model, center = _tiny()
    g = torch.Generator().manual_seed(0)
    tail = center + 0.1 * torch.randn(6, center.numel(), generator=g, dtype=torch.float64)
    return {
        "diagonal": (DiagonalGaussian.from_tail(center, tail), 2.0),
        "low-rank": (LowRankGaussian.from_tail(center, tail, rank=3), 1.5),
        "random": (random_directions(center, 4, g), 0.3),
        "dropout": (DropoutSampler.for_model(center, model), 0.3),
    }


@pytest.mark.parametrize("name", ["diagonal", "low-rank", "random", "dropout"])
def test_sampler_mean_and_covariance_match_monte_carlo(name):
    sampler, scale = _samplers()[name]
    x = sampler.sample(scale, SAMPLES, torch.Generator().manual_seed(1))
    mean, cov = sampler.mean(), sampler.covariance(scale)
    # Mean: each coordinate's error has standard error sqrt(var / n); 5 standard errors over ~60
    # coordinates fails by chance with probability < 1e-4.
    se_mean = (torch.diagonal(cov) / SAMPLES).sqrt()
    assert ((x.mean(0) - mean).abs() <= 5 * se_mean + 1e-12).all()
    # Covariance: entry (i, j) is a mean of n products d_i d_j whose standard error we estimate from the
    # same samples; 6 standard errors over ~3,000 entries keeps the chance failure rate < 1e-5.
    d = x - mean
    cov_hat = d.T @ d / SAMPLES
    second = (d**2).T @ (d**2) / SAMPLES  # E[d_i² d_j²]: the variance of a product is this minus cov²
    se_cov = ((second - cov_hat**2).clamp(min=0) / SAMPLES).sqrt()
    assert ((cov_hat - cov).abs() <= 6 * se_cov + 1e-12).all()
    assert cov.abs().sum() > 0


def test_low_rank_from_tail_is_the_tail_covariance_at_full_rank():
    _, center = _tiny()
    tail = center + torch.randn(5, center.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sampler = LowRankGaussian.from_tail(center, tail, rank=10)  # rank capped at T - 1 = 4
    assert sampler.factor.shape[1] == 4
    torch.testing.assert_close(sampler.covariance(1.0), torch.cov(tail.T))
    diag = DiagonalGaussian.from_tail(center, tail)
    torch.testing.assert_close(torch.diagonal(diag.covariance(1.0)), torch.diagonal(torch.cov(tail.T)))


def test_random_directions_scale_is_relative_displacement():
    _, center = _tiny()
    sampler = random_directions(center, 5, torch.Generator().manual_seed(3))
    x = sampler.sample(0.1, 4000, torch.Generator().manual_seed(4))
    ratio = ((x - center).norm(dim=1) ** 2).mean().sqrt() / center.norm()
    assert abs(ratio.item() - 0.1) < 0.005  # RMS displacement: chi-square(5) mean, 4,000 draws


def test_dropout_masks_whole_hidden_units_only():
    model, center = _tiny()
    sampler = DropoutSampler.for_model(center, model)
    assert sampler.units == 3 + 3  # inputs of the second hidden layer and of the head; not the data
    x = sampler.sample(0.5, 50, torch.Generator().manual_seed(5))
    first = model.body[0].weight.numel() + model.body[0].bias.numel()
    torch.testing.assert_close(x[:, :first], center[:first].expand(50, -1))  # first layer never masked
    head = x[:, -(3 * 3 + 3) : -3].view(50, 3, 3)  # head weight [out, in]: a column is one unit
    zero_columns = (head == 0).all(1)
    assert ((head == 0).any(1) == zero_columns).all() and zero_columns.any()
