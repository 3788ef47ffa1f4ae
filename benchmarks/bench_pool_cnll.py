"""Pool CNLL: ensplit's batched temperature search vs a per-ensemble SciPy Nelder–Mead, in one run.

Both compute, for every ensemble size n = 1..ℓ and each of the ⌊ℓ/n⌋ disjoint ensembles, the CNLL by
test-time cross-validation (temperature before averaging, the same 5 seeded splits), and average over
ensembles. Prints the speed ratio and the largest absolute difference of the per-n means, and writes
benchmarks/results/pool_cnll.md.

    python benchmarks/bench_pool_cnll.py [--pool 32] [--objects 2000] [--classes 10]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp

from ensplit.metrics import disjoint_ensembles, pool_curve, split_masks


def synthetic_pool(pool: int, objects: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 log-probs `[pool, N, C]` of networks that share a signal and differ by member noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (objects,), generator=generator)
    signal = torch.randn(objects, classes, generator=generator) + 2.5 * torch.nn.functional.one_hot(labels, classes)
    noise = torch.randn(pool, objects, classes, generator=generator)
    logits = 2.0 * (signal + 0.9 * noise)
    return torch.log_softmax(logits, -1).float(), labels


def baseline_cnll(log_probs: np.ndarray, labels: np.ndarray, masks: np.ndarray) -> float:
    """One ensemble `[n, N, C]` (float64): Nelder–Mead on log τ per half per split, the plain way."""

    def half_nll(log_tau: float, objects: np.ndarray) -> float:
        scaled = log_probs[:, objects] / math.exp(log_tau)
        member = scaled - logsumexp(scaled, axis=-1, keepdims=True)
        true_class = member[:, np.arange(len(objects)), labels[objects]]
        return float(-(logsumexp(true_class, axis=0) - math.log(len(log_probs))).mean())

    values = []
    for split in range(len(masks) // 2):
        halves = [np.flatnonzero(masks[2 * split]), np.flatnonzero(masks[2 * split + 1])]
        for fit, measure in ((0, 1), (1, 0)):
            result = minimize(lambda x, h=halves[fit]: half_nll(x[0], h), x0=[0.0], method="Nelder-Mead",
                              options={"xatol": 1e-5, "fatol": 1e-10})
            values.append(half_nll(result.x[0], halves[measure]))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=32)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for ensplit's side")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pool_cnll.md")
    args = parser.parse_args()
    # One thread for both sides: NumPy/SciPy run single-threaded, and on a shared 2-core machine torch's
    # OpenMP threads slow down by 10x when the cores are oversubscribed.
    torch.set_num_threads(args.threads)
    pool, labels = synthetic_pool(args.pool, args.objects, args.classes)
    sizes = list(range(1, args.pool + 1))

    pool_curve(pool[:4, :200], labels[:200], sizes=[1, 2], min_ensembles=1)  # warm-up
    start = time.perf_counter()
    ours = pool_curve(pool, labels, sizes=sizes, min_ensembles=1, splits=args.splits, seed=0)
    ours_seconds = time.perf_counter() - start

    pool64, labels_np = pool.double().numpy(), labels.numpy()
    masks = split_masks(args.objects, args.splits, seed=0).numpy()
    start = time.perf_counter()
    baseline = []
    for n in sizes:
        index = disjoint_ensembles(args.pool, n, seed=0).numpy()
        baseline.append(np.mean([baseline_cnll(pool64[members], labels_np, masks) for members in index]))
    baseline_seconds = time.perf_counter() - start

    ours_means = np.array([estimate.mean["cnll"] for estimate in ours])
    max_diff = float(np.abs(ours_means - np.array(baseline)).max())
    ratio = baseline_seconds / ours_seconds
    ensembles = sum(args.pool // n for n in sizes)
    lines = [
        "# Pool CNLL: batched temperature search vs per-ensemble SciPy Nelder–Mead",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.processor() or platform.machine()}, {platform.system()}, "
        f"torch threads {torch.get_num_threads()} (NumPy side single-threaded), torch {torch.__version__}, "
        f"load average at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        f"- sizes: pool ℓ = {args.pool} networks, N = {args.objects} objects, C = {args.classes} classes, "
        f"n = 1..{args.pool} ({ensembles} disjoint ensembles), {args.splits} TTCV splits × 2 halves, "
        "temperature before averaging",
        "- inputs: synthetic float32 log-probs (shared signal + member noise); ensplit computes in float32, "
        "the baseline in float64",
        "",
        "| method | seconds |",
        "|---|---|",
        f"| ensplit `pool_curve` (all n at once) | {ours_seconds:.2f} |",
        f"| per-ensemble, per-half SciPy Nelder–Mead on log τ | {baseline_seconds:.2f} |",
        "",
        f"- speed ratio: **{ratio:.1f}×** (target ≥ 20×)",
        f"- max |Δ mean CNLL| over n: **{max_diff:.2e}** (target ≤ 1e-3)",
        f"- mean CNLL at n = 1, 2, 4, {args.pool}: "
        + ", ".join(f"{ours_means[n - 1]:.4f}" for n in (1, 2, 4, args.pool)),
        "",
        "Reproduce: `python benchmarks/bench_pool_cnll.py "
        f"--pool {args.pool} --objects {args.objects} --classes {args.classes}`",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
