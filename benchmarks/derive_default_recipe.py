"""Re-derive the default learning rate and weight decay on a validation split (never the test split).

    python benchmarks/derive_default_recipe.py [--budget 23050] [--seeds 2] [--extensions 2] [--threads 1]

At the budget (sized as `recommend` sizes its candidates), the single network and every sharing method with 4
members (BatchEnsemble, MIMO, MixtureEnsembles, grouped, multi-head) are trained with the default recipe (SGD
momentum 0.9, cosine, 40 epochs, batch 128, MLP on MNIST-1D) on 80% of the training set over lr {0.05, 0.1,
0.2, 0.4} × weight decay {0, 5e-4, 2e-3}, `--seeds` runs per cell (the same seeds in every cell), and scored
by validation CNLL (`cnll_ttcv` on the other 20%). The grid grows by `recommend --tune`'s edge rule
(`ensplit.experiments.recommend_tune`) when any family's best cell lies on an edge, at most `--extensions`
times. The chosen default is the cell minimising the mean over families of its excess over each family's own
best cell (a cell where any family diverges is never chosen); cells within TIE of that minimum are a tie,
which goes to the cell nearest the old default (lr 0.05, weight decay 5e-4): a default changes only as far as
the evidence asks.
Raw scores are cached in a JSON beside the results file; `--render-only` rewrites the page from it.

Writes benchmarks/results/default_recipe.md (or `--out`) and prints the decision as `lr=… weight_decay=…`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from ensplit import __version__
from ensplit.data.spec import load_data
from ensplit.experiments.recommend_plan import RecommendConfig, _job, candidates
from ensplit.experiments.recommend_tune import Grid, extend, open_edges
from ensplit.metrics import cnll_ttcv
from ensplit.recipe import Recipe
from ensplit.runs.jobs import run_job
from ensplit.runs.plan import TrainJob, network_seed

FAMILIES = ("single", "batchensemble", "mimo", "mixture", "multihead", "grouped")
OUT = Path(__file__).parent / "results" / "default_recipe.md"


def family_jobs(config: RecommendConfig, family: str, width: int, options: tuple, lr: float, wd: float,
                seeds: int) -> list[TrainJob]:
    """The cell's runs: `seeds` single networks in one job, or one ensemble per seed (same seeds per cell)."""
    cell = dataclasses.replace(config, recipe=config.recipe.with_train(lr=lr, weight_decay=wd))
    ids = tuple(network_seed(config.recipe.seed, f"derive {family}", width, i) for i in range(seeds))
    if family == "single":
        return [_job(cell, "derive", width, ids, 0)]
    return [_job(cell, "derive", width, ids, 0, family, 4, options)]  # the seeds trained stacked


def validation_cnll(log_probs: np.ndarray, labels: torch.Tensor, members: int) -> list[float]:
    """Validation CNLL of each run (`members` outputs each); a diverged run scores +inf."""
    values = []
    for start in range(0, log_probs.shape[0], members):
        part = torch.as_tensor(log_probs[start:start + members]).double()
        values.append(float(cnll_ttcv(part, labels)) if bool(torch.isfinite(part).all()) else math.inf)
    return values


def score_cells(config: RecommendConfig, sizes: dict, cells: list, seeds: int, labels: torch.Tensor,
                scores: dict) -> None:
    for lr, wd in cells:
        for family, candidate in sizes.items():
            values = []
            for job in family_jobs(config, family, candidate.width, candidate.options, lr, wd, seeds):
                result = run_job(job)
                outputs = result.val_log_probs.shape[0] // len(job.seeds)  # 1 network, or an ensemble's outputs
                values += validation_cnll(result.val_log_probs, labels, outputs)
            scores[(family, lr, wd)] = values
            print(f"lr={lr:g} wd={wd:g} {family:<14} {np.mean(values):.4f} ± {np.std(values):.4f}", flush=True)


def mean(scores: dict, family: str, cell: tuple[float, float]) -> float:
    return float(np.mean(scores[(family, *cell)]))


OLD_DEFAULT = (0.05, 5e-4)
TIE = 0.002  # CNLL of mean excess: well inside the seed spread of one cell


def choose(grid: Grid, scores: dict) -> tuple[tuple[float, float], dict]:
    """The cell with the least mean excess over each family's best cell (ties to the cell nearest the old
    default, see the module docstring), and every cell's mean excess."""
    best = {f: min(mean(scores, f, c) for c in grid.cells()) for f in FAMILIES}
    excess = {c: float(np.mean([mean(scores, f, c) - best[f] for f in FAMILIES])) for c in grid.cells()}
    least = min(excess.values())
    tied = [c for c in grid.cells() if excess[c] <= least + TIE]
    return min(tied, key=lambda c: (abs(math.log(c[0] / OLD_DEFAULT[0])), abs(c[1] - OLD_DEFAULT[1]))), excess


