"""Which cheap-run ladder should `recommend` use? Designs compared offline on dense evidence (issue 23).

1. Evidence (cached in --cache, resumable): on the default data and recipe, every sharing method (4 members) at
   every grid size 2^(k/2) from 512 to 46,340 parameters, 3 seeds each, and the 3-seed truth at each --budget.
2. Each design (the ladder's budgets and seeds per budget) is scored at each budget exactly as `recommend`
   predicts, averaged over `--draws` subsets of the seeds: the power law fitted to the ladder, one run's noise
   pooled over the methods' ladders, the model error backtested on them (`ensplit.analysis.ladder_error`).
   Against the 3-seed truth: RMSE, the largest error, the regret of the best predicted method, the share of
   5–95% intervals holding the truth, the median interval width; and the ladder's training FLOPs as a fraction
   of one run of the method at the budget.

    python benchmarks/recommend_design_search.py --cache /tmp/design-evidence --budget 23050 --budget 80000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

from ensplit import __version__
from ensplit.analysis.extrapolation import ladder_prediction
from ensplit.analysis.ladder_error import model_error, pooled_noise
from ensplit.data.spec import load_data
from ensplit.errors import EnsplitError
from ensplit.experiments.recommend_plan import RecommendConfig, _job, sharing_candidate
from ensplit.metrics import cnll_ttcv
from ensplit.runs.jobs import run_job
from ensplit.runs.plan import network_seed

METHODS = ("batchensemble", "mimo", "mixture", "multihead", "grouped")
GRID = [int(2 ** (k / 2)) for k in range(18, 32)]  # 512 … 46,340
RESULTS = Path(__file__).parent / "results" / "recommend_design.md"
# (name, divisor of the top rung, rungs, spacing in grid steps (1: √2, 2: 2×), seeds per rung: one count for
# every rung, or one count per rung from the smallest up)
DESIGNS: list[tuple[str, int, int, int, int | tuple[int, ...]]] = [
    ("previous: P/8 … P/2, √2 apart, 5 × 3 seeds", 2, 5, 1, 3),
    ("P/22.6 … P/8, √2 apart, 3 × 2 seeds", 8, 3, 1, 2),
    ("P/16 … P/4, 2× apart, 3 × 1 seed", 4, 3, 2, 1),
    ("default ladder: P/32 … P/4, 2× apart, 4 × 1 seed", 4, 4, 2, 1),
    ("default ladder + its P/2 refinement rung, 5 × 1 seed", 2, 5, 2, 1),
    ("P/64 … P/8, 2× apart, 4 × 1 seed", 8, 4, 2, 1),
    ("P/16 … P/2, 2× apart, 4 × 1 seed", 2, 4, 2, 1),
    ("P/32 … P/4, 2× apart, seeds 2, 2, 1, 1 (smallest first)", 4, 4, 2, (2, 2, 1, 1)),
    ("P/32 … P/4, 2× apart, seeds 3, 2, 1, 1", 4, 4, 2, (3, 2, 1, 1)),
    ("P/32 … P/4, 2× apart, seeds 3, 3, 2, 1", 4, 4, 2, (3, 3, 2, 1)),
    ("P/64 … P/8, 2× apart, seeds 3, 3, 2, 2", 8, 4, 2, (3, 3, 2, 2)),
]
DRAWS = 20  # seed subsets each design is scored on (draw 0: the first seeds of every cell)


def _cell(task: tuple[str, str, int]) -> tuple[str, list[float], int] | None:
    """Train one (kind, method, budget) cell's 3 seeds and return their CNLLs (nan when diverged)."""
    torch.set_num_threads(1)
    kind, method, budget = task
    config = RecommendConfig()
    data = load_data(config.recipe.data)
    candidate = sharing_candidate(config.recipe, data, method, 4, budget)
    if candidate is None:
        return None
    seeds = tuple(network_seed(123, kind + method, candidate.width, i) for i in range(3))
    job = _job(config, kind, candidate.width, seeds, 0, method, 4, candidate.options)  # 3 seeds, stacked
    result = run_job(job)
    per = result.test_log_probs.shape[0] // len(seeds)
    labels = data.y_test.long()
    values = []
    for i in range(len(seeds)):
        part = torch.as_tensor(result.test_log_probs[i * per:(i + 1) * per]).double()
        ok = bool(torch.isfinite(part).all()) and not any(result.failed[i * per:(i + 1) * per])
        values.append(float(cnll_ttcv(part, labels)) if ok else math.nan)
    return f"{kind}/{method}/{budget}", values, candidate.params


def evidence(cache: Path, budgets: list[int], workers: int) -> dict[str, dict]:
    """Every cell, trained once and cached in `cache/cells.json`."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "cells.json"
    cells = json.loads(path.read_text()) if path.exists() else {}
    tasks = [("truth", m, b) for b in budgets for m in METHODS] + [("grid", m, s) for s in GRID for m in METHODS]
    todo = [t for t in tasks if f"{t[0]}/{t[1]}/{t[2]}" not in cells]
    with Pool(workers) as pool:
        for done in pool.imap_unordered(_cell, todo):
            if done is not None:
                key, values, params = done
                cells[key] = {"values": values, "params": params}
                path.write_text(json.dumps(cells))
    return cells


def rungs(budget: int, divisor: int, count: int, step: int) -> list[int]:
    top = math.floor(2 * math.log2(budget / divisor) + 1e-9)
    return sorted(int(2 ** ((top - j * step) / 2)) for j in range(count))


def seeds_per_rung(design: tuple, count: int) -> list[int]:
    """The design's seeds at each of its `count` rungs, smallest rung first."""
    seeds = design[4]
    return [seeds] * count if isinstance(seeds, int) else list(seeds)


