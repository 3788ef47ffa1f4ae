"""Batched search of the NLL-optimal temperature, shared by many ensembles of one pool (science.md §1).

Objective: for ensemble e (member index set) and object subset h (a 0/1 mask over objects),
F_eh(u) = mean_{j∈h} −log((1/n) Σ_{i∈e} softmax(ℓ_ij e^{−u})_{y_j}),  u = log τ  (temperature *before*
averaging; *after* averaging it is the n = 1 case on the averaged log-probabilities, which
temperature_after.py solves faster using the convexity in 1/τ).

Why a grid and not an optimiser per ensemble: the costly part, a softmax over classes per member, object
and τ, depends only on the member, not on the ensemble. So it is computed once per pool member on a grid of
u (with its exact derivative), and every ensemble, object subset and ensemble size reuses it:
1. coarse grid over τ ∈ [1e-2, 1e2] (37 points, step 0.256 in u): exact F and F' for all (e, h);
   the minimising cell is the grid argmin, on the side where F' changes sign;
2. those cells refined 8× (step 0.032): exact F and F' again;
3. inside the bracketing fine cell, cubic Hermite interpolation of (F, F') and bisection on its
   derivative (40 steps) locate u*. Interpolation error is O(h⁴) ≈ 1e-9 in F and well under 1e-4
   relative in τ; the tests check both against a brute-force scan and a scalar optimiser.
τ at the range ends is clipped there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ensplit.metrics.averaging import LOG_PROB_FLOOR, MemberSums

LOG_TAU_MIN, LOG_TAU_MAX = math.log(1e-2), math.log(1e2)
COARSE_POINTS = 37
REFINE = 8
_CHUNK_ELEMENTS = 1 << 20  # grid × members (or ensembles) × objects × classes elements per chunk
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}  # e^x underflows to subnormals below these
_LOG_UNDERFLOW = math.log(1e-290)  # float64 ensemble sums below e^this are redone in log space of objects


@dataclass(frozen=True)
class GridObjective:
    """F and dF/du on grid points u `[G]` for each ensemble and mask: `[E, H, G]` each."""

    u: torch.Tensor
    value: torch.Tensor
    slope: torch.Tensor


def _member_tables(gaps: torch.Tensor, true_gap: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """a = log softmax(ℓ e^{−u})_y and da/du for members, from gaps d = ℓ − max_c ℓ `[C, M, objects]`
    (classes outermost, so class sums are sums of contiguous slabs) and d_y `[M, objects]`: `[G, M, objects]`.

    With β = e^{−u}, S = Σ_c e^{β d_c}, T = Σ_c d_c e^{β d_c}: a = β d_y − log S, da/du = β (T/S − d_y).
    Exponent arguments are clamped where the result would be subnormal (exp is ~70× slower there, and
    S ≥ 1 makes such terms vanish anyway).
    """
    beta = torch.exp(-u).to(gaps.dtype).view(1, -1, 1, 1)
    scaled = gaps.unsqueeze(1) * beta  # [C, G, M, objects]
    terms = torch.exp(scaled.clamp_(min=_EXP_FLOOR[gaps.dtype]))
    total = terms.sum(0)
    weighted = terms.mul_(gaps.unsqueeze(1)).sum(0)
    beta = beta.view(-1, 1, 1)
    return beta * true_gap - torch.log(total), beta * (weighted.div_(total) - true_gap)


def _masked_ensemble_loss(log_true: torch.Tensor, d_log_true: torch.Tensor, sums: MemberSums,
                          weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked sums over objects of the ensemble NLL −log((1/n) Σ_{i∈e} e^{a_i}) and of its u-derivative
    −Σ_i w_i a_i', w = softmax_i(a), for every ensemble of `sums`: member tables `[G, M, objects]`, weights
    `[objects, H]` -> `[E, G, H]` each (float64).

    In probability space: e^{a_i − s}, s the pool's largest a per point and object, summed over each
    ensemble's members (one `MemberSums` pass instead of a max and an exponential per member of every
    ensemble); s and log n leave the ensemble sum and are added back after the sum over objects. Sums that
    underflow (every member of an ensemble ~660 nats below the pool's best: extreme τ) are redone as a
    log-sum-exp over the ensemble's members.
    """
    a = log_true.double().transpose(0, 1)  # [M, G, objects]
    shift = a.amax(0)  # [G, objects]
    scaled = a - shift
    may_underflow = float(scaled.amin()) < _LOG_UNDERFLOW
    probs = torch.exp(scaled.clamp_(min=_EXP_FLOOR[torch.float64]) if may_underflow else scaled)
    derivative = d_log_true.double().transpose(0, 1)
    total, slope_total = sums(probs), sums(probs.mul_(derivative))  # [E, G, objects]
    log_total, mean_slope = torch.log(total), slope_total.div_(total)
    if may_underflow and float(total.amin()) < math.exp(_LOG_UNDERFLOW):
        e, g, j = (total < math.exp(_LOG_UNDERFLOW)).nonzero(as_tuple=True)
        for n in sums.members[e].unique().tolist():
            pick = torch.nonzero(sums.members[e] == n).squeeze(1)
            members = sums.member_table[e[pick], :n]  # [K, n]
            a_k = a[members, g[pick].unsqueeze(1), j[pick].unsqueeze(1)]
            da_k = derivative[members, g[pick].unsqueeze(1), j[pick].unsqueeze(1)]
            log_total[e[pick], g[pick], j[pick]] = torch.logsumexp(a_k, 1) - shift[g[pick], j[pick]]
            mean_slope[e[pick], g[pick], j[pick]] = (torch.softmax(a_k, 1) * da_k).sum(1)
    log_n = sums.members.double().log().view(-1, 1, 1)
    value = log_n * weights.sum(0) - (shift @ weights).unsqueeze(0) - log_total @ weights
    return value, -(mean_slope @ weights)


