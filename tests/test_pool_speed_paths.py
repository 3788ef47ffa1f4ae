"""The fast paths of pool CNLL against plain loops (float64): block sums over the disjoint ensembles' common
order, averaged probabilities computed once, the after-averaging shared-point search, and the before-averaging
ensemble losses in probability space (with their underflow fallbacks)."""

import itertools
import math

import pytest
import torch

from ensplit.metrics import (
    classification_metrics,
    cnll_ttcv,
    disjoint_ensembles,
    ensemble_log_probs,
    mean_log_probs,
    optimal_temperature,
    pool_curve,
    split_masks,
)
from ensplit.metrics.averaging import MemberSums, average_ensembles
from ensplit.metrics.temperature_after import fit_after_averaging
from ensplit.metrics.temperature_search import grid_objective, minimise_temperature


def _pool(networks=12, objects=300, classes=5, seed=0, spread=2.0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (objects,), generator=generator)
    signal = torch.randn(objects, classes, generator=generator, dtype=torch.float64)
    signal += 1.5 * torch.nn.functional.one_hot(labels, classes)
    noise = torch.randn(networks, objects, classes, generator=generator, dtype=torch.float64)
    return torch.log_softmax(spread * (signal + noise), -1), labels


def _curve_sets(pool_size):
    return [disjoint_ensembles(pool_size, n, seed=3) for n in range(1, pool_size + 1)]


def test_block_sums_equal_member_sums_and_other_sets_take_the_plain_path():
    table = torch.rand(12, 4, 7, dtype=torch.float64)
    blocks = MemberSums(_curve_sets(12), 12)
    assert blocks.order is not None  # every ensemble is a run of one permutation
    expected = torch.cat([table[ix].sum(1) for ix in _curve_sets(12)])
    torch.testing.assert_close(blocks(table), expected, rtol=1e-14, atol=0)
    mean = blocks.class_major(table, mean=True)  # [C, E, X]
    sizes = torch.cat([torch.full((len(ix),), ix.shape[1]) for ix in _curve_sets(12)]).double()
    torch.testing.assert_close(mean, (expected / sizes.view(-1, 1, 1)).transpose(0, 1), rtol=1e-14, atol=0)
    overlapping = [torch.tensor(list(itertools.combinations(range(5), n))) for n in (1, 2, 3)]
    plain = MemberSums(overlapping, 12)
    assert plain.order is None
    torch.testing.assert_close(plain(table), torch.cat([table[ix].sum(1) for ix in overlapping]), rtol=1e-14, atol=0)


def _with_hard_cases(pool, labels):
    pool = pool.clone()
    pool[0, :4] = torch.log_softmax(torch.tensor([0.0, -900.0, 0.0, 0.0, 0.0], dtype=torch.float64), -1)
    pool[:, 5, 1] = -800.0  # every member: sum of probabilities underflows float64 for that class
    pool[:, 5] = torch.log_softmax(pool[:, 5], -1)
    pool[:, 6] = math.log(1 / pool.shape[2])  # constant output: every class tied, argmax takes class 0
    pool[3, 7, labels[7]] = -math.inf  # probability exactly 0
    pool[3, 7] = torch.log_softmax(pool[3, 7], -1)
    return pool


@pytest.mark.parametrize("sets", ["curve", "overlapping"])
def test_averaged_metrics_equal_classification_metrics_of_each_ensemble(sets):
    pool, labels = _pool()
    pool = _with_hard_cases(pool, labels)
    index_sets = (_curve_sets(12) if sets == "curve"
                  else [torch.tensor(list(itertools.combinations(range(6), n))) for n in (1, 2, 4)])
    sums = MemberSums(index_sets, 12)
    for keep_gaps in (False, True):
        averaged = average_ensembles(pool, labels, sums, keep_gaps=keep_gaps)
        for name in ("accuracy", "nll", "brier", "ece"):
            expected = torch.cat([classification_metrics(ensemble_log_probs(pool[ix]), labels)[name]
                                  for ix in index_sets])
            torch.testing.assert_close(averaged.metrics[name], expected, rtol=0, atol=1e-11)
    log_mean = torch.cat([mean_log_probs(pool[ix]) for ix in index_sets]).clamp(min=-1e4)
    gaps = torch.cat(averaged.gaps.chunks, 2)
    torch.testing.assert_close(gaps, (log_mean - log_mean.amax(-1, keepdim=True)).permute(2, 0, 1),
                               rtol=0, atol=1e-10)


def _newton_after(log_mean, labels, masks):
    """The plain way: per ensemble and mask, safeguarded Newton on F'(β) (F convex in β), β in [0.01, 100];
    returns log τ [E, H] and F of every mask there [E, H, H]."""
    z = log_mean.clamp(min=-1e4)

    def stats(e, beta, mask):
        scaled = z[e, mask] * beta
        y = labels[mask]
        q = torch.softmax(scaled, -1)
        first = (q * z[e, mask]).sum(-1)
        value = (torch.logsumexp(scaled, -1) - scaled[torch.arange(len(y)), y]).mean()
        slope = (first - z[e, mask][torch.arange(len(y)), y]).mean()
        curvature = ((q * z[e, mask] ** 2).sum(-1) - first**2).mean()
        return float(value), float(slope), float(curvature)

    log_tau = torch.empty(len(z), len(masks), dtype=torch.float64)
    values = torch.empty(len(z), len(masks), len(masks), dtype=torch.float64)
    for e in range(len(z)):
        for h, mask in enumerate(masks):
            low, high, beta = 0.01, 100.0, 1.0
            for _ in range(60):
                _, slope, curvature = stats(e, beta, mask)
                low, high = (beta, high) if slope < 0 else (low, beta)
                step = beta - slope / curvature if curvature > 0 else math.nan
                beta = step if low < step < high else (low + high) / 2
            if stats(e, 0.01, mask)[1] > 0:
                beta = 0.01
            elif stats(e, 100.0, mask)[1] < 0:
                beta = 100.0
            log_tau[e, h] = -math.log(beta)
            for k, other in enumerate(masks):
                values[e, k, h] = stats(e, beta, other)[0]
    return log_tau, values


