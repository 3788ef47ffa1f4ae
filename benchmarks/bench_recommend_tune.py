"""`recommend --tune --no-verify` against a brute force whose every candidate is tuned on the same grid (issue 23).

The peer: every listed candidate trained at the budget in every cell of recommend's grid (`tune_lrs` ×
`tune_weight_decays`), seed 1; each candidate's cell chosen on the validation split (the same split recommend
tunes on; the test split is never used to choose), then seeds 2 and 3 trained in that cell; the truth is
the 3-seed mean test CNLL in the chosen cell. Printed and written (benchmarks/results/recommend_tune.md and
.json): the regret of `recommend --tune`'s choice against that truth, its prediction RMSE, each family's
chosen cell in both, and the cost of both in training FLOPs.

    python benchmarks/bench_recommend_tune.py --budget 23050
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_recommend_cost import RESULTS, brute_job  # noqa: E402

from ensplit.data.spec import load_data  # noqa: E402
from ensplit.experiments.recommend import run_recommend  # noqa: E402
from ensplit.experiments.recommend_cost import job_training_flops  # noqa: E402
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig, candidates  # noqa: E402
from ensplit.experiments.recommend_tune import family_key  # noqa: E402
from ensplit.metrics import cnll_ttcv  # noqa: E402
from ensplit.runs.jobs import run_job  # noqa: E402


def _cnll(log_probs: np.ndarray | None, labels: torch.Tensor, failed: list[bool]) -> float:
    if log_probs is None or any(failed) or not np.isfinite(log_probs).all():
        return math.inf
    return float(cnll_ttcv(torch.as_tensor(log_probs).double(), labels))


def tuned_brute_force(config: RecommendConfig, listed: list[Candidate], data: Any) -> tuple[dict, dict, int]:
    """Each candidate's truth in its validation-chosen cell, the chosen cells, and the brute force's FLOPs."""
    test, val = data.y_test.long(), data.y_val.long()
    truth, chosen, flops = {}, {}, 0
    for candidate in listed:
        scores = {}
        for lr in config.tune_lrs:
            for wd in config.tune_weight_decays:
                cell = dataclasses.replace(config, recipe=config.recipe.with_train(lr=lr, weight_decay=wd))
                job = brute_job(cell, candidate, 0)
                result = run_job(job)
                flops += job_training_flops(job, data)
                scores[(lr, wd)] = (_cnll(result.val_log_probs, val, result.failed),
                                    _cnll(result.test_log_probs, test, result.failed), cell)
        best = min(scores, key=lambda c: scores[c][0])
        values = [scores[best][1]]
        for seed in (1, 2):
            job = brute_job(scores[best][2], candidate, seed)
            result = run_job(job)
            flops += job_training_flops(job, data)
            values.append(_cnll(result.test_log_probs, test, result.failed))
        truth[candidate.name] = float(np.mean(values))
        chosen[candidate.name] = {"lr": best[0], "weight_decay": best[1]}
        print(f"  {candidate.name}: lr {best[0]:g}, wd {best[1]:g}, test CNLL {truth[candidate.name]:.4f}",
              flush=True)
    return truth, chosen, flops


def measure(budget: int, grid: dict[str, Any]) -> dict[str, Any]:
    config = RecommendConfig.from_mapping({"budget": budget, "verify": False, "tune": True, **grid})
    config.recipe.apply_threads()
    data = load_data(config.recipe.data)
    listed = candidates(config, data)
    folder = Path(tempfile.mkdtemp(prefix="bench-recommend-tune-"))
    try:
        start = time.perf_counter()
        result = run_recommend(config, folder / "recommend", progress=False)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    truth, chosen, brute_flops = tuned_brute_force(config, listed, data)
    brute_seconds = time.perf_counter() - start
    errors = [a.prediction.value - truth[a.candidate.name] for a in result.ranked
              if math.isfinite(truth[a.candidate.name])]
    picked = result.recommendation.candidate.name
    return {"budget": budget, "recommendation": picked, "best_by_tuned_brute_force": min(truth, key=truth.get),
            "regret": truth[picked] - min(truth.values()),
            "prediction_rmse": float(np.sqrt(np.mean(np.square(errors)))),
            "recommend": {"seconds": seconds, "training_flops": result.cost.training_flops,
                          "settings": result.tuning.settings},
            "tuned_brute_force": {"seconds": brute_seconds, "training_flops": brute_flops, "cells": chosen},
            "candidates": [{"name": a.candidate.name, "family": family_key(a.candidate),
                            "predicted": a.prediction.value, "interval": [a.prediction.lower, a.prediction.upper],
                            "truth": truth[a.candidate.name]} for a in result.ranked]}


def markdown(run: dict[str, Any]) -> str:
    r, b = run["recommend"], run["tuned_brute_force"]
    lines = ["# `recommend --tune --no-verify` against a brute force tuned on the same grid", "",
             f"`python benchmarks/bench_recommend_tune.py --budget {run['budget']} "
             + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in run.get("grid", {}).items())
             + f"`; {time.strftime('%Y-%m-%d')}. The brute force tries the same grid (lrs × weight decays), "
             "without extensions.",
             "", f"- recommended **{run['recommendation']}**; best by the tuned brute force "
             f"**{run['best_by_tuned_brute_force']}**; regret {run['regret']:.4f} CNLL; prediction RMSE "
             f"{run['prediction_rmse']:.4f}.",
             f"- cost: recommend {r['training_flops']:.2e} training FLOPs in {r['seconds']:.0f} s; the tuned brute "
             f"force {b['training_flops']:.2e} in {b['seconds']:.0f} s (ratio "
             f"{r['training_flops'] / b['training_flops']:.2f}).", "",
             "| family | recommend --tune: lr / wd (at P/2) |", "|---|---|"]
    lines += [f"| {k} | {v['lr']:g} / {v['weight_decay']:g} |" for k, v in r["settings"].items()]
    lines += ["", "| candidate | predicted | 5–95% | tuned brute force (3 seeds) | its cell lr / wd |",
              "|---|---:|---:|---:|---|"]
    for c in run["candidates"]:
        cell = b["cells"][c["name"]]
        lines.append(f"| {c['name']} | {c['predicted']:.4f} | {c['interval'][0]:.4f}–{c['interval'][1]:.4f} | "
                     f"{c['truth']:.4f} | {cell['lr']:g} / {cell['weight_decay']:g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=23_050)
    parser.add_argument("--tune-lrs", default=None, help="recommend's --tune-lrs (default: its own)")
    parser.add_argument("--tune-weight-decays", default=None, help="recommend's --tune-weight-decays")
    parser.add_argument("--tune-seeds", default=None, help="recommend's --tune-seeds")
    parser.add_argument("--tune-extensions", default=None, help="recommend's --tune-extensions")
    args = parser.parse_args()
    grid = {k: v for k, v in vars(args).items() if k.startswith("tune_") and v is not None}
    run = measure(args.budget, grid)
    run["grid"] = grid
    print(f"budget {args.budget:,}: regret {run['regret']:.4f}; RMSE {run['prediction_rmse']:.4f}")
    (RESULTS / "recommend_tune.json").write_text(json.dumps(run, indent=1) + "\n")
    (RESULTS / "recommend_tune.md").write_text(markdown(run))


if __name__ == "__main__":
    main()
