"""The 1-seed brute force behind a `recommend` answer on any recipe (issue 25: CIFAR-10 on the CPU).

    python benchmarks/bench_cifar10_brute.py --recommend-json R.json --recommend-seconds S [--workers 2] \
        --budget 70000 --dataset ../shared/data/cifar10 --family resnet --depth 20 ... (any recipe option)

Trains every candidate `recommend` lists at the budget once (seed 1; deep n × s: the n networks member-batched in
one job; a sharing method: one ensemble), each job on its own, `--workers` jobs at a time in fresh processes
with one torch thread each, and scores CNLL (test-time cross-validation, as recommend does). Compares with the
recommendation in `R.json` (`ensplit recommend ... --json`): regret (brute-force CNLL of the recommended
candidate minus the brute-force best), each candidate's prediction error and whether its 5–95% interval holds
the brute-force value, and the wall-time ratio recommend / brute force (`S`: recommend's wall seconds).
Prints a Markdown section and writes it with the numbers as JSON next to `R.json`. One seed is a noisy
reference: the table says so, and gives the noise floor where the recommend JSON has measured values.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ensplit.data.spec import load_data
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig, _job, candidates
from ensplit.metrics import cnll_ttcv
from ensplit.runs.jobs import run_job
from ensplit.runs.plan import TrainJob, network_seed


def brute_job(config: RecommendConfig, candidate: Candidate) -> TrainJob:
    """Seed 1 of `candidate` at the budget (as benchmarks/bench_recommend_cost.py draws it)."""
    base = config.recipe.seed
    if candidate.method in ("single", "deep"):
        seeds = tuple(network_seed(base, "brute", candidate.width, k) for k in range(candidate.members))
        return _job(config, "brute", candidate.width, seeds, 0)
    kind = f"brute {candidate.method}×{candidate.members}"
    return _job(config, "brute", candidate.width, (network_seed(base, kind, candidate.width, 0),), 0,
                candidate.method, candidate.members, candidate.options)


def score(mapping: dict[str, Any], name: str) -> tuple[str, float, float]:
    """(candidate, CNLL or nan, seconds): one candidate trained in this worker process."""
    config = RecommendConfig.from_mapping(mapping)
    config.recipe.apply_threads()
    data = load_data(config.recipe.data)
    candidate = next(c for c in candidates(config, data) if c.name == name)
    start = time.perf_counter()
    result = run_job(brute_job(config, candidate))
    seconds = time.perf_counter() - start
    log_probs = torch.as_tensor(result.test_log_probs).double()
    ok = not any(result.failed) and bool(torch.isfinite(log_probs).all())
    value = float(cnll_ttcv(log_probs, data.y_test.long(), splits=config.cnll_splits)) if ok else float("nan")
    return name, value, seconds


def parse_recipe(extra: list[str]) -> dict[str, Any]:
    """`--key value` pairs (recipe and recommend options, as the CLI spells them) as a settings mapping."""
    mapping: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        key = extra[i].removeprefix("--").replace("-", "_")
        if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            mapping[key], i = extra[i + 1], i + 2
        else:
            mapping[key], i = True, i + 1
    return mapping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recommend-json", type=Path, required=True)
    parser.add_argument("--recommend-seconds", type=float, required=True, help="recommend's wall time")
    parser.add_argument("--workers", type=int, default=2)
    args, extra = parser.parse_known_args()
    mapping = parse_recipe(extra)
    mapping["verify"] = False
    config = RecommendConfig.from_mapping(mapping)
    listed = [c.name for c in candidates(config, load_data(config.recipe.data))]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(score, [mapping] * len(listed), listed))
    brute_seconds = time.perf_counter() - start
    truth = {name: value for name, value, _ in results}
    answer = json.loads(args.recommend_json.read_text(encoding="utf-8"))
    picked = answer["recommendation"]
    by_name = {c["name"]: c for c in answer["candidates"]}
    finite = {n: v for n, v in truth.items() if np.isfinite(v)}
    best = min(finite, key=finite.get)
    picked_name = next(n for n, c in by_name.items() if c["method"] == picked["method"]
                       and c["members"] == picked["members"] and c["width"] == picked["width"])
    errors = {n: by_name[n]["predicted_cnll"] - v for n, v in finite.items()
              if n in by_name and by_name[n].get("predicted_cnll") is not None}
    inside = [by_name[n]["interval"][0] <= finite[n] <= by_name[n]["interval"][1] for n in errors]
    summary = {
        "budget": config.budget, "recommendation": picked_name, "best_by_brute_force": best,
        "regret": finite[picked_name] - finite[best] if picked_name in finite else None,
        "prediction_rmse": float(np.sqrt(np.mean(np.square(list(errors.values()))))),
        "max_abs_error": float(np.max(np.abs(list(errors.values())))), "coverage": float(np.mean(inside)),
        "seconds": {"recommend": args.recommend_seconds, "brute_force_1_seed": brute_seconds,
                    "per_candidate": {n: s for n, _, s in results}},
        "wall_ratio": args.recommend_seconds / brute_seconds, "workers": args.workers,
        "load_average_end": os.getloadavg()[0],
        "candidates": [{"name": n, "predicted": by_name.get(n, {}).get("predicted_cnll"),
                        "interval": by_name.get(n, {}).get("interval"), "brute_force_seed_1": truth[n]}
                       for n in listed],
    }
    lines = [f"1-seed brute force at {config.budget:,} parameters: {len(listed)} candidates, {args.workers} "
             f"workers, {brute_seconds:.0f} s wall; recommend {args.recommend_seconds:.0f} s wall "
             f"(ratio {summary['wall_ratio']:.2f}). Recommended {picked_name}, brute-force best {best}, regret "
             f"{summary['regret']:.4f}; prediction RMSE {summary['prediction_rmse']:.4f}, max |error| "
             f"{summary['max_abs_error']:.4f}, intervals holding the 1-seed value "
             f"{sum(inside)}/{len(inside)}.", "",
             "| candidate | predicted CNLL | 5–95% | brute force (1 seed) | error | train s |",
             "|---|---:|---:|---:|---:|---:|"]
    seconds = summary["seconds"]["per_candidate"]
    for c in summary["candidates"]:
        n, p = c["name"], c["predicted"]
        interval = f"{c['interval'][0]:.4f}–{c['interval'][1]:.4f}" if c["interval"] else "-"
        err = f"{p - c['brute_force_seed_1']:+.4f}" if p is not None and np.isfinite(c["brute_force_seed_1"]) else "-"
        lines.append(f"| {n} | {'-' if p is None else f'{p:.4f}'} | {interval} | {c['brute_force_seed_1']:.4f} "
                     f"| {err} | {seconds[n]:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.recommend_json.with_name(args.recommend_json.stem + "_brute")
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
