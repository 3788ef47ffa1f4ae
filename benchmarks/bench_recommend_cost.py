"""`ensplit recommend --no-verify` against the brute force it replaces, in one run (issue 23).

The peer is the brute force: every candidate `recommend` lists, trained at the budget with the same recipe
(deep n × s: one ensemble of n networks per seed, member-batched in one job; a sharing method: one ensemble per
seed), each job trained on its own, as a user would run them. In one process, in this order:
  1. the 1-seed brute force (timed; its FLOPs are `cost.brute_force_flops` of the recommend result),
  2. `recommend --no-verify` into an empty folder, report included (timed end to end),
  3. seeds 2 and 3 of the brute force, which with seed 1 make the 3-seed reference.
Printed and written (benchmarks/results/recommend_cost.md and .json): the wall-time and FLOPs ratios against the
1-seed brute force; the regret of the recommendation against the 3-seed brute force; the prediction RMSE over
the candidates, the share of 5-95% intervals holding the 3-seed mean, the median interval width; and, as the
noise floor of any predictor, the RMSE of the 1-seed brute force itself against the 3-seed mean.

    python benchmarks/bench_recommend_cost.py --budget 23050 --budget 80000
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ensplit
from ensplit import __version__
from ensplit.data.spec import load_data
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig, _job
from ensplit.metrics import cnll_ttcv
from ensplit.runs.jobs import run_job
from ensplit.runs.plan import TrainJob, network_seed
from ensplit.train.measure import steps_in_epoch

RESULTS = Path(__file__).parent / "results"


def brute_job(config: RecommendConfig, candidate: Candidate, seed_index: int) -> TrainJob:
    """Seed `seed_index` of `candidate` at the budget: n networks (single, deep) or one ensemble."""
    base = config.recipe.seed
    if candidate.method in ("single", "deep"):
        n = candidate.members
        seeds = tuple(network_seed(base, "brute", candidate.width, seed_index * n + k) for k in range(n))
        return _job(config, "brute", candidate.width, seeds, 0)
    kind = f"brute {candidate.method}×{candidate.members}"
    return _job(config, "brute", candidate.width, (network_seed(base, kind, candidate.width, seed_index),), 0,
                candidate.method, candidate.members, candidate.options)


def train_and_score(config: RecommendConfig, found: list[Candidate], seed_index: int,
                    labels: torch.Tensor) -> tuple[dict[str, float], float]:
    """Each candidate's CNLL for one seed (nan when it diverged) and the wall time of training them all."""
    start = time.perf_counter()
    scores = {}
    for candidate in found:
        result = run_job(brute_job(config, candidate, seed_index))
        log_probs = torch.as_tensor(result.test_log_probs).double()
        ok = not any(result.failed) and bool(torch.isfinite(log_probs).all())
        scores[candidate.name] = float(cnll_ttcv(log_probs, labels, splits=config.cnll_splits)) if ok else np.nan
    return scores, time.perf_counter() - start