def write(path: Path, args: argparse.Namespace, sizes: dict, grid: Grid, scores: dict, extended: list,
          seconds: float) -> tuple[float, float]:
    chosen, excess = choose(grid, scores)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    names = {f: f"{f}({c.members}) w{c.width}" if f != "single" else f"single w{c.width}" for f, c in sizes.items()}
    lines = ["# The default recipe, re-derived on validation", "",
             f"`python benchmarks/derive_default_recipe.py --budget {args.budget} --seeds {args.seeds} "
             f"--extensions {args.extensions} --threads {args.threads}`",
             f"on {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
             f"{args.threads} thread(s), ensplit {__version__} (commit {commit}{' + local edits' if dirty else ''}), "
             f"{time.strftime('%Y-%m-%d')}, {seconds:.0f} s.", "",
             f"MLP on MNIST-1D (5,000 samples: 3,200 train / 800 validation / 1,000 test, never read), SGD "
             f"momentum 0.9, cosine, 40 epochs, batch 128; candidates sized as `recommend` sizes them at "
             f"{args.budget:,} parameters: " + ", ".join(f"{names[f]} ({c.params:,})" for f, c in sizes.items())
             + f". Validation CNLL, mean ± std over {args.seeds} seeds (same seeds in every cell); **bold**: "
             "each family's best cell. Grid extensions by the `--tune` edge rule: "
             + ("; ".join(", ".join(e) for e in extended) or "none") + ".", "",
             "| lr | weight decay | " + " | ".join(names[f] for f in FAMILIES) + " | mean excess |",
             "|---:|---:|" + "---:|" * (len(FAMILIES) + 1)]
    best = {f: min(grid.cells(), key=lambda c, f=f: mean(scores, f, c)) for f in FAMILIES}
    for cell in grid.cells():
        row = []
        for f in FAMILIES:
            values = scores[(f, *cell)]
            text = f"{np.mean(values):.4f} ± {np.std(values):.4f}" if np.isfinite(values).all() else "diverged"
            row.append(f"**{text}**" if best[f] == cell else text)
        shown = f"{excess[cell]:.4f}" if math.isfinite(excess[cell]) else "–"
        lines.append(f"| {cell[0]:g} | {cell[1]:g} | " + " | ".join(row) + f" | {shown} |")
    old = (0.05, 5e-4)
    lines += ["", "Each family's best cell: " + "; ".join(
        f"{f} lr {best[f][0]:g}, wd {best[f][1]:g} (edges: {', '.join(open_edges(grid, best[f])) or 'interior'})"
        for f in FAMILIES) + ".", "",
        f"**Chosen default: lr = {chosen[0]:g}, weight decay = {chosen[1]:g}** (mean excess over each family's best "
        f"cell {excess[chosen]:.4f} CNLL" + (f"; the old default lr 0.05, wd 5e-4: {excess[old]:.4f}" if old in excess
                                             else "") + ")."]
    diverged = sorted({f for (f, *_), v in scores.items() if not np.isfinite(v).all()})
    tied = [c for c in grid.cells() if excess[c] <= excess[chosen] + TIE and c != chosen] if chosen in excess else []
    lines += ["", f"A cell where any family diverged is never the default (diverged somewhere: "
              f"{', '.join(diverged) or 'none'}). Cells within {TIE} CNLL of the least mean excess are a tie, "
              f"which goes to the cell nearest the old default (lr {OLD_DEFAULT[0]:g}, weight decay "
              f"{OLD_DEFAULT[1]:g})" + (": tied here " + ", ".join(f"lr {lr:g} / wd {wd:g} ({excess[(lr, wd)]:.4f})"
                                                                    for lr, wd in tied) if tied else "") + ".",
              "", "Whether a cell chosen at a cheap size carries to the budget: [tune_carry.md](tune_carry.md)."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=23_050)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--extensions", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lrs", type=lambda s: tuple(map(float, s.split(","))), default=(0.05, 0.1, 0.2, 0.4))
    parser.add_argument("--weight-decays", type=lambda s: tuple(map(float, s.split(","))), default=(0, 5e-4, 2e-3))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render-only", action="store_true", help="rewrite the page from the cached scores")
    args = parser.parse_args()
    if args.render_only:
        cached = json.loads(args.out.with_suffix(".json").read_text())
        scores = {(f, lr, wd): [math.inf if x is None else x for x in v] for f, lr, wd, v in cached["scores"]}
        grid = Grid(tuple(cached["lrs"]), tuple(cached["weight_decays"]))
        config = RecommendConfig(recipe=Recipe(validation_fraction=0.2), budget=args.budget)
        data = load_data(config.recipe.data)
        sizes = {c.method: c for c in candidates(config, data) if c.method in FAMILIES and c.members in (1, 4)}
        lr, wd = write(args.out, args, sizes, grid, scores, cached["extended"], cached["seconds"])
        print(f"lr={lr:g} weight_decay={wd:g}")
        return
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    config = RecommendConfig(recipe=Recipe(validation_fraction=0.2, threads=args.threads), budget=args.budget)
    data = load_data(config.recipe.data)
    labels = data.y_val.long()
    sizes = {c.method: c for c in candidates(config, data) if c.method in FAMILIES and c.members in (1, 4)}
    grid, scores, extended = Grid(args.lrs, args.weight_decays), {}, []
    score_cells(config, sizes, grid.cells(), args.seeds, labels, scores)
    for _ in range(args.extensions):
        best = {f: min(grid.cells(), key=lambda c, f=f: mean(scores, f, c)) for f in FAMILIES}
        edges = sorted({e for f in FAMILIES for e in open_edges(grid, best[f])})
        if not edges:
            break
        new = extend(grid, edges)
        score_cells(config, sizes, [c for c in new.cells() if c not in grid.cells()], args.seeds, labels, scores)
        grid = new
        extended.append(edges)
    seconds = time.perf_counter() - start
    args.out.with_suffix(".json").write_text(json.dumps({
        "lrs": list(grid.lrs), "weight_decays": list(grid.weight_decays), "extended": extended, "seconds": seconds,
        "scores": [[f, lr, wd, [v if math.isfinite(v) else None for v in values]]
                   for (f, lr, wd), values in scores.items()]}, indent=1))
    lr, wd = write(args.out, args, sizes, grid, scores, extended, seconds)
    print(f"lr={lr:g} weight_decay={wd:g}")


if __name__ == "__main__":
    main()
