"""The collegial-ensemble designer (Littwin et al. 2020; science.md §4 and §5).

Variance model (eq. 9, 11): an ensemble of m paths of width n has Var(K_e) ∝ (exp(α Σ_l 1/n_l) − 1) / m.
- Primal (eq. 12): at the baseline's cost β_s, m_p(n) = β_s / β(n); minimise (exp(α Σ(n)) − 1) / m_p(n).
- Dual (eq. 14): at the baseline's variance V_s, m_d(n) = (exp(α Σ(n)) − 1) / V_s; maximise
  ρ(n) = β_s / (m_d(n) β(n)).
β is the parameter count (default) or the FLOPs of one path (the seed's FLOPs-efficiency variant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from ensplit.errors import EnsplitError

Objective = Literal["primal", "dual"]
Cost = Literal["params", "flops"]


class Baseline(Protocol):
    """A baseline network of width ñ and the family of paths of width n that replace it."""

    width: int
    paths: int

    def variance_sum(self, n: int | np.ndarray) -> float | np.ndarray:
        """Σ_l 1/n_l (fan-ins) of one path of width n."""
        ...

    def path_cost(self, n: int | np.ndarray, cost: Cost) -> float | np.ndarray:
        """β(n): parameters or FLOPs of one path of width n."""
        ...

    def baseline_cost(self, cost: Cost) -> int:
        """β_s: parameters or FLOPs of the baseline itself."""
        ...


@dataclass(frozen=True)
class MLPBaseline:
    """Fully connected baseline: input_dim -> hidden_layers × width -> outputs (science.md §5).

    β(n) is the `mlp` family's count (748n + 4n² + n for the seed's baseline); Σ(n) = hidden_layers / n
    (the variance sum runs over the hidden widths). FLOPs = 2 · multiply-adds of one example
    (2 · weight count; biases, ReLUs ignored).
    """

    input_dim: int
    width: int
    hidden_layers: int
    outputs: int = 1
    bias: bool = False
    paths: int = 1

    def variance_sum(self, n: int | np.ndarray) -> float | np.ndarray:
        return self.hidden_layers / np.asarray(n, dtype=float)

    def params(self, n: int) -> int:
        from ensplit.models import count_params

        return count_params("mlp", width=int(n), depth=self.hidden_layers, in_shape=(self.input_dim,),
                            num_classes=self.outputs, bias=self.bias)

    def path_cost(self, n: int | np.ndarray, cost: Cost) -> float | np.ndarray:
        if cost == "flops":
            n = np.asarray(n, dtype=float)
            return 2.0 * (self.input_dim * n + (self.hidden_layers - 1) * n * n + n * self.outputs)
        if np.ndim(n) == 0:
            return float(self.params(int(n)))
        return np.array([self.params(int(k)) for k in np.asarray(n).ravel()], dtype=float)

    def baseline_cost(self, cost: Cost) -> int:
        return int(round(float(self.path_cost(self.width, cost))))


@dataclass(frozen=True)
class BottleneckBaseline:
    """ResNeXt bottleneck block on `channels` channels: paths 1×1 C->n, 3×3 n->n, 1×1 n->C (science.md §5).

    β(n) = 9n² + (2C + 4)n + 2C with batch norms (9n² + 516n + 512 at C = 256); Σ(n) = 1/C + 1/(9n) + 1/n.
    The baseline has `paths` × width ñ (1×128d: paths=1, width=128); its exact count is
    9·paths·ñ² + (2C + 4)·paths·ñ + 2C. FLOPs = 2 · multiply-adds of the convolutions at spatial² positions.
    """

    channels: int
    width: int
    paths: int = 1
    spatial: int = 32

    def variance_sum(self, n: int | np.ndarray) -> float | np.ndarray:
        n = np.asarray(n, dtype=float)
        return 1.0 / self.channels + 1.0 / (9.0 * n) + 1.0 / n

    def block_params(self, cardinality: int, n: int) -> int:
        """Exact parameters of a block with `cardinality` paths of width n (grouped 3×3, batch norms)."""
        c, w = self.channels, cardinality * n
        return c * w + 9 * w * n + w * c + 2 * w + 2 * w + 2 * c

    def path_cost(self, n: int | np.ndarray, cost: Cost) -> float | np.ndarray:
        n = np.asarray(n, dtype=float)
        c = self.channels
        if cost == "flops":
            return 2.0 * self.spatial**2 * (9.0 * n * n + 2.0 * c * n)
        return 9.0 * n * n + (2.0 * c + 4.0) * n + 2.0 * c

    def baseline_cost(self, cost: Cost) -> int:
        if cost == "flops":
            return int(round(self.paths * float(self.path_cost(self.width, cost))))
        return self.block_params(self.paths, self.width)


@dataclass(frozen=True)
class DesignCurves:
    """Both objectives over the widths n = 1..max_width (Littwin et al. Figures 3 and 6)."""

    widths: tuple[int, ...]
    variance_sum: tuple[float, ...]
    primal_members: tuple[float, ...]     # m_p(n) = β_s / β(n)
    primal_variance: tuple[float, ...]    # (exp(αΣ) − 1) / m_p(n)
    dual_members: tuple[float, ...]       # m_d(n) = (exp(αΣ) − 1) / V_s
    dual_efficiency: tuple[float, ...]    # ρ(n) = β_s / (m_d β(n))
    baseline_variance: float              # V_s = (exp(αΣ(ñ)) − 1) / paths


@dataclass(frozen=True)
class CollegialDesign:
    """The optimum of one objective: m (real-valued, as in the paper) paths of width n."""

    objective: str
    cost: str
    alpha: float
    width: int
    members: float
    efficiency: float          # β_s / (m · β(n))
    variance: float            # (exp(αΣ(n)) − 1) / m, in units of the variance model
    baseline_variance: float
    baseline_cost: int         # β_s (params or FLOPs, per `cost`)
    cost_total: float          # m · β(n)


def design_curves(baseline: Baseline, alpha: float, cost: Cost = "params", max_width: int | None = None
                  ) -> DesignCurves:
    """Evaluate m_p, primal variance, m_d and ρ at every integer width n in 1..max_width (default ñ)."""
    if not (alpha > 0 and math.isfinite(alpha)):
        raise EnsplitError(f"alpha must be a positive number, got {alpha}")
    max_width = baseline.width if max_width is None else max_width
    if max_width < 1:
        raise EnsplitError(f"the width range must reach at least 1, got {max_width}")
    n = np.arange(1, max_width + 1)
    sums = np.asarray(baseline.variance_sum(n))
    beta_n = np.asarray(baseline.path_cost(n, cost))
    beta_s = baseline.baseline_cost(cost)
    var_n = np.expm1(alpha * sums)
    var_s = float(np.expm1(alpha * float(baseline.variance_sum(baseline.width)))) / baseline.paths
    m_p = beta_s / beta_n
    m_d = var_n / var_s
    return DesignCurves(
        widths=tuple(int(v) for v in n), variance_sum=tuple(sums.tolist()),
        primal_members=tuple(m_p.tolist()), primal_variance=tuple((var_n / m_p).tolist()),
        dual_members=tuple(m_d.tolist()), dual_efficiency=tuple((beta_s / (m_d * beta_n)).tolist()),
        baseline_variance=var_s,
    )


def solve(baseline: Baseline, alpha: float, objective: Objective = "primal", cost: Cost = "params",
          max_width: int | None = None) -> CollegialDesign:
    """Grid search over n of the primal (eq. 12) or dual (eq. 14) objective."""
    if objective not in ("primal", "dual"):
        raise EnsplitError(f"objective must be 'primal' or 'dual', got {objective!r}")
    if cost not in ("params", "flops"):
        raise EnsplitError(f"cost must be 'params' or 'flops', got {cost!r}")
    curves = design_curves(baseline, alpha, cost, max_width)
    if objective == "primal":
        i = int(np.argmin(curves.primal_variance))
        members = curves.primal_members[i]
    else:
        i = int(np.argmax(curves.dual_efficiency))
        members = curves.dual_members[i]
    n = curves.widths[i]
    beta_n = float(baseline.path_cost(n, cost))
    beta_s = baseline.baseline_cost(cost)
    var_n = math.expm1(alpha * float(baseline.variance_sum(n)))
    return CollegialDesign(
        objective=objective, cost=cost, alpha=float(alpha), width=n, members=float(members),
        efficiency=beta_s / (members * beta_n), variance=var_n / members,
        baseline_variance=curves.baseline_variance, baseline_cost=beta_s, cost_total=members * beta_n,
    )


def integer_members(design: CollegialDesign) -> int:
    """The integer multiplicity handed to training: primal floors (stays within the budget), dual rounds."""
    m = math.floor(design.members + 1e-9) if design.objective == "primal" else round(design.members)
    return max(1, int(m))


def curve_members(baseline: Baseline, alpha: float, objective: Objective, width: int, cost: Cost = "params") -> int:
    """Integer multiplicity at path width n on one curve (Littwin et al. Figs. 4 and 6).

    Primal: the most paths within the baseline's cost, ⌊β_s/β(n)⌋ (so m·β(n) ≤ β_s; 0 where one path is
    already too costly). Dual: round(m_d(n)), m_d = (exp(αΣ(n)) − 1)/V_s, at least 1.
    """
    if objective == "primal":
        return int(baseline.baseline_cost(cost) // float(baseline.path_cost(width, cost)))
    if objective != "dual":
        raise EnsplitError(f"objective must be 'primal' or 'dual', got {objective!r}")
    var_s = math.expm1(alpha * float(baseline.variance_sum(baseline.width))) / baseline.paths
    return max(1, round(math.expm1(alpha * float(baseline.variance_sum(width))) / var_s))


def spread_widths(optimum: int, low: int, high: int, points: int) -> list[int]:
    """Up to `points` integer widths from `low` to `high`, evenly spaced in log n on each side of `optimum`
    and including it (fewer where rounding makes two coincide)."""
    if not low <= optimum <= high or points < 1:
        raise EnsplitError(f"need low <= optimum <= high and points >= 1, got {low}, {optimum}, {high}, {points}")
    left = 0 if optimum == low else (points - 1 if optimum == high else (points - 1) // 2)
    right = 0 if optimum == high else points - 1 - left
    widths = {optimum}
    widths |= {round(low * (optimum / low) ** (i / left)) for i in range(left)} if left else set()
    widths |= {round(optimum * (high / optimum) ** (i / right)) for i in range(1, right + 1)} if right else set()
    return sorted(widths)