def measure(budget: int, threads: int | None, flops_budget: int | None = None) -> dict[str, Any]:
    config = RecommendConfig.from_mapping({"budget": budget, "verify": False, "flops_budget": flops_budget,
                                           **({"threads": threads} if threads else {})})
    config.recipe.apply_threads()
    data = load_data(config.recipe.data)
    labels = data.y_test.long()
    folder = Path(tempfile.mkdtemp(prefix="bench-recommend-"))
    try:
        from ensplit.experiments.recommend_plan import candidates

        listed = candidates(config, data)
        seed1, brute1_seconds = train_and_score(config, listed, 0, labels)
        start = time.perf_counter()
        result = ensplit.recommend(config, folder / "recommend", progress=False)  # as a user: report included
        recommend_seconds = time.perf_counter() - start
        recommend_jobs, recommend_train = stored_training(folder / "recommend")
        later = [train_and_score(config, listed, i, labels) for i in (1, 2)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    truth = {c.name: float(np.nanmean([seed1[c.name], *(s[c.name] for s, _ in later)])) for c in listed}
    summary = summarise(budget, result, truth, seed1, brute1_seconds, recommend_seconds,
                        brute1_seconds + sum(t for _, t in later))
    steps = config.recipe.train.epochs * steps_in_epoch(data.x_train.shape[0], config.recipe.train.batch_size)
    summary["flops_budget"] = flops_budget
    summary["steps"] = steps_split(steps, recommend_jobs, recommend_train, recommend_seconds, len(listed),
                                   brute1_seconds)
    return summary


def stored_training(folder: Path) -> tuple[int, float]:
    """How many jobs a recommend folder holds and their summed training seconds (the store's own record)."""
    with sqlite3.connect(folder / "results.sqlite") as conn:
        jobs, seconds = conn.execute("SELECT COUNT(*), SUM(seconds) FROM jobs").fetchone()
    return int(jobs), float(seconds or 0.0)


def steps_split(steps_per_job: int, jobs: int, train_seconds: float, wall: float, brute_jobs: int,
                brute_seconds: float) -> dict[str, Any]:
    """Where the wall time goes: optimisation steps and milliseconds per step on each side. Every job of either
    side runs the recipe's epochs over the same training set, so both take `steps_per_job` steps a job; when a
    step costs about the same at every size (a small network on a CPU), the wall ratio is about the jobs ratio."""
    return {"steps_per_job": steps_per_job, "recommend_jobs": jobs, "recommend_train_seconds": train_seconds,
            "recommend_other_seconds": wall - train_seconds,
            "recommend_ms_per_step": 1000 * train_seconds / (jobs * steps_per_job), "brute_force_jobs": brute_jobs,
            "brute_force_ms_per_step": 1000 * brute_seconds / (brute_jobs * steps_per_job),
            "jobs_ratio": jobs / brute_jobs}


def summarise(budget: int, result: Any, truth: dict[str, float], seed1: dict[str, float], brute1_seconds: float,
              recommend_seconds: float, brute3_seconds: float) -> dict[str, Any]:
    ranked = [a for a in result.ranked if np.isfinite(truth.get(a.candidate.name, np.nan))]
    errors = np.array([a.prediction.value - truth[a.candidate.name] for a in ranked])
    inside = [a.prediction.lower <= truth[a.candidate.name] <= a.prediction.upper for a in ranked]
    widths = [a.prediction.upper - a.prediction.lower for a in ranked]
    best = min(truth.values())
    picked = result.recommendation.candidate.name
    noise = np.array([seed1[n] - truth[n] for n in truth if np.isfinite(seed1[n])])
    cost = result.cost.to_json()
    return {
        "budget": budget, "recommendation": picked, "best_by_brute_force": min(truth, key=truth.get),
        "regret": truth[picked] - best, "prediction_rmse": float(np.sqrt(np.mean(errors ** 2))),
        "max_abs_error": float(np.abs(errors).max()), "coverage": float(np.mean(inside)),
        "median_interval_width": float(np.median(widths)),
        "one_seed_brute_force_rmse": float(np.sqrt(np.mean(noise ** 2))),
        "seconds": {"recommend": recommend_seconds, "brute_force_1_seed": brute1_seconds,
                    "brute_force_3_seeds": brute3_seconds},
        "wall_ratio": recommend_seconds / brute1_seconds, "flops_ratio": cost["ratio"], "cost": cost,
        "candidates": [{"name": a.candidate.name, "predicted": a.prediction.value,
                        "interval": [a.prediction.lower, a.prediction.upper], "brute_force_3_seeds": truth.get(
                            a.candidate.name), "brute_force_seed_1": seed1.get(a.candidate.name)}
                       for a in result.ranked]}


def table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A right-aligned Markdown table."""
    return ["| " + " | ".join(columns) + " |", "|---:" * len(columns) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _seconds(value: float | None) -> str:
    """A stated time, '-' in results from before recommend stated it."""
    return "-" if value is None else f"{value:.1f}"


def one_seed_regret(seed_1: dict[str, float | None], truth: dict[str, float | None]) -> float:
    """The regret of the peer's own answer: the candidate best by the 1-seed brute force, against the 3-seed
    `truth` (which holds that seed, so the figure flatters the peer). A candidate whose seed 1 diverged cannot be
    picked, but may still be the best."""
    known = {name: value for name, value in truth.items() if value is not None and np.isfinite(value)}
    scored = [name for name in known if seed_1.get(name) is not None and np.isfinite(seed_1[name])]
    picked = min(scored, key=lambda name: seed_1[name])
    return known[picked] - min(known.values())


def _peer_regret(run: dict[str, Any]) -> float:
    """`one_seed_regret` of one saved budget's candidates."""
    return one_seed_regret({c["name"]: c["brute_force_seed_1"] for c in run["candidates"]},
                           {c["name"]: c["brute_force_3_seeds"] for c in run["candidates"]})


def markdown(runs: list[dict[str, Any]], machine: str) -> str:
    flags = " ".join(f"--budget {r['budget']}" for r in runs)
    if runs and runs[0].get("flops_budget"):  # one flops budget for every budget of a run
        flags += f" --flops-budget {runs[0]['flops_budget']}"
    lines = ["# `recommend --no-verify` against the brute force it replaces", "",
             f"`python benchmarks/bench_recommend_cost.py {flags}`; "
             f"{machine}", "",
             "Brute force: every listed candidate trained at the budget with the same recipe, one job each, in "
             "the same process (1 seed, timed; seeds 2 and 3 for the reference). FLOPs: forward + backward per "
             "training example × examples seen, counted from the models (`cost` in `recommend --json`). "
             "Regret: the 3-seed CNLL of the answer minus the best candidate's; the last two columns score the "
             "1-seed brute force itself the same way, as the peer's own accuracy (its seed is one of the three, "
             "which flatters it).", "",
             ]
    lines += table(["budget", "recommend s", "1-seed brute s", "wall ratio", "FLOPs ratio", "regret", "RMSE",
                    "max error", "coverage", "median width", "1-seed brute RMSE", "1-seed brute regret"],
                   [[f"{r['budget']:,}", f"{r['seconds']['recommend']:.1f}",
                     f"{r['seconds']['brute_force_1_seed']:.1f}",
                     f"{r['wall_ratio']:.2f}", f"{r['flops_ratio']:.2f}", f"{r['regret']:.4f}",
                     f"{r['prediction_rmse']:.4f}", f"{r['max_abs_error']:.4f}", f"{r['coverage']:.2f}",
                     f"{r['median_interval_width']:.4f}", f"{r['one_seed_brute_force_rmse']:.4f}",
                     f"{_peer_regret(r):.4f}"] for r in runs])
    lines += ["", "## Where the wall time goes", "",
              "Every job of either side trains the recipe's epochs over the same training set, so the same number "
              "of optimisation steps; the store's own record gives recommend's training seconds, the rest is "
              "measuring the candidates, fitting and the report. The last two columns are what recommend itself "
              "states in its cost line (`cost.training_seconds`, its jobs' steady seconds per epoch × epochs, and "
              "`cost.brute_force_seconds`, every candidate's seconds per epoch measured on 3 steps × epochs), to "
              "set beside the measured 1-seed brute force.", ""]
    lines += table(["budget", "steps a job", "recommend jobs", "brute jobs", "jobs ratio", "recommend ms/step",
                    "brute ms/step", "recommend training s", "recommend other s", "its own training s",
                    "its brute-force estimate s"],
                   [[f"{r['budget']:,}", f"{t['steps_per_job']:,}", str(t["recommend_jobs"]),
                     str(t["brute_force_jobs"]), f"{t['jobs_ratio']:.2f}", f"{t['recommend_ms_per_step']:.2f}",
                     f"{t['brute_force_ms_per_step']:.2f}", f"{t['recommend_train_seconds']:.1f}",
                     f"{t['recommend_other_seconds']:.1f}", _seconds(r["cost"].get("training_seconds")),
                     _seconds(r["cost"].get("brute_force_seconds"))] for r in runs for t in [r["steps"]]])
    for r in runs:
        lines += ["", f"## {r['budget']:,} parameters: recommended {r['recommendation']}, best by the 3-seed "
                  f"brute force {r['best_by_brute_force']}", "",
                  "| candidate | predicted | 5–95% | brute force, 3 seeds | seed 1 |", "|---|---:|---:|---:|---:|"]
        for c in r["candidates"]:
            truth, one = c["brute_force_3_seeds"], c["brute_force_seed_1"]
            lines.append(f"| {c['name']} | {c['predicted']:.4f} | {c['interval'][0]:.4f}–{c['interval'][1]:.4f} | "
                         f"{'-' if truth is None else f'{truth:.4f}'} | {'-' if one is None else f'{one:.4f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, action="append", help="parameter budget (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--flops-budget", type=int, default=None,
                        help="inference FLOPs per example: every candidate narrowed to fit it, on both sides")
    parser.add_argument("--name", default="recommend_cost", help="results file name in benchmarks/results")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: rewrite the Markdown of results/NAME.md from results/NAME.json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((RESULTS / f"{args.name}.json").read_text())
        (RESULTS / f"{args.name}.md").write_text(markdown(saved["runs"], saved["machine"]))
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    machine = (f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
               f"ensplit {__version__} (commit {commit}), {time.strftime('%Y-%m-%d')}.")
    runs = []
    for budget in args.budget or [23_050]:
        runs.append(measure(budget, args.threads, args.flops_budget))
        r = runs[-1]
        print(f"budget {budget:,}: wall {r['wall_ratio']:.2f}x, FLOPs {r['flops_ratio']:.2f}x of the 1-seed brute "
              f"force; regret {r['regret']:.4f}; RMSE {r['prediction_rmse']:.4f}; coverage {r['coverage']:.2f}; "
              f"median width {r['median_interval_width']:.4f}; 1-seed brute RMSE {r['one_seed_brute_force_rmse']:.4f}",
              flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(runs, machine))


if __name__ == "__main__":
    main()
