"""NLL at a fixed temperature, its power laws and LE-NLL, against plain float64 loops over ensembles."""

import math

import numpy as np
import pytest
import torch

from ensplit.analysis.fixed_temperature import TemperatureScorer, lower_envelope_nll
from ensplit.analysis.powerlaw import fit_power_law
from ensplit.analysis.temperature_laws import temperature_laws
from ensplit.metrics import disjoint_ensembles, pool_curve, split_masks
from synthetic import synthetic_pool


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def naive_ensemble_nll(members: np.ndarray, labels: np.ndarray, tau: float, mode: str, objects=None) -> float:
    """NLL of one ensemble (member log-probs `[n, N, C]`) at τ, member by member and object by object."""
    objects = range(members.shape[1]) if objects is None else objects
    total = 0.0
    for i in objects:
        if mode == "before":
            p = sum(_softmax(members[m, i] / tau) for m in range(members.shape[0])) / members.shape[0]
        else:
            mean = sum(np.exp(members[m, i]) for m in range(members.shape[0])) / members.shape[0]
            p = _softmax(np.log(mean) / tau)
        total -= math.log(p[labels[i]])
    return total / len(objects)


def naive_pooled_nll(pool: np.ndarray, labels: np.ndarray, ensembles: np.ndarray, tau: float, mode: str,
                     objects=None) -> float:
    """NLL_n(τ): the mean over the given ensembles `[E, n]` of their NLL at τ."""
    return float(np.mean([naive_ensemble_nll(pool[e], labels, tau, mode, objects) for e in ensembles]))


@pytest.fixture(scope="module")
def small_pool():
    pool, labels = synthetic_pool(12, objects=40, classes=4, noise=1.2, seed=3, data_seed=17)
    return pool, labels


@pytest.mark.parametrize("mode", ["before", "after"])
def test_nll_at_a_fixed_temperature_matches_a_loop(small_pool, mode):
    pool, labels = small_pool
    sets = [disjoint_ensembles(12, n) for n in (1, 2, 3, 4)]
    scorer = TemperatureScorer(pool, labels, sets, mode)
    objects = torch.arange(5, 30)
    for tau in (0.3, 1.0, 2.7):
        got = scorer.nll(tau).numpy()
        got_subset = scorer.nll(tau, objects=objects).numpy()
        for k, ensembles in enumerate(sets):
            want = naive_pooled_nll(pool.numpy(), labels.numpy(), ensembles.numpy(), tau, mode)
            assert got[k] == pytest.approx(want, abs=1e-12)
            want = naive_pooled_nll(pool.numpy(), labels.numpy(), ensembles.numpy(), tau, mode, objects.tolist())
            assert got_subset[k] == pytest.approx(want, abs=1e-12)


def _pooled_on(pool, labels, ensembles, tau, mode, objects) -> float:
    """The pooled NLL on some objects: a loop over ensembles, vectorised over objects only."""
    values = []
    for e in ensembles:
        members = pool[e][:, objects]
        if mode == "before":
            p = _softmax(members / tau).mean(0)
        else:
            p = _softmax(np.log(np.exp(members).mean(0)) / tau)
        values.append(-np.log(p[np.arange(len(objects)), labels[objects]]).mean())
    return float(np.mean(values))


def _brute_force_le_nll(pool, labels, ensembles, mode, splits):
    """LE-NLL_n by brute force: per half, an 801-point grid of log τ ∈ [log 0.05, log 20], then a 201-point grid
    inside the best cells (spacing 7.5e-5 in log τ); the held-out NLL is the object-by-object loop."""
    masks = split_masks(pool.shape[1], splits, 0).numpy()
    halves = [np.nonzero(m)[0] for m in masks]
    taus, held_out, in_sample = [], [], []
    for h, objects in enumerate(halves):
        coarse = np.linspace(math.log(0.05), math.log(20.0), 801)
        values = [_pooled_on(pool, labels, ensembles, math.exp(g), mode, objects) for g in coarse]
        best = int(np.argmin(values))
        fine = np.linspace(coarse[max(best - 1, 0)], coarse[min(best + 1, 800)], 201)
        values = [_pooled_on(pool, labels, ensembles, math.exp(g), mode, objects) for g in fine]
        taus.append(math.exp(fine[int(np.argmin(values))]))
        in_sample.append(min(values))
        held_out.append(naive_pooled_nll(pool, labels, ensembles, taus[-1], mode, halves[h ^ 1].tolist()))
    return float(np.mean(held_out)), np.array(taus), np.array(in_sample)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_le_nll_matches_a_brute_force_temperature_grid(small_pool, mode):
    pool, labels = small_pool
    sets = [disjoint_ensembles(12, n) for n in (1, 3, 4)]
    scorer = TemperatureScorer(pool, labels, sets, mode)
    envelope = lower_envelope_nll(scorer, splits=2, seed=0)
    masks = split_masks(pool.shape[1], 2, 0)
    for k, ensembles in enumerate(sets):
        want, taus, in_sample = _brute_force_le_nll(pool.numpy(), labels.numpy(), ensembles.numpy(), mode, 2)
        got_taus = envelope.tau[k].reshape(-1)
        # τ to the brute force's grid resolution; the minimum itself to second order (≤, up to rounding)
        assert got_taus == pytest.approx(taus, rel=2e-4)
        for h, tau in enumerate(got_taus):
            objects = torch.nonzero(masks[h]).squeeze(1)
            assert float(scorer.nll(float(tau), sets=[k], objects=objects)[0]) <= in_sample[h] + 1e-12
        assert envelope.le_nll[k] == pytest.approx(want, abs=2e-6)


def test_nll_tau_fits_match_fits_of_loop_values_and_tau_one_is_the_uncalibrated_nll(small_pool):
    pool, labels = small_pool
    curve = pool_curve(pool, labels, splits=2)
    n = [e.n for e in curve]
    taus = (0.5, 1.0, 2.0)
    laws = temperature_laws(pool, labels, 123, n, taus, splits=2)
    assert list(laws.n) == n == [1, 2, 3, 4]
    for t, tau in enumerate(taus):
        naive = [naive_pooled_nll(pool.numpy(), labels.numpy(), disjoint_ensembles(12, k).numpy(), tau, "before")
                 for k in n]
        assert laws.nll[:, t] == pytest.approx(naive, abs=1e-12)
        want = fit_power_law(n, naive)
        got = laws.fits[t]
        assert (got.a, got.b, got.c) == pytest.approx((want.a, want.b, want.c), rel=1e-7, abs=1e-9)
    assert laws.nll[:, 1] == pytest.approx([e.mean["nll"] for e in curve], abs=1e-12)
    tau_star, c_star = laws.optimum
    assert c_star == min(f.c for f in laws.fits) and tau_star in taus
    assert laws.optimum_at_edge == (tau_star in (0.5, 2.0))


def test_le_nll_is_close_to_cnll_and_fits_need_three_sizes(small_pool):
    pool, labels = small_pool
    curve = pool_curve(pool[:8], labels, splits=2)
    laws = temperature_laws(pool[:8], labels, 1, [e.n for e in curve], (1.0, 2.0), splits=2)
    assert list(laws.n) == [1, 2] and laws.fits == (None, None) and laws.optimum is None
    cnll = np.array([e.mean["cnll"] for e in curve])
    # n = 1 and 2 of one pool: the pooled and the per-ensemble temperature differ, but only slightly
    assert np.abs(laws.le_nll - cnll).max() < 0.05