@pytest.mark.parametrize("spread", [0.3, 2.0, 12.0])  # τ* far above 1, near 1, far below 1
def test_after_averaging_search_equals_newton_per_ensemble_and_half(spread):
    pool, labels = _pool(networks=6, objects=160, spread=spread, seed=1)
    index_sets = [disjoint_ensembles(6, n, seed=0) for n in (1, 2, 3)]
    masks = split_masks(160, splits=2, seed=5)
    averaged = average_ensembles(pool, labels, MemberSums(index_sets, 6), keep_gaps=True)
    log_tau, values = fit_after_averaging(averaged.gaps, masks)
    log_mean = torch.cat([mean_log_probs(pool[ix]) for ix in index_sets])
    expected_tau, expected_values = _newton_after(log_mean, labels, masks)
    # Quintic Hermite interpolation on cells of at most 10% in β: ~1e-10 here.
    torch.testing.assert_close(log_tau, expected_tau, rtol=0, atol=1e-7)
    torch.testing.assert_close(values, expected_values, rtol=0, atol=1e-9)


def test_after_averaging_search_equals_the_grid_search_it_replaces():
    """Same seeds, same halves: the grid search (still the before-averaging search; after averaging it is
    the one-member case on log p̄) gives the same CNLL within 1e-6."""
    pool, labels = _pool(networks=16, objects=1000)
    index_sets = _curve_sets(16)
    masks = split_masks(1000, splits=5, seed=2)
    averaged = average_ensembles(pool, labels, MemberSums(index_sets, 16), keep_gaps=True)
    _, values = fit_after_averaging(averaged.gaps, masks)
    log_mean = torch.cat([mean_log_probs(pool[ix]) for ix in index_sets])
    (_, grid_values), = minimise_temperature(log_mean, labels, [torch.arange(len(log_mean)).unsqueeze(1)], masks)
    partner, fitted = torch.arange(10) ^ 1, torch.arange(10)
    torch.testing.assert_close(values[:, partner, fitted].mean(1), grid_values[:, partner, fitted].mean(1),
                               rtol=0, atol=1e-6)


def test_after_averaging_clips_at_the_range_ends():
    labels = torch.arange(8) % 2
    sharp = torch.log_softmax(torch.nn.functional.one_hot(labels, 2).double().unsqueeze(0) * 3, -1)
    assert float(optimal_temperature(sharp, labels, mode="after")) == pytest.approx(0.01, rel=1e-9)
    coin = torch.log_softmax(torch.zeros(1, 8, 2, dtype=torch.float64), -1)
    coin[0, :, 0] += 1e-3  # nearly uniform, wrong half the time: flatter is always better
    coin = torch.log_softmax(coin, -1)
    assert float(optimal_temperature(coin, labels, mode="after")) == pytest.approx(100.0, rel=1e-9)
    assert math.isfinite(float(cnll_ttcv(sharp, labels, mode="after")))


def _plain_grid_objective(pool, labels, index_sets, masks, u):
    """Per ensemble, grid point and mask: F and dF/du from member log-softmax and a log-sum-exp over the
    members, dF/du by autograd."""
    values, slopes = [], []
    for index in index_sets:
        for members in index:
            per_point_value, per_point_slope = [], []
            for point in u:
                point = point.clone().requires_grad_(True)
                member = torch.log_softmax(pool[members].clamp(min=-1e4) * torch.exp(-point), -1)
                true = member[:, torch.arange(len(labels)), labels]
                loss = math.log(len(members)) - torch.logsumexp(true, 0)  # [N]
                per_mask = torch.stack([loss[mask].mean() for mask in masks])
                grads = [torch.autograd.grad(v, point, retain_graph=True)[0] for v in per_mask]
                per_point_value.append(per_mask.detach())
                per_point_slope.append(torch.stack(grads))
            values.append(torch.stack(per_point_value, 1))
            slopes.append(torch.stack(per_point_slope, 1))
    return torch.stack(values), torch.stack(slopes)


def test_before_averaging_grid_objective_equals_a_plain_loop_including_underflow():
    pool, labels = _pool(networks=6, objects=40, spread=6.0, seed=2)
    pool[2, :10, :] = torch.log_softmax(pool[2, :10] * 30, -1)  # far below the pool's best at small τ
    index_sets = [disjoint_ensembles(6, n, seed=1) for n in (1, 2, 3)]
    masks = split_masks(40, splits=1, seed=0)
    u = torch.tensor([math.log(0.01), math.log(0.05), -0.3, 0.0, 0.4, math.log(100.0)], dtype=torch.float64)
    objective = grid_objective(pool, labels, MemberSums(index_sets, 6), masks, u)
    expected_value, expected_slope = _plain_grid_objective(pool, labels, index_sets, masks, u)
    torch.testing.assert_close(objective.value, expected_value, rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(objective.slope, expected_slope, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_pool_curve_cnll_equals_cnll_of_each_ensemble(mode):
    pool, labels = _pool(networks=8, objects=200)
    curve = pool_curve(pool, labels, min_ensembles=1, mode=mode, splits=2, seed=4)
    for estimate in curve:
        each = [float(cnll_ttcv(pool[ix], labels, mode, splits=2, seed=4))
                for ix in disjoint_ensembles(8, estimate.n, seed=4)]
        assert estimate.mean["cnll"] == pytest.approx(sum(each) / len(each), abs=1e-10)
