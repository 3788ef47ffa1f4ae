"""Monte Carlo checks of the collegial variance model (Littwin et al. §4.2 and Figure 2).

- `fit_alpha`: E[Θ²]/E[Θ]² of one NTK diagonal entry over random initialisations equals
  exp(α Σ_l 1/fan_in_l) (Assumption 1); fit log of it against Σ with a line through the origin.
- `ensemble_ntk_convergence`: the ensemble NTK K_e = (1/m) Σ_j K(θ_j) approaches the mean kernel
  (the NMK, E_θ[K]) as m grows, at rate 1/√m.
Initialisations are drawn as the paths of one non-aggregated collegial module (see `path_ntk_diagonal`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ensplit.analysis.collegial import BottleneckBaseline, MLPBaseline
from ensplit.analysis.ntk import CollegialBottleneck, CollegialMLP, ntk_matrix, path_ntk_diagonal, path_ntk_matrix
from ensplit.errors import EnsplitError

# Widths of the fit. Assumption 1 is a large-width expansion: at n < 4 (Σ > 0.3) the bottleneck's local
# slope log(ratio)/Σ falls to ≈ 1.25 (n = 1), and beyond n ≈ 64 the fixed 1/C term, which does not
# fluctuate for a fixed input, dominates Σ; the default range brackets the design optimum (n ≈ 10).
BOTTLENECK_FIT_WIDTHS = (4, 6, 8, 12, 16, 24, 32, 48, 64)
MLP_FIT_WIDTHS = (16, 24, 32, 48, 64, 96, 128)
PARAMS_PER_CHUNK = 2_000_000  # paths drawn per forward/backward: bounds memory, not the result


@dataclass(frozen=True)
class AlphaFit:
    """log(E[Θ²]/E[Θ]²) = α Σ_l 1/fan_in_l fitted through the origin (ordinary least squares)."""

    alpha: float
    stderr: float                        # residual standard error of the slope, k − 1 degrees of freedom
    widths: tuple[int, ...]
    variance_sum: tuple[float, ...]      # Σ_l 1/fan_in_l at each width
    log_ratio: tuple[float, ...]         # log(E[Θ²]/E[Θ]²) at each width
    log_ratio_stderr: tuple[float, ...]  # delta-method Monte Carlo standard error of each log ratio
    samples: int
    seed: int
    block: str
    seconds: float


def log_moment_ratio(theta: torch.Tensor) -> tuple[float, float]:
    """log(mean(Θ²) / mean(Θ)²) of samples Θ [S] and its delta-method standard error."""
    t = theta.double()
    m1, m2 = t.mean(), t.pow(2).mean()
    gradient = torch.stack([-2.0 / m1, 1.0 / m2])
    covariance = torch.cov(torch.stack([t, t.pow(2)])) / len(t)
    return float(torch.log(m2 / m1**2)), float(torch.sqrt(gradient @ covariance @ gradient))


def fit_line_through_origin(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Slope a of y ≈ a·x by least squares and its standard error sqrt(s² / Σx²), s² = RSS/(k − 1)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sxx = float(x @ x)
    slope = float(x @ y) / sxx
    dof = len(x) - 1
    rss = float(((y - slope * x) ** 2).sum())
    return slope, (math.sqrt(rss / dof / sxx) if dof > 0 else math.nan)


def _module_and_input(baseline: MLPBaseline | BottleneckBaseline, n: int, paths: int, spatial: int,
                      generator: torch.Generator) -> tuple[torch.nn.Module, torch.Tensor]:
    if isinstance(baseline, MLPBaseline):
        module = CollegialMLP(baseline.input_dim, n, baseline.hidden_layers, baseline.outputs, paths,
                              aggregate=False)
        return module, torch.randn(baseline.input_dim, generator=generator)
    module = CollegialBottleneck(baseline.channels, n, paths, aggregate=False)
    return module, torch.randn(baseline.channels, spatial, spatial, generator=generator)


def ntk_diagonal_samples(baseline: MLPBaseline | BottleneckBaseline, width: int, samples: int, seed: int,
                         spatial: int = 4) -> torch.Tensor:
    """Θ(x, x) at one fixed standard-normal input x for `samples` initialisations of one path of `width`.

    MLP paths take x ∈ R^input_dim; bottleneck paths take x ∈ R^{C×spatial×spatial} ('same' padding, so
    border positions see fewer taps). Sum readout. Deterministic given `seed`. -> [samples] (float32 math).
    """
    generator = torch.Generator().manual_seed(seed)
    probe, x = _module_and_input(baseline, width, 1, spatial, generator)
    per_path = sum(p.numel() for p in probe.parameters())
    chunk = max(1, PARAMS_PER_CHUNK // per_path)
    values = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for start in range(0, samples, chunk):
            module, _ = _module_and_input(baseline, width, min(chunk, samples - start), spatial, generator)
            values.append(path_ntk_diagonal(module, x).detach())
    return torch.cat(values)


def fit_alpha(baseline: MLPBaseline | BottleneckBaseline, widths: Sequence[int] | None = None,
              samples: int = 500, seed: int = 0, spatial: int = 4) -> AlphaFit:
    """Monte Carlo α: per width, E[Θ²]/E[Θ]² over `samples` initialisations; slope of its log vs Σ(n)."""
    if widths is None:
        widths = MLP_FIT_WIDTHS if isinstance(baseline, MLPBaseline) else BOTTLENECK_FIT_WIDTHS
    widths = tuple(int(n) for n in widths)
    if len(widths) < 2 or min(widths) < 1:
        raise EnsplitError(f"the alpha fit needs at least two positive widths, got {widths}")
    if samples < 10:
        raise EnsplitError(f"the alpha fit needs at least 10 samples per width, got {samples}")
    start = time.perf_counter()
    ratios, errors = [], []
    for i, n in enumerate(widths):
        log_ratio, stderr = log_moment_ratio(ntk_diagonal_samples(baseline, n, samples, seed + 1000 * i, spatial))
        ratios.append(log_ratio)
        errors.append(stderr)
    sums = [float(baseline.variance_sum(n)) for n in widths]
    alpha, alpha_stderr = fit_line_through_origin(sums, ratios)
    block = "mlp" if isinstance(baseline, MLPBaseline) else "resnext-block"
    return AlphaFit(alpha, alpha_stderr, widths, tuple(sums), tuple(ratios), tuple(errors), samples, seed, block,
                    time.perf_counter() - start)


@dataclass(frozen=True)
class EnsembleConvergence:
    """K_e(x_0, x_γ), x_γ = (cos γ, sin γ), for growing m, against the mean kernel (Littwin et al. Figure 2)."""

    gammas: tuple[float, ...]
    members: tuple[int, ...]
    kernels: tuple[tuple[float, ...], ...]   # one draw of K_e(x_0, x_γ) per m
    mean_kernel: tuple[float, ...]           # NMK, averaged over `mean_samples` single networks
    deviation: tuple[float, ...]             # RMS over γ and repeats of (K_e − NMK), / RMS_γ(NMK)
    width: int
    hidden_layers: int


def ensemble_ntk_convergence(width: int = 64, hidden_layers: int = 2, members: Sequence[int] = (1, 4, 16, 64),
                             angles: int = 33, mean_samples: int = 512, repeats: int = 6, seed: int = 0
                             ) -> EnsembleConvergence:
    """Ensemble NTK of m-path collegial MLPs (input 2, one output) vs the NMK on the unit circle.

    Each m is drawn max(repeats, 64 // m) times; the NMK averages `mean_samples` independent networks.
    """
    torch.manual_seed(seed)
    gammas = torch.linspace(-math.pi, math.pi, angles)
    xs = torch.stack([torch.cos(gammas), torch.sin(gammas)], 1)
    x0 = torch.tensor([[1.0, 0.0]])
    chunk = 128
    mean = torch.zeros(angles)
    for start in range(0, mean_samples, chunk):
        paths = min(chunk, mean_samples - start)
        module = CollegialMLP(2, width, hidden_layers, 1, paths, aggregate=False)
        mean += path_ntk_matrix(module, x0, xs)[:, 0].sum(0).detach()
    mean /= mean_samples
    scale = float(mean.pow(2).mean().sqrt())
    kernels, deviation = [], []
    for m in members:
        devs = []
        for r in range(max(repeats, 64 // m)):  # at least 64 paths per point: small m are heavy-tailed
            k = ntk_matrix(CollegialMLP(2, width, hidden_layers, 1, m), x0, xs)[0].detach()
            devs.append(float((k - mean).pow(2).mean()) / scale**2)
            if r == 0:
                kernels.append(tuple(k.tolist()))
        deviation.append(math.sqrt(float(np.mean(devs))))  # E[dev²] = Var(K)/m: falls as 1/√m
    return EnsembleConvergence(tuple(gammas.tolist()), tuple(int(m) for m in members), tuple(kernels),
                               tuple(mean.tolist()), tuple(deviation), width, hidden_layers)
