"""How often recommend's interval from a 3-network deep pool holds a fresh ensemble, on real networks.

    python benchmarks/small_pool_coverage.py --cache DIR [--budget 23050 --budget 80000] [--networks 14]
                                             [--trials 40]

recommend trains 3 networks in each deep pool above P/8 (6 at and below). For each budget this trains
`--networks` networks (default recipe, MNIST-1D; `ensplit study`, stored and resumable in `--cache`) at the
width of every 3-network pool and of the 6-network pool recommend calibrates them from (the largest pool
of 5 networks or more), then repeats `--trials` times: draw 3 networks of a 3-network pool's width as
recommend's pool and 6 of the reference width as its reference; predict CNLL_n (n = 2..7) at that size as
recommend does (`plane_prediction` at a trained size, mode "before", recommend's bootstrap and CNLL splits),
with the 3-network law's variance from the reference (`subset_fit_variance`) and one network's σ pooled over
the two pools (as recommend now, which pools σ over all its pools), and without (the pool's bootstrap and its
own σ alone, as before); the truth is the CNLL of n further networks of the width, none
of the 3. Coverage: the share of trials whose interval holds the truth (nominal 0.90). The trials share
networks, so they are not independent: a coverage here is good to about ±0.1.
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np
import torch

import ensplit
from ensplit._version import git_commit
from ensplit.analysis.extrapolation import SizeLaw, plane_prediction, pooled_single_noise
from ensplit.analysis.prediction import predict_size, subset_fit_variance
from ensplit.experiments.recommend_plan import RecommendConfig, pool_networks, pool_widths
from ensplit.metrics import cnll_ttcv
from ensplit.recipe import Recipe
from ensplit.store import ResultStore

N = np.arange(2, 8)
RESULTS = Path(__file__).parent / "results" / "small_pool_coverage.md"


def pools_of(budget: int) -> tuple[dict[int, int], int]:
    """recommend's 3-network pool widths `{size: width}` at `budget`, and its reference width."""
    config = RecommendConfig(budget=budget)
    widths = pool_widths(config, Recipe().load_data())
    small = {size: w for size, w in widths.items() if pool_networks(config, size) < 4}
    large = [size for size in widths if pool_networks(config, size) >= 5]
    return small, widths[max(large)]


def trial(pool: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor, config: RecommendConfig,
          rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(holds with the subset variance, holds without, width with, width without) at each n of `N`."""
    order = rng.permutation(pool.shape[0])
    mine, fresh = pool[order[:3]], pool[order[3:]]
    ref = reference[rng.permutation(reference.shape[0])[:6]]

    def cnll(log_probs: torch.Tensor) -> float:
        return float(cnll_ttcv(log_probs, labels, mode="before", splits=config.cnll_splits))

    truth = np.array([cnll(fresh[:n]) for n in N])
    size = predict_size(mine, labels, 1000, max_n=int(N.max()), small_pool=3, fit_max_n=3, repeats=config.bootstrap,
                        splits=config.cnll_splits, seed=seed, measured=[])
    sigma = float(np.std([cnll(mine[i:i + 1]) for i in range(3)], ddof=1))
    sigma_ref = float(np.std([cnll(ref[i:i + 1]) for i in range(6)], ddof=1))
    own = SizeLaw(1000, size.fit, tuple(size.fits), sigma, 3)  # as before: its bootstrap, its own σ
    noise = pooled_single_noise([own, SizeLaw(500, size.fit, (), sigma_ref, 6)])  # recommend pools over its pools
    variance = subset_fit_variance(ref, labels, 3, int(N.max()), config.bootstrap, splits=config.cnll_splits,
                                   seed=seed) * (noise[0] / sigma_ref) ** 2
    neighbour = SizeLaw(2000, size.fit, tuple(size.fits), sigma, 3)  # weight 0 at the trained size
    rows = []
    for law, pooled in ((SizeLaw(1000, size.fit, (), sigma, 3, tuple(variance)), noise), (own, None)):
        predictions = [plane_prediction([law, neighbour], int(n), 1000, pooled) for n in N]
        rows.append((np.array([p.contains(t) for p, t in zip(predictions, truth, strict=True)]),
                     np.array([p.upper - p.lower for p in predictions])))
    return rows[0][0], rows[1][0], rows[0][1], rows[1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="study folder for the pools (resumable)")
    parser.add_argument("--budget", type=int, action="append")
    parser.add_argument("--networks", type=int, default=14)
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    budgets = args.budget or [23050, 80000]
    plans = {b: pools_of(b) for b in budgets}
    widths = sorted({w for small, ref in plans.values() for w in (*small.values(), ref)})
    ensplit.study(widths=",".join(map(str, widths)), pool_min=args.networks, pool_max=args.networks,
                  members_per_run=7, out=args.cache, progress=False, report=False)
    store = ResultStore(args.cache)
    labels = torch.as_tensor(store.labels()).long()

    def pool(width: int) -> torch.Tensor:
        return torch.as_tensor(store.log_probs(store.networks("pool", width, status="ok"))).double()

    lines = ["# Intervals from 3-network deep pools against fresh ensembles (MNIST-1D, default recipe)", "",
             f"`python benchmarks/small_pool_coverage.py --cache DIR --networks {args.networks} --trials "
             f"{args.trials}`; {platform.machine()}, torch {torch.__version__}, ensplit {ensplit.__version__} (commit "
             f"{git_commit()}), "
             f"{datetime.date.today()}. {args.networks} networks per width; each trial draws 3 of them as "
             "recommend's pool and 6 of the reference width as its reference, and scores the interval at "
             "n = 2..7 against n further networks (nominal coverage 0.90; trials share networks, so a coverage "
             "is good to about ±0.1). *With*: the 3-network law's variance from 3-network subsets of the "
             "reference, scaled by one network's variance, pooled over the two pools, as is the σ of the new "
             "ensemble (recommend now, which pools over all its pools); *without*: the pool's bootstrap and its "
             "own σ alone (before).", "",
             "| budget | pool size (width) | reference width | n | coverage with | coverage without "
             "| median width with | median width without |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    summary = []
    for budget, (small, ref_width) in plans.items():
        config = RecommendConfig(budget=budget)
        reference = pool(ref_width)
        for size, width in small.items():
            rng = np.random.default_rng(width)
            rows = [trial(pool(width), reference, labels, config, rng, t) for t in range(args.trials)]
            cover = [np.mean([r[k] for r in rows], axis=0) for k in (0, 1)]
            spans = [np.median([r[k] for r in rows], axis=0) for k in (2, 3)]
            summary.append((cover[0].mean(), cover[1].mean()))
            for i, n in enumerate(N):
                lines.append(f"| {budget:,} | {size:,} (w{width}) | w{ref_width} | {n} | {cover[0][i]:.2f} | "
                             f"{cover[1][i]:.2f} | {spans[0][i]:.3f} | {spans[1][i]:.3f} |")
            print(f"budget {budget:,}, pool w{width}: coverage with {cover[0].round(2).tolist()}, without "
                  f"{cover[1].round(2).tolist()}", flush=True)
    with_mean, without_mean = np.mean(summary, axis=0)
    lines += ["", f"Mean coverage over every pool and n: **{with_mean:.2f} with** the subset variance, "
                  f"**{without_mean:.2f} without**."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"mean coverage with {with_mean:.2f}, without {without_mean:.2f}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
