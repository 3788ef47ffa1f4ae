"""Memory split: for a parameter budget B, one network or an ensemble of smaller ones? (Lobacheva et al. §6)

Input: a table of measured CNLL (and accuracy) per (n, s), s = parameters per member, as `SplitPoint`s.
- CNLL_s: the n = 1 points, by s.
- Candidates for a budget B: every measured (n, s) with n·s ≤ B. The optimal memory split (OMS) is the
  candidate with the lowest CNLL (ties: fewer members). The single network at B is the largest measured
  n = 1 network with s ≤ B; the memory-split advantage is its CNLL minus the OMS's (> 0 when n > 1 wins).
- Default budgets: the sizes s of the measured single networks, so "the single network at B" is exactly a
  network of B parameters.
- CNLL_B (lower envelope): the best CNLL reachable with at most B parameters, a staircase in B; its corner
  points (each measured (n, s) that beats every configuration with n·s ≤ its own total) are returned and
  fitted along B = n·s.
Power laws are fitted along n (per s), along s (n = 1) and along B (the envelope's corners), each when it
has at least 3 distinct points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ensplit.analysis.powerlaw import Objective, PowerLaw, fit_power_law_or_none
from ensplit.errors import EnsplitError
from ensplit.metrics.pool import PoolEstimate


@dataclass(frozen=True)
class SplitPoint:
    """CNLL (and accuracy, if known) of ensembles of `n` networks with `params` parameters each."""

    n: int
    params: int
    cnll: float
    accuracy: float | None = None

    @property
    def total(self) -> int:
        """Total parameter count n·s."""
        return self.n * self.params


@dataclass(frozen=True)
class BudgetSplit:
    """The optimal memory split at `budget` and the single network it is compared with."""

    budget: int
    best: SplitPoint
    single: SplitPoint | None

    @property
    def advantage(self) -> float | None:
        """CNLL of the single network minus CNLL of the best split (≥ 0; None without a single network)."""
        return None if self.single is None else self.single.cnll - self.best.cnll

    @property
    def has_advantage(self) -> bool:
        """The memory-split advantage holds: the best candidate has more than one member."""
        return self.best.n > 1


@dataclass(frozen=True)
class MemorySplitAnalysis:
    """CNLL_s, the CNLL_B envelope, the OMS per budget and power-law fits along n (per s), s and B."""

    single: tuple[SplitPoint, ...]
    envelope: tuple[SplitPoint, ...]
    splits: tuple[BudgetSplit, ...]
    fit_n: dict[int, PowerLaw]
    fit_s: PowerLaw | None
    fit_b: PowerLaw | None


def points_from_curves(curves: Mapping[int, Sequence[PoolEstimate]]) -> list[SplitPoint]:
    """SplitPoints from pool curves keyed by params per member (mean CNLL and accuracy per n)."""
    return [SplitPoint(e.n, int(params), e.mean["cnll"], e.mean.get("accuracy"))
            for params, curve in curves.items() for e in curve]


def _checked(points: Iterable[SplitPoint]) -> list[SplitPoint]:
    points = list(points)
    if not points:
        raise EnsplitError("memory-split analysis needs at least one measured (n, s) point")
    seen = set()
    for p in points:
        if p.n < 1 or p.params < 1:
            raise EnsplitError(f"ensemble size and params must be positive, got n={p.n}, params={p.params}")
        if (p.n, p.params) in seen:
            raise EnsplitError(f"duplicate point for n={p.n}, params={p.params}")
        seen.add((p.n, p.params))
    return points


def single_network_curve(points: Iterable[SplitPoint]) -> list[SplitPoint]:
    """CNLL_s: the n = 1 points sorted by params."""
    return sorted((p for p in points if p.n == 1), key=lambda p: p.params)


def default_budgets(points: Iterable[SplitPoint]) -> list[int]:
    """The sizes of the measured single networks (sorted)."""
    return [p.params for p in single_network_curve(points)]


def optimal_split(points: Iterable[SplitPoint], budget: int) -> BudgetSplit:
    """The OMS among (n, s) with n·s ≤ budget, and the largest single network with s ≤ budget."""
    points = _checked(points)
    candidates = [p for p in points if p.total <= budget]
    if not candidates:
        raise EnsplitError(f"no measured configuration fits in a budget of {budget:,} parameters")
    best = min(candidates, key=lambda p: (p.cnll, p.n, -p.params))
    singles = [p for p in candidates if p.n == 1]
    single = max(singles, key=lambda p: p.params) if singles else None
    return BudgetSplit(budget=int(budget), best=best, single=single)


def budget_envelope(points: Iterable[SplitPoint]) -> list[SplitPoint]:
    """Corners of CNLL_B: points that beat every configuration of smaller or equal total, by total."""
    corners: list[SplitPoint] = []
    for p in sorted(_checked(points), key=lambda p: (p.total, p.cnll, p.n)):
        if not corners or p.cnll < corners[-1].cnll:
            if corners and corners[-1].total == p.total:
                corners.pop()
            corners.append(p)
    return corners


def analyze_memory_split(points: Iterable[SplitPoint], budgets: Sequence[int] | None = None,
                         objective: Objective = "nll") -> MemorySplitAnalysis:
    """All of the module's quantities from one table of measured points (see the module doc)."""
    points = _checked(points)
    single = single_network_curve(points)
    envelope = budget_envelope(points)
    budgets = default_budgets(points) if budgets is None else sorted(budgets)
    splits = tuple(optimal_split(points, b) for b in budgets if any(p.total <= b for p in points))
    fit_n = {}
    for params in sorted({p.params for p in points}):
        curve = sorted((p for p in points if p.params == params), key=lambda p: p.n)
        law = fit_power_law_or_none([p.n for p in curve], [p.cnll for p in curve], objective)
        if law is not None:
            fit_n[params] = law
    fit_s = fit_power_law_or_none([p.params for p in single], [p.cnll for p in single], objective)
    fit_b = fit_power_law_or_none([p.total for p in envelope], [p.cnll for p in envelope], objective)
    return MemorySplitAnalysis(tuple(single), tuple(envelope), splits, fit_n, fit_s, fit_b)