def pick(values: list[float], seeds: int, draw: int, rng: np.random.Generator) -> list[float]:
    """`seeds` of a cell's runs: the first ones in draw 0, a random subset (without replacement) after."""
    if draw == 0:
        return values[:seeds]
    return [values[i] for i in rng.choice(len(values), size=seeds, replace=False)]


def score(cells: dict, budget: int, design: tuple, draw: int = 0) -> dict[str, float] | None:
    _, divisor, count, step, _ = design
    budgets = rungs(budget, divisor, count, step)
    seeds = dict(zip(budgets, seeds_per_rung(design, count), strict=True))
    rng = np.random.default_rng(draw)
    ladders, truths, targets = {}, {}, {}
    for method in METHODS:
        truth = cells.get(f"truth/{method}/{budget}")
        points = {cells[k]["params"]: pick(cells[k]["values"], seeds[s], draw, rng) for s in budgets
                  for k in [f"grid/{method}/{s}"] if k in cells}
        if truth is None or not np.isfinite(truth["values"]).all() or len(points) < 3 or \
                not all(np.isfinite(v).all() for v in points.values()):
            continue  # diverged at this recipe (the mixture at lr ≥ 0.2), or not trained
        ladders[method], truths[method], targets[method] = points, float(np.mean(truth["values"])), truth["params"]
    if len(ladders) < 2:
        return None
    noise = pooled_noise(ladders.values())
    kappa = model_error(ladders.values(), noise, 30, 0)
    predictions = {}
    for method, ladder in ladders.items():
        try:
            predictions[method] = ladder_prediction(ladder, targets[method], 60, 0, noise, kappa)
        except EnsplitError:
            continue
    errors = np.array([p.value - truths[m] for m, p in predictions.items()])
    best = min(predictions, key=lambda m: predictions[m].value)
    return {"rmse": float(np.sqrt(np.mean(errors ** 2))), "max": float(np.abs(errors).max()),
            "regret": truths[best] - min(truths.values()), "kappa": kappa,
            "coverage": float(np.mean([p.contains(truths[m]) for m, p in predictions.items()])),
            "width": float(np.median([p.upper - p.lower for p in predictions.values()])),
            "flops": sum(seeds[s] * s for s in budgets) / budget, "methods": len(predictions)}


def mean_score(cells: dict, budget: int, design: tuple, draws: int) -> dict[str, float] | None:
    """`score` averaged over `draws` seed subsets (the seed noise of one draw is as large as the differences
    between designs)."""
    scores = [s for s in (score(cells, budget, design, d) for d in range(draws)) if s is not None]
    return None if not scores else {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="folder for the trained cells (resumable)")
    parser.add_argument("--budget", type=int, action="append")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=DRAWS, help="seed subsets every design is scored on")
    args = parser.parse_args()
    budgets = args.budget or [23_050, 80_000]
    start = time.perf_counter()
    cells = evidence(args.cache, budgets, args.workers)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    recipe = RecommendConfig().recipe.train
    lines = ["# Cheap-run ladder designs for `recommend`, scored on dense MNIST-1D evidence", "",
             f"`python benchmarks/recommend_design_search.py --cache DIR {' '.join(f'--budget {b}' for b in budgets)}`"
             f"; {platform.machine()}, torch {torch.__version__}, ensplit {__version__} (commit {commit}), "
             f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - start:.0f} s (cells cached). Recipe: the default "
             f"(lr {recipe.lr:g}, weight decay {recipe.weight_decay:g}, {recipe.epochs} epochs).", "",
             "Each sharing method with 4 members, 3 seeds at every grid size from 512 to 46,340 parameters and at "
             "the budget (the truth: the 3-seed mean). Each design is scored as `recommend` predicts (power law, "
             "noise pooled over the methods' ladders, backtested model error κ); FLOPs: the ladder's training "
             "FLOPs over one run of the method at the budget (a brute force of the method costs 1). Every figure is "
             f"the mean over {args.draws} draws of which seeds a design uses at each rung (draw 0: the first; then "
             "random subsets of a cell's 3), because one draw's seed noise is as large as the designs' "
             "differences.", "",
             "| design | budget | FLOPs / brute | RMSE | max error | regret | coverage | median width | κ |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for design in DESIGNS:
        for budget in budgets:
            s = mean_score(cells, budget, design, args.draws)
            if s is not None:
                lines.append(f"| {design[0]} | {budget:,} | {s['flops']:.2f} | {s['rmse']:.3f} | {s['max']:.3f} | "
                             f"{s['regret']:.3f} | {s['coverage']:.2f} | {s['width']:.3f} | {s['kappa']:.3f} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
