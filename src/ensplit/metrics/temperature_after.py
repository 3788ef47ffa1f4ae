"""Temperature fits *after* averaging, where the NLL is convex in β = 1/τ (science.md §1).

For an ensemble with averaged log-probabilities z and an object subset h (a half of a TTCV split),
F_h(β) = mean_{j∈h} [log Σ_c exp(β z_jc) − β z_jy]: a sum of log-sum-exps of linear functions of β, so
convex, with F' = E_q[z] − z_y and F'' = Var_q[z] under q = softmax(β z). Written with the gaps
d = z − max_c z, which leave F unchanged and keep the exponentials ≤ 1.

One evaluation at one β per ensemble costs one exponential per object and class and gives F, F', F'' of
every half at once (masked sums over objects). So the halves of an ensemble share their evaluation points:
1. the centre β₀: Newton steps on all objects from β = 1 until the step is below 5% of β;
2. one point on each side of β₀ that a half's Newton prediction from β₀ needs, 5–10% away;
3. one more point per round for the ensembles with a half whose minimum is not yet in a cell of at most
   10% of β between two points (Newton beyond an end, or half a step from the interpolated minimum), until
   none is left or the point is a range end;
4. per half, the quintic Hermite interpolant of (F, F', F'') on its cell; its derivative's root (bisection,
   polished by Newton) is the fitted β, and the other halves' F are read from their interpolants there.
Interpolation error ≤ w⁶·|F⁽⁶⁾|/46080 for a cell of width w (~1e-11 nats on real pools); the tests check τ
and the held-out NLL against Newton's method per ensemble and half. τ is searched in [1e-2, 1e2] like the
grid search (β in [1e-2, 1e2]). Four evaluations per ensemble usually suffice, against 37 + ~40 grid
points for the grid search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ensplit.metrics.averaging import Gaps
from ensplit.metrics.temperature_search import LOG_TAU_MAX, LOG_TAU_MIN

BETA_MIN, BETA_MAX = math.exp(-LOG_TAU_MAX), math.exp(-LOG_TAU_MIN)
STEP = 0.05  # spacing of the shared points, relative to β₀; cells up to 2·STEP wide are accepted
_MAX_ROUNDS = 200
_BISECTIONS = 40
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}


def _evaluate(gaps: Gaps, weights: list[torch.Tensor], beta: torch.Tensor, rows: torch.Tensor | None
              ) -> torch.Tensor:
    """F, F', F'' of every mask at β (one per ensemble `rows`, all if None): float64 `[3, R, H]`.

    weights[k] `[o_k, H]` are the masks' object weights (1/|h| on the objects of h) for chunk k.
    """
    out = None
    for chunk, true_gap, weight, lowest in zip(gaps.chunks, gaps.true, weights, gaps.lowest, strict=True):
        if rows is not None:
            chunk, true_gap = chunk.index_select(1, rows), true_gap.index_select(0, rows)
        b = beta.to(chunk.dtype).view(1, -1, 1)
        # Each term ≤ 1 and the largest = 1. Clamped where it would underflow: exp is ~70× slower on
        # arguments whose results are subnormal, and e^-80 (float32; e^-700 float64) is lost against 1.
        scaled = torch.mul(chunk, b)
        if lowest * float(beta.max()) < _EXP_FLOOR[chunk.dtype]:
            scaled.clamp_(min=_EXP_FLOOR[chunk.dtype])
        terms = torch.exp(scaled)
        total = terms.sum(0)
        first = terms.mul_(chunk).sum(0).div_(total)  # E_q[d]
        second = terms.mul_(chunk).sum(0).div_(total)  # E_q[d²]
        per_object = torch.stack([total.log_().sub_(b[0] * true_gap), first - true_gap,
                                  second.sub_(first * first)]).double()  # [3, R, o]
        part = per_object @ weight
        out = part if out is None else out.add_(part)
    return out


def _centre(gaps: Gaps, weights: list[torch.Tensor], count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton on all objects (the last mask) from β = 1: β₀ `[E]` and the evaluation there `[3, E, H]`."""
    beta = torch.ones(count, dtype=torch.float64)
    values = torch.empty(3, count, weights[0].shape[1], dtype=torch.float64)
    active = torch.arange(count)
    for _ in range(_MAX_ROUNDS):
        here = _evaluate(gaps, weights, beta[active], None if len(active) == count else active)
        values[:, active] = here
        slope, curvature = here[1, :, -1], here[2, :, -1]
        step = torch.where(curvature > 0, -slope / curvature, -slope.sign() * math.inf)
        # Damped: at most ×4 or ÷4 per step (F can be nearly linear far from the minimum).
        target = (beta[active] + step).clamp(beta[active] / 4, beta[active] * 4).clamp(BETA_MIN, BETA_MAX)
        done = (target - beta[active]).abs() <= STEP * beta[active]  # near enough: the stencil covers it
        beta[active] = torch.where(done, beta[active], target)
        active = active[~done]
        if not len(active):
            break
    return beta, values


