"""Temperature scaling and CNLL by test-time cross-validation against explicit loops, a brute-force τ grid
and a scalar optimiser (float64); Proposition 1 of Lobacheva et al. by Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from ensplit.analysis.powerlaw import fit_power_law
from ensplit.errors import EnsplitError
from ensplit.metrics import (
    calibrated_nll,
    cnll_ttcv,
    ensemble_log_probs,
    nll,
    optimal_temperature,
    split_masks,
)


def _ensemble(members=3, objects=160, classes=5, seed=0, leading=()):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (objects,), generator=generator)
    logits = 2.5 * torch.randn(*leading, members, objects, classes, generator=generator, dtype=torch.float64)
    logits = logits + 2.0 * torch.nn.functional.one_hot(labels, classes)
    return torch.log_softmax(logits, -1), labels


def _loop_ensemble(member_log_probs, tau, mode):
    """Explicit loops over members and objects (numpy), one ensemble `[n, N, C]`."""
    lp = member_log_probs.numpy()
    n, objects, _ = lp.shape
    out = []
    for j in range(objects):
        if mode == "before":
            p = sum(np.exp(lp[i, j] / tau) / np.exp(lp[i, j] / tau).sum() for i in range(n)) / n
        else:
            mean = sum(np.exp(lp[i, j]) for i in range(n)) / n
            p = np.exp(np.log(mean) / tau) / np.exp(np.log(mean) / tau).sum()
        out.append(np.log(p))
    return np.array(out)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_temperature_before_and_after_averaging_match_loops(mode):
    log_probs, _ = _ensemble(members=3, objects=12, leading=(2,))
    tau = torch.tensor([0.7, 1.9], dtype=torch.float64)  # one temperature per ensemble (leading dim)
    combined = ensemble_log_probs(log_probs, tau, mode)
    assert combined.shape == (2, 12, 5)
    for e in range(2):
        np.testing.assert_allclose(combined[e].numpy(), _loop_ensemble(log_probs[e], float(tau[e]), mode),
                                   rtol=1e-12, atol=1e-12)


def test_before_and_after_agree_for_one_member_and_differ_for_several():
    log_probs, _ = _ensemble(members=1, objects=10)
    before, after = ensemble_log_probs(log_probs, 1.7, "before"), ensemble_log_probs(log_probs, 1.7, "after")
    torch.testing.assert_close(before, after)
    several, _ = _ensemble(members=3, objects=10)
    assert not torch.allclose(ensemble_log_probs(several, 1.7, "before"), ensemble_log_probs(several, 1.7, "after"))


def _half_nll(log_probs, labels, tau, mode, objects):
    combined = ensemble_log_probs(log_probs[:, objects], tau, mode)
    return -combined[..., torch.arange(len(objects)), labels[objects]].mean(-1)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_cnll_ttcv_matches_brute_force_grid(mode):
    log_probs, labels = _ensemble()
    masks = split_masks(len(labels), splits=3, seed=4)
    grid = torch.exp(torch.linspace(math.log(0.2), math.log(5.0), 2001, dtype=torch.float64))  # step 1.6e-3 in log τ
    held_out = []
    for split in range(3):
        halves = [torch.nonzero(masks[2 * split + h]).squeeze(1) for h in (0, 1)]
        for fit, measure in ((0, 1), (1, 0)):
            curve = _half_nll(log_probs, labels, grid, mode, halves[fit])  # NLL at every grid τ
            held_out.append(float(_half_nll(log_probs, labels, grid[curve.argmin()], mode, halves[measure])))
    expected = np.mean(held_out)
    # Tolerance: the grid's τ is off by up to half a step (8e-4 relative), which moves the held-out NLL by
    # |F'_other| · 8e-4 ≲ 1e-4.
    assert float(cnll_ttcv(log_probs, labels, mode, splits=3, seed=4)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_optimal_temperature_reaches_the_minimum_to_1e_4_relative(mode):
    log_probs, labels = _ensemble(leading=(2,))
    tau = optimal_temperature(log_probs, labels, mode)
    for e in range(2):
        def objective(u, e=e):
            return float(nll(ensemble_log_probs(log_probs[e], math.exp(u), mode), labels))
        reference = math.exp(minimize_scalar(objective, bounds=(-3, 3), method="bounded",
                                             options={"xatol": 1e-10}).x)
        assert float(tau[e]) == pytest.approx(reference, rel=1e-4)
        assert float(calibrated_nll(log_probs[e], labels, mode)) == pytest.approx(objective(math.log(reference)),
                                                                                  abs=1e-10)


def test_cnll_over_leading_dims_equals_separate_calls_and_is_seeded():
    log_probs, labels = _ensemble(members=2, objects=80, leading=(2, 2))
    batched = cnll_ttcv(log_probs, labels, splits=2, seed=1)
    assert batched.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            assert float(batched[i, j]) == pytest.approx(float(cnll_ttcv(log_probs[i, j], labels, splits=2, seed=1)),
                                                         abs=1e-12)
    assert float(cnll_ttcv(log_probs[0, 0], labels, splits=2, seed=2)) != float(batched[0, 0])


def test_split_masks_are_seeded_disjoint_halves():
    masks = split_masks(11, splits=4, seed=0)
    assert masks.shape == (8, 11)
    assert torch.all(masks[0::2] ^ masks[1::2]) and masks[0::2].sum(1).eq(5).all()
    assert torch.equal(masks, split_masks(11, splits=4, seed=0))
    assert not torch.equal(masks, split_masks(11, splits=4, seed=1))


def test_temperature_is_clipped_when_sharper_is_always_better():
    # Every member right with margin: NLL falls as τ → 0, so τ* is the lower end of the range (0.01).
    labels = torch.arange(4) % 2
    log_probs = torch.log_softmax(torch.nn.functional.one_hot(labels, 2).double().unsqueeze(0) * 3, -1)
    assert float(optimal_temperature(log_probs, labels)) == pytest.approx(0.01, rel=1e-6)
    assert math.isfinite(float(cnll_ttcv(log_probs, labels)))


def test_bad_mode_and_temperature():
    log_probs, labels = _ensemble(objects=10)
    with pytest.raises(EnsplitError):
        cnll_ttcv(log_probs, labels, mode="during")
    with pytest.raises(EnsplitError):
        ensemble_log_probs(log_probs, -1.0)


def test_proposition_1_by_monte_carlo():
    """i.i.d. member probabilities of the true class p ∈ [0.2, 1] with mean μ, variance σ²:
    NLL_n = −log μ + σ²/(2μ²n) + O(1/n²) (Lobacheva et al., eq. 2), measured with ensplit's own averaging."""
    draws = 20000
    mu, var = 0.2 + 0.8 * 0.5, 0.8**2 * 0.05  # p = 0.2 + 0.8·Beta(2, 2): mean 0.6, variance 0.032
    limit = var / (2 * mu**2)
    scaled_gaps = []
    beta = torch.distributions.Beta(torch.tensor(2.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64))
    for n in (4, 8, 16, 32, 64):
        with torch.random.fork_rng():  # Beta sampling uses the global generator; keep it untouched
            torch.manual_seed(n)
            p = 0.2 + 0.8 * beta.sample((n, draws))
        log_probs = torch.stack([p.log(), (1 - p).log()], -1)  # two classes, the true one first
        measured = float(nll(ensemble_log_probs(log_probs), torch.zeros(draws, dtype=torch.long)))
        # Control variate with known mean 0 removes the first-order Monte Carlo noise.
        measured += float((p.mean(0) - mu).mean() / mu)
        scaled_gaps.append(n * (measured + math.log(mu)))
    assert scaled_gaps[-1] == pytest.approx(limit, rel=0.05)  # n·(NLL_n − NLL_∞) → σ²/(2μ²)
    errors = [abs(g - limit) for g in scaled_gaps]
    assert errors[-1] < errors[0]  # the O(1/n²) remainder fades
    fit = fit_power_law([4, 8, 16, 32, 64], [g / n - math.log(mu) for g, n in zip(scaled_gaps, (4, 8, 16, 32, 64),
                                                                                      strict=True)])
    assert fit.a == pytest.approx(-1.0, abs=0.15) and fit.c == pytest.approx(-math.log(mu), abs=2e-4)