def grid_objective(members: torch.Tensor, labels: torch.Tensor, sums: MemberSums, masks: torch.Tensor,
                   u: torch.Tensor) -> GridObjective:
    """Exact F and F' of every ensemble of `sums` and mask `[H, N]` on the grid u `[G]`.

    members `[M, N, C]` (log-probs), labels `[N]`. The member tables are built once per grid point and
    shared by every ensemble.
    """
    members = members.clamp(min=LOG_PROB_FLOOR)
    gaps = (members - members.max(-1, keepdim=True).values).permute(2, 0, 1).contiguous()  # [C, M, N]
    true_gap = gaps.gather(0, labels.view(1, 1, -1).expand(1, gaps.shape[1], -1)).squeeze(0)  # [M, N]
    num_classes, num_members, num_objects = gaps.shape
    weights = masks.double().T.contiguous()  # [N, H]
    value = torch.zeros(sums.ensembles, len(u), len(masks), dtype=torch.float64)
    slope = torch.zeros_like(value)
    chunk = max(1, _CHUNK_ELEMENTS // (len(u) * max(num_members * num_classes, sums.ensembles)))
    for start in range(0, num_objects, chunk):
        part = slice(start, start + chunk)
        log_true, d_log_true = _member_tables(gaps[:, :, part], true_gap[:, part], u)  # [G, M, objects]
        part_value, part_slope = _masked_ensemble_loss(log_true, d_log_true, sums, weights[part])
        value += part_value
        slope += part_slope
    counts = weights.sum(0).view(1, -1, 1)
    return GridObjective(u.double(), value.transpose(1, 2) / counts, slope.transpose(1, 2) / counts)


def _bracketing_cell(objective: GridObjective) -> torch.Tensor:
    """Index c of the grid cell [u_c, u_{c+1}] holding the minimum, for each (e, h): `[E, H]`."""
    best = objective.value.argmin(-1)
    slope_at_best = objective.slope.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    cell = torch.where(slope_at_best > 0, best - 1, best)
    return cell.clamp(0, objective.u.numel() - 2)


def _hermite(t: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, m0: torch.Tensor, m1: torch.Tensor,
             derivative: bool = False) -> torch.Tensor:
    """Cubic Hermite interpolant on t ∈ [0, 1] (m0, m1 are slopes times the cell width), or its t-derivative."""
    if derivative:
        return (6 * t * t - 6 * t) * (f0 - f1) + (3 * t * t - 4 * t + 1) * m0 + (3 * t * t - 2 * t) * m1
    t2, t3 = t * t, t * t * t
    return (2 * t3 - 3 * t2 + 1) * f0 + (t3 - 2 * t2 + t) * m0 + (3 * t2 - 2 * t3) * f1 + (t3 - t2) * m1


def _gather_cell(table: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """table `[E, H_any, G]` at cells `[E, H]` -> values at both ends `[E, H_any, H]` each."""
    index = cell.unsqueeze(1).expand(-1, table.shape[1], -1)
    return table.gather(-1, index), table.gather(-1, index + 1)


def _refine(objective: GridObjective) -> tuple[torch.Tensor, torch.Tensor]:
    """u* `[E, H]` (minimiser for mask h) and F of every mask at it: `[E, H_eval, H_fit]`."""
    cell = _bracketing_cell(objective)
    width = objective.u[cell + 1] - objective.u[cell]
    diagonal = torch.arange(cell.shape[1])
    f0, f1 = (x[:, diagonal, diagonal] for x in _gather_cell(objective.value, cell))
    s0, s1 = (x[:, diagonal, diagonal] for x in _gather_cell(objective.slope, cell))
    m0, m1 = s0 * width, s1 * width
    low, high = torch.zeros_like(f0), torch.ones_like(f0)
    for _ in range(40):
        mid = (low + high) / 2
        rising = _hermite(mid, f0, f1, m0, m1, derivative=True) > 0
        high, low = torch.where(rising, mid, high), torch.where(rising, low, mid)
    t = (low + high) / 2
    # Monotone cells (minimum at the τ range ends): take the lower end value.
    t = torch.where(m0 >= 0, torch.zeros_like(t), torch.where(m1 <= 0, torch.ones_like(t), t))
    u_star = objective.u[cell] + t * width
    g0, g1 = _gather_cell(objective.value, cell)
    d0, d1 = _gather_cell(objective.slope, cell)
    values = _hermite(t.unsqueeze(1), g0, g1, d0 * width.unsqueeze(1), d1 * width.unsqueeze(1))
    return u_star, values


def minimise_temperature(members: torch.Tensor, labels: torch.Tensor, index_sets: Sequence[torch.Tensor],
                         masks: torch.Tensor, sums: MemberSums | None = None
                         ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each index set `[E_k, n_k]`: (log τ* `[E_k, H]` fitted on mask h, F of every mask at it
    `[E_k, H_eval, H_fit]`). members `[M, N, C]`, labels `[N]`, masks `[H, N]` (bool); `sums` the
    index sets' `MemberSums` if the caller has it."""
    sums = MemberSums(index_sets, members.shape[0]) if sums is None else sums
    coarse = torch.linspace(LOG_TAU_MIN, LOG_TAU_MAX, COARSE_POINTS, dtype=torch.float64)
    step = (LOG_TAU_MAX - LOG_TAU_MIN) / (COARSE_POINTS - 1)
    cells = torch.unique(_bracketing_cell(grid_objective(members, labels, sums, masks, coarse)))
    fine_index = torch.unique((cells.unsqueeze(1) * REFINE + torch.arange(REFINE + 1)).flatten())
    fine = LOG_TAU_MIN + fine_index.double() * (step / REFINE)
    u_star, values = _refine(grid_objective(members, labels, sums, masks, fine))
    return list(zip(sums.split(u_star), sums.split(values), strict=True))