def _hermite_coefficients(f0, d0, s0, f1, d1, s1) -> list[torch.Tensor]:
    """Coefficients a_0..a_5 (t⁰..t⁵) of the quintic with value, slope and curvature f, d, s at t = 0, 1."""
    df = f1 - f0
    return [f0, d0, s0 / 2, 10 * df - 6 * d0 - 4 * d1 - 1.5 * s0 + 0.5 * s1,
            -15 * df + 8 * d0 + 7 * d1 + 1.5 * s0 - s1, 6 * df - 3 * d0 - 3 * d1 - 0.5 * s0 + 0.5 * s1]


def _polynomial(coefficients: list[torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """Σ_i a_i tⁱ by Horner's rule."""
    out = coefficients[-1]
    for a in reversed(coefficients[:-1]):
        out = out * t + a
    return out


class _Points:
    """Evaluated points of every ensemble, sorted by β: β `[E, K]` (+inf pads the unused slots) and
    (F, F', F'') of every mask there `[3, E, K, H]` (+inf slope in the pads)."""

    def __init__(self, beta: torch.Tensor, values: torch.Tensor) -> None:
        self.beta, self.values = beta.unsqueeze(1), values.unsqueeze(2)

    def add(self, rows: torch.Tensor, beta: torch.Tensor, values: torch.Tensor) -> None:
        count = self.beta.shape[0]
        new_beta = torch.full((count, 1), math.inf, dtype=torch.float64)
        new_values = torch.full((3, count, 1, self.values.shape[3]), math.inf, dtype=torch.float64)
        new_beta[rows, 0] = beta
        new_values[:, rows, 0] = values
        order = torch.cat([self.beta, new_beta], 1).argsort(1)
        self.beta = torch.cat([self.beta, new_beta], 1).gather(1, order)
        merged = torch.cat([self.values, new_values], 2)
        self.values = merged.gather(2, order.view(1, count, -1, 1).expand_as(merged))


def fit_after_averaging(gaps: Gaps, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log τ* `[E, H]` fitted on mask h, F of every mask at it `[E, H_eval, H_fit]`) for every ensemble of
    `gaps` (`average_ensembles(..., keep_gaps=True)`), masks `[H, N]` (bool)."""
    count, num_masks = gaps.chunks[0].shape[1], masks.shape[0]
    every = torch.cat([masks, torch.ones(1, masks.shape[1], dtype=torch.bool)]).double()  # last: all objects
    every /= every.sum(1, keepdim=True)
    weights = [every[:, part].T.contiguous() for part in gaps.parts]

    def evaluate(rows: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return _evaluate(gaps, weights, beta, None if len(rows) == count else rows)

    centre, at_centre = _centre(gaps, weights, count)
    points = _Points(centre, at_centre)
    # Newton predictions of every half's minimum from the centre decide which sides need a point, and how
    # far it goes: past the furthest prediction by a quarter step, at least one step, at most 2 steps away.
    slope, curvature = at_centre[1, :, :num_masks], at_centre[2, :, :num_masks].clamp(min=1e-300)
    predicted = (centre.unsqueeze(1) - slope / curvature) / centre.unsqueeze(1) - 1  # relative to β₀
    for side, furthest in ((-1.0, -predicted.min(1).values), (1.0, predicted.max(1).values)):
        reach = (furthest + STEP / 4).clamp(STEP, 2 * STEP)
        beta = (centre * (1 + side * reach)).clamp(BETA_MIN, BETA_MAX)
        rows = ((furthest > -STEP / 4) & (beta != centre)).nonzero().squeeze(1)
        if len(rows):
            points.add(rows, beta[rows], evaluate(rows, beta[rows]))
    for _ in range(_MAX_ROUNDS):
        cells = _cells(points, num_masks)
        rows, beta = _next_points(points, cells)
        if not len(rows):
            break
        points.add(rows, beta, evaluate(rows, beta))
    return _minimise(_cells(points, num_masks, final=True))


@dataclass(frozen=True)
class _Cells:
    """Per ensemble and mask `[E, H]`: the cell [b0, b1] holding the minimum of the mask's F (F' rises with
    β, so the cell starts at the last point with F' ≤ 0), whether the minimum is beyond the lowest or
    highest point, and the minimiser of the quintic Hermite interpolant on the cell."""

    below: torch.Tensor
    size: torch.Tensor
    left: torch.Tensor
    b0: torch.Tensor
    b1: torch.Tensor
    beyond_low: torch.Tensor
    beyond_high: torch.Tensor
    coefficients: list[torch.Tensor]  # every mask's interpolant on each fit mask's cell, [E, H_eval, H_fit]
    t: torch.Tensor  # the fit mask's own minimiser in [0, 1]


def _cells(points: _Points, num_masks: int, final: bool = False) -> _Cells:
    """The cells, and each fit mask's minimiser on its own (bisection on the interpolant's derivative,
    polished by Newton steps when `final`); `coefficients` of every mask only when `final`."""
    beta, values = points.beta, points.values[:, :, :, :num_masks]  # [E, K], [3, E, K, H]
    below = (values[1] <= 0).sum(1)  # pads have slope +inf
    size = torch.isfinite(beta).sum(1).unsqueeze(1)
    beyond_low, beyond_high = below == 0, below == size
    left = torch.minimum((below - 1).clamp(min=0), (size - 2).clamp(min=0))
    right = torch.minimum(left + 1, size - 1)
    ensembles = torch.arange(beta.shape[0]).unsqueeze(1)
    b0, b1 = beta[ensembles, left], beta[ensembles, right]
    width = b1 - b0
    if final:  # every mask's values at each fit mask's cell ends: [3, E, H_eval, H_fit]
        v0 = values[:, ensembles, left].permute(0, 1, 3, 2)
        v1 = values[:, ensembles, right].permute(0, 1, 3, 2)
        w = width.unsqueeze(1)
    else:  # each fit mask's own: [3, E, H]
        mask = torch.arange(num_masks)
        v0, v1 = values[:, ensembles, left, mask], values[:, ensembles, right, mask]
        w = width
    coefficients = _hermite_coefficients(v0[0], v0[1] * w, v0[2] * w * w, v1[0], v1[1] * w, v1[2] * w * w)
    if final:
        diagonal = torch.arange(num_masks)
        own = [a[:, diagonal, diagonal] for a in coefficients]
    else:
        own = coefficients
    slope = [i * a for i, a in enumerate(own)][1:]
    low, high = torch.zeros_like(b0), torch.ones_like(b0)
    for _ in range(_BISECTIONS if final else _BISECTIONS // 2):
        mid = (low + high) / 2
        rising = _polynomial(slope, mid) > 0
        high, low = torch.where(rising, mid, high), torch.where(rising, low, mid)
    t = (low + high) / 2
    if final:  # Newton on the derivative, kept inside the last bracket
        curvature = [i * a for i, a in enumerate(slope)][1:]
        for _ in range(3):
            t = (t - _polynomial(slope, t) / _polynomial(curvature, t)).clamp(low, high).nan_to_num(0.5)
    t = torch.where(beyond_low, 0.0, torch.where(beyond_high, 1.0, t))
    return _Cells(below, size.squeeze(1), left, b0, b1, beyond_low, beyond_high,
                  coefficients if final else [], t)


def _next_points(points: _Points, cells: _Cells) -> tuple[torch.Tensor, torch.Tensor]:
    """One new point for each ensemble that has a mask whose minimum is not yet in a narrow cell (or at a
    range end): the ensembles `[R]` and their new β `[R]`."""
    open_low = cells.beyond_low & (cells.b0 > BETA_MIN)
    open_high = cells.beyond_high & (cells.b1 < BETA_MAX)
    wide = ~cells.beyond_low & ~cells.beyond_high & (cells.b1 - cells.b0 > 2 * STEP * cells.b0)
    unresolved = open_low | open_high | wide
    rows = unresolved.any(1).nonzero().squeeze(1)
    if not len(rows):
        return rows, points.beta.new_empty(0)
    mask = unresolved[rows].to(torch.uint8).argmax(1)  # the first unresolved mask of each
    b0, b1 = cells.b0[rows, mask], cells.b1[rows, mask]
    # Beyond an end: Newton from that end, overshot by half again, at least one step and at most ×4.
    end = torch.where(open_low[rows, mask], cells.left[rows, mask], cells.left[rows, mask] + 1)
    end = torch.minimum(end, cells.size[rows] - 1)
    b = points.beta[rows, end]
    slope, curvature = points.values[1, rows, end, mask], points.values[2, rows, end, mask]
    newton = b - slope / curvature.clamp(min=1e-300)
    down = torch.minimum(b - 1.5 * (b - newton), b * (1 - STEP)).clamp(min=b / 4)
    up = torch.maximum(b + 1.5 * (newton - b), b * (1 + STEP)).clamp(max=b * 4)
    # In a wide cell: half a step from the interpolant's minimiser, towards the farther end.
    guess = b0 + cells.t[rows, mask] * (b1 - b0)
    toward = torch.where(b1 - guess > guess - b0, 0.5, -0.5) * STEP * guess
    inside = (guess + toward).clamp(b0 + 0.05 * (b1 - b0), b1 - 0.05 * (b1 - b0))
    new = torch.where(open_low[rows, mask], down, torch.where(open_high[rows, mask], up, inside))
    return rows, new.clamp(BETA_MIN, BETA_MAX)


def _minimise(cells: _Cells) -> tuple[torch.Tensor, torch.Tensor]:
    fitted = cells.b0 + cells.t * (cells.b1 - cells.b0)
    held_out = _polynomial(cells.coefficients, cells.t.unsqueeze(1))  # [E, H_eval, H_fit]
    return -torch.log(fitted), held_out
