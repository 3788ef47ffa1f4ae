"""`recommend --tune --no-verify` against a brute force whose every candidate is tuned on the same grid (issue 23).

The peer: every listed candidate trained at the budget in every cell of recommend's grid (`tune_lrs` ×
`tune_weight_decays`), seed 1, grown by the same grid-edge rule (`tune_extensions`); each candidate's cell
chosen on the validation split (the same split recommend tunes on; the test split is never used to choose),
then seeds 2 and 3 trained in that cell; the truth is the 3-seed mean test CNLL in the chosen cell. The
brute force's runs are cached by job id (`--cache`), so a second run of the benchmark retrains only
recommend. Printed and written (benchmarks/results/recommend_tune.md and .json, one entry per budget): the
regret of `recommend --tune`'s choice against that truth, its prediction RMSE, each family's chosen cells in
both, the winner's curse measured on recommend's ladders, and the cost of both in training FLOPs and time.

    python benchmarks/bench_recommend_tune.py --budget 23050 --budget 80000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_recommend_cost import RESULTS, brute_job, one_seed_regret, stored_training  # noqa: E402

from ensplit._version import __version__  # noqa: E402
from ensplit.data.spec import load_data  # noqa: E402
from ensplit.experiments.recommend import run_recommend  # noqa: E402
from ensplit.experiments.recommend_cost import job_training_flops  # noqa: E402
from ensplit.experiments.recommend_grid import Grid, search_grid  # noqa: E402
from ensplit.experiments.recommend_plan import Candidate, RecommendConfig, candidates  # noqa: E402
from ensplit.experiments.recommend_tune import TUNE_NETWORKS, at_cell, family_key  # noqa: E402
from ensplit.metrics import cnll_ttcv  # noqa: E402
from ensplit.runs.jobs import run_job  # noqa: E402
from ensplit.store import ResultStore  # noqa: E402


def _cnll(log_probs: np.ndarray | None, labels: torch.Tensor, failed: list[bool]) -> float:
    if log_probs is None or any(failed) or not np.isfinite(log_probs).all():
        return math.inf
    return float(cnll_ttcv(torch.as_tensor(log_probs).double(), labels))


class Runs:
    """Brute-force runs by job id: (validation CNLL, test CNLL, training seconds), kept in a JSON file between
    benchmark runs. `seconds` sums every run's own training time, cached or not, so a cached rerun reports the
    brute force's full cost (its own wall time in the first run, less the scoring)."""

    def __init__(self, path: Path, data: Any) -> None:
        self.path, self.data = path, data
        known = json.loads(path.read_text()) if path.exists() else {}
        self.known = {job_id: entry for job_id, entry in known.items() if len(entry) == 3}  # older caches: no time
        self.flops, self.seconds = 0, 0.0

    def cnll(self, job: Any) -> tuple[float, float]:
        self.flops += job_training_flops(job, self.data)
        if job.job_id not in self.known:
            result = run_job(job)
            self.known[job.job_id] = [_cnll(result.val_log_probs, self.data.y_val.long(), result.failed),
                                      _cnll(result.test_log_probs, self.data.y_test.long(), result.failed),
                                      result.seconds]
            self.path.write_text(json.dumps(self.known))
        val, test, seconds = self.known[job.job_id]
        self.seconds += float(seconds)
        return float(val), float(test)


def tuned_brute_force(config: RecommendConfig, listed: list[Candidate], runs: Runs) -> tuple[dict, dict, dict]:
    """Each candidate's truth in its validation-chosen cell, the chosen cells (with whether the optimum is
    interior, and the three seeds' test CNLL), and each candidate's cells tried."""
    truth, chosen, tried = {}, {}, {}
    for candidate in listed:
        def score(cells: list, candidate: Candidate = candidate) -> dict:
            return {cell: runs.cnll(brute_job(at_cell(config, cell), candidate, 0))[0] for cell in cells}

        search = search_grid(Grid(config.tune_lrs, config.tune_weight_decays), score, config.tune_extensions)
        best = search.best
        values = [runs.cnll(brute_job(at_cell(config, best), candidate, seed))[1] for seed in (0, 1, 2)]
        truth[candidate.name] = float(np.mean(values))
        chosen[candidate.name] = {"lr": best[0], "weight_decay": best[1], "edges": search.edges, "seeds": values}
        tried[candidate.name] = len(search.grid.cells())
        print(f"  {candidate.name}: lr {best[0]:g}, wd {best[1]:g}, test CNLL {truth[candidate.name]:.4f}",
              flush=True)
    return truth, chosen, tried


def weight_decay_by_members(config: RecommendConfig, listed: list[Candidate], runs: Runs,
                            chosen: dict[str, dict]) -> dict[str, dict]:
    """For the single network and every memory split: seed 1's validation CNLL in each weight decay of the
    grid at the lr its search chose (`chosen`, from `tuned_brute_force`; its cached runs: nothing is trained
    here). Shows which weight decay a network alone and an ensemble of n prefer, what `recommend --tune` tunes
    its pools for."""
    rows = {}
    for candidate in listed:
        if candidate.method in ("single", "deep"):
            lr = chosen[candidate.name]["lr"]
            rows[candidate.name] = {"members": candidate.members, "lr": lr, "validation_cnll": {
                f"{wd:g}": runs.cnll(brute_job(at_cell(config, (lr, wd)), candidate, 0))[0]
                for wd in config.tune_weight_decays}}
    return rows


def weight_decay_table(rows: dict[str, dict]) -> list[str]:
    """The markdown of `weight_decay_by_members`."""
    decays = list(next(iter(rows.values()))["validation_cnll"])
    lines = ["Weight decay by ensemble size: seed 1's validation CNLL of the single network and each memory split "
             "in every weight decay of the grid, at the lr its search chose (the brute force's runs). "
             "`recommend --tune` tunes each deep-pool size twice for this reason: as one ensemble for the "
             "memory splits, each network alone for the single network.", "",
             "| candidate | lr | " + " | ".join(f"wd {d}" for d in decays) + " | best |",
             "|---|---:|" + "---:|" * len(decays) + "---|"]
    for name, row in rows.items():
        values = row["validation_cnll"]
        best = min(values, key=values.get)
        lines.append(f"| {name} | {row['lr']:g} | " + " | ".join(f"{values[d]:.4f}" for d in decays)
                     + f" | {best} |")
    return lines


def winners_curse(ladders: dict, seeds: int) -> dict[str, float]:
    """How much lower the run that won its rung's validation grid scores on test than the fresh runs trained
    in the same cell afterwards (each ladder rung's first `seeds` values are the choosing runs, `gather`)."""
    gaps = [float(np.mean(v[:seeds]) - np.mean(v[seeds:])) for ladder in ladders.values() for v in ladder.values()
            if len(v) > seeds]
    return {"rungs": len(gaps), **_mean_gap(gaps)}


def _mean_gap(gaps: list[float]) -> dict[str, float]:
    """The mean of `gaps` and its standard error (nan where there are too few)."""
    return {"mean_gap": float(np.mean(gaps)) if gaps else math.nan,
            "standard_error": float(np.std(gaps, ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else math.nan}


def pool_winners_curse(folder: Path, tuning: Any, splits: int) -> dict[str, Any]:
    """The same for the deep pools: at each tuned pool size, the test CNLL of the three networks that chose its
    cell (as the one ensemble they were scored as) minus that of three fresh networks of the cell."""
    store = ResultStore(folder)
    labels = torch.as_tensor(store.labels()).long()
    networks = store.networks("pool")
    sizes = []
    for size in sorted(tuning.families["deep"].sizes, key=lambda s: s.params):
        groups = [size.jobs(size.search.best), size.rest(size.search.best)]
        ids = [{job.job_id for job in group} for group in groups]
        rows = [sorted((r for r in networks if r["job_id"] in own), key=lambda r: r["member"]) for own in ids]
        if len(rows[1]) < TUNE_NETWORKS:
            continue
        chose, fresh = (float(cnll_ttcv(torch.as_tensor(store.log_probs(r[:TUNE_NETWORKS])).double(), labels,
                                        splits=splits)) for r in rows)
        sizes.append({"params": size.params, "choosing": chose, "fresh": fresh, "gap": chose - fresh})
    return {"sizes": sizes, **_mean_gap([s["gap"] for s in sizes])}


def at_own_settings(config: RecommendConfig, result: Any, runs: Runs) -> dict[str, Any]:
    """The recommendation trained as a user who follows it would: at the budget, with its family's carried lr and
    weight decay (the recipe's when not tuned), the brute force's 3 seeds (cached where they are the cell the
    brute force chose). The regret of recommend's answer is read from these, not from the brute force's cell
    of the same candidate, which its own (noisy) validation may have put elsewhere."""
    candidate = result.recommendation.candidate
    train = config.recipe.train
    chosen = result.tuning.settings.get(family_key(candidate), {"lr": train.lr, "weight_decay": train.weight_decay})
    cell = (chosen["lr"], chosen["weight_decay"])
    seeds = [runs.cnll(brute_job(at_cell(config, cell), candidate, seed))[1] for seed in (0, 1, 2)]
    return {"lr": cell[0], "weight_decay": cell[1], "seeds": seeds, "mean": float(np.mean(seeds))}


def measure(budget: int, grid: dict[str, Any], cache: Path, kept: Path | None = None) -> dict[str, Any]:
    """Run recommend (in `kept`, resumed and kept, when given; else in a folder removed afterwards) and the
    tuned brute force. recommend's cost is the training seconds its store records (so a resumed folder reports
    what its runs cost when they were trained), against the brute force's summed training seconds."""
    config = RecommendConfig.from_mapping({"budget": budget, "verify": False, "tune": True, **grid})
    config.recipe.apply_threads()
    data = load_data(config.recipe.data)
    listed = candidates(config, data)
    folder = kept or Path(tempfile.mkdtemp(prefix="bench-recommend-tune-")) / "recommend"
    try:
        start = time.perf_counter()
        result = run_recommend(config, folder, progress=False)
        seconds = time.perf_counter() - start
        jobs, train_seconds = stored_training(folder)
        pool_curse = pool_winners_curse(folder, result.tuning, config.cnll_splits)
    finally:
        if kept is None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    runs = Runs(cache, data)
    truth, chosen, tried = tuned_brute_force(config, listed, runs)
    brute_seconds, brute_flops = runs.seconds, runs.flops
    decays = weight_decay_by_members(config, listed, runs, chosen)  # cached runs only: after the cost is read
    own = at_own_settings(config, result, runs)  # what following the answer gives: not part of either cost
    errors = [a.prediction.value - truth[a.candidate.name] for a in result.ranked
              if math.isfinite(truth[a.candidate.name])]
    picked = result.recommendation.candidate.name
    return {"budget": budget, "winners_curse": winners_curse(result.evidence.ladders, config.seeds),
            "pool_winners_curse": pool_curse,
            "recommendation": picked, "best_by_tuned_brute_force": min(truth, key=truth.get),
            "regret": truth[picked] - min(truth.values()),
            "regret_at_own_settings": own["mean"] - min(truth.values()), "own_settings": own,
            "one_seed_brute_force_regret": one_seed_regret({n: c["seeds"][0] for n, c in chosen.items()}, truth),
            "prediction_rmse": float(np.sqrt(np.mean(np.square(errors)))),
            "recommend": {"seconds": seconds, "train_seconds": train_seconds, "jobs": jobs,
                          "resumed": result.trained_jobs < jobs, "training_flops": result.cost.training_flops,
                          "settings": result.tuning.settings, "tuning": result.tuning.to_json(),
                          "cost": result.cost.to_json()},
            "tuned_brute_force": {"seconds": brute_seconds, "training_flops": brute_flops, "cells": chosen,
                                  "cells_tried": tried, "weight_decay_by_members": decays},
            "candidates": [{"name": a.candidate.name, "family": family_key(a.candidate),
                            "predicted": a.prediction.value, "interval": [a.prediction.lower, a.prediction.upper],
                            "truth": truth[a.candidate.name]} for a in result.ranked]}


def section(run: dict[str, Any]) -> list[str]:
    """One budget's section: the answer, the cost, each family's cells and every candidate against the truth."""
    r, b = run["recommend"], run["tuned_brute_force"]
    predicted = {c["name"]: c["predicted"] for c in run["candidates"]}
    command = (f"python benchmarks/bench_recommend_tune.py --budget {run['budget']}"
               + "".join(f" --{k.replace('_', '-')} {v}" for k, v in run.get("grid", {}).items()))
    lines = [f"## {run['budget']:,} parameters", "", f"`{command}`", "",
             f"- recommended **{run['recommendation']}**; best by the tuned brute force "
             f"**{run['best_by_tuned_brute_force']}**; regret {run['regret']:.4f} CNLL; prediction RMSE "
             f"{run['prediction_rmse']:.4f}.",
             *[f"- the answer as a user would follow it: {run['recommendation']} at its own carried settings "
                f"(lr {o['lr']:.4g}, wd {o['weight_decay']:g}), 3 seeds: {o['mean']:.4f} "
                f"({', '.join(f'{v:.4f}' for v in o['seeds'])}; predicted {predicted[run['recommendation']]:.4f}), "
                f"regret {run['regret_at_own_settings']:.4f}; the "
                f"1-seed tuned brute force's own regret {run['one_seed_brute_force_regret']:.4f}."
               for o in [run.get("own_settings")] if o is not None],
             f"- cost: recommend {r['training_flops']:.2e} training FLOPs in {r['train_seconds']:.0f} s of training "
             f"({r['jobs']} runs, the store's record{', trained by an earlier call' if r['resumed'] else ''}; "
             f"{r['seconds']:.0f} s wall for this call); the tuned brute force {b['training_flops']:.2e} in "
             f"{b['seconds']:.0f} s (the sum of its runs' training times). Ratios: FLOPs "
             f"{r['training_flops'] / b['training_flops']:.2f}, training time {r['train_seconds'] / b['seconds']:.2f}; "
             f"recommend's own `cost.ratio`, against one seed of every candidate in every cell of the grid before "
             f"extensions: {r['cost']['ratio']:.2f}.", "",
             "| family | lr / wd chosen at each cheap size (params) | carried to P: lr / wd (γ) |", "|---|---|---|"]
    for family in r["tuning"]["families"]:
        sizes = ", ".join(f"{s['lr']:g} / {s['weight_decay']:g} ({s['params']:,})" for s in family["sizes"])
        carried = family["settings"]
        lines.append(f"| {family['family']} | {sizes} | {carried['lr']:g} / {carried['weight_decay']:g} "
                     f"({family['lr_exponent']:.2f}) |")
    lines += ["", "| candidate | predicted | 5–95% | tuned brute force (3 seeds) | its standard error | "
              "its cell lr / wd |", "|---|---:|---:|---:|---:|---|"]
    for c in run["candidates"]:
        cell = b["cells"][c["name"]]
        error = np.std(cell["seeds"], ddof=1) / math.sqrt(len(cell["seeds"]))
        lines.append(f"| {c['name']} | {c['predicted']:.4f} | {c['interval'][0]:.4f}–{c['interval'][1]:.4f} | "
                     f"{c['truth']:.4f} | {error:.4f} | {cell['lr']:g} / {cell['weight_decay']:g} |")
    if "weight_decay_by_members" in b:
        lines += ["", *weight_decay_table(b["weight_decay_by_members"])]
    curse = run["winners_curse"]
    lines += ["", f"The winner's curse: over {curse['rungs']} ladder rungs, the run that won its rung's validation "
              f"grid scores {-curse['mean_gap']:.4f} CNLL (standard error {curse['standard_error']:.4f}) lower on "
              "test than the fresh runs trained afterwards in the same cell; the rungs hold both.", ""]
    pools = run.get("pool_winners_curse")
    if pools and pools["sizes"]:  # results from before every tuned pool held fresh networks have none
        each = ", ".join(f"{s['gap']:+.4f} ({s['params']:,})" for s in pools["sizes"])
        lines += [f"In the deep pools: the three networks that chose each size's cell, as the one ensemble they "
                  f"were scored as, minus three fresh networks of that cell, on test: {each}; mean "
                  f"{pools['mean_gap']:+.4f} (standard error {pools['standard_error']:.4f}; positive: the "
                  "choosing three score worse). As on a rung, every cell trains the same seeds, so only a cell's "
                  "luck with them can favour the choosing networks, and a gap of either sign also holds the two "
                  "trios' own seed difference, which the average over every rung's independent seeds cancels and "
                  "a few pool sizes do not. The pools hold both.", ""]
    return lines


def markdown(runs: list[dict[str, Any]], machine: str) -> str:
    lines = ["# `recommend --tune --no-verify` against a brute force tuned on the same grid", "",
             f"Machine: {machine} The brute force tries the same grid with the same edge rule; its truth is the "
             "3-seed mean test CNLL in the cell it chose on validation. Regret: the truth of recommend's answer "
             "in that cell, minus the best truth; at its own settings: the answer trained with the lr and weight "
             "decay recommend carried to the budget for it (what a user following it gets), 3 seeds; the peer's "
             "own: the candidate best by seed 1 alone (one of the truth's three seeds, which flatters it).", "",
             "| budget | recommended | best by the tuned brute force | regret | at its own settings | the 1-seed "
             "peer's | prediction RMSE | FLOPs ratio | training-time ratio |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        r, b = run["recommend"], run["tuned_brute_force"]
        own, peer = run.get("regret_at_own_settings"), run.get("one_seed_brute_force_regret")
        lines.append(f"| {run['budget']:,} | {run['recommendation']} | {run['best_by_tuned_brute_force']} | "
                     f"{run['regret']:.4f} | {'-' if own is None else f'{own:.4f}'} | "
                     f"{'-' if peer is None else f'{peer:.4f}'} | {run['prediction_rmse']:.4f} | "
                     f"{r['training_flops'] / b['training_flops']:.2f} | {r['train_seconds'] / b['seconds']:.2f} |")
    lines.append("")
    for run in runs:
        lines += section(run)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, action="append", help="parameter budget (repeatable; a budget "
                        "already in the results file is replaced, the others kept)")
    parser.add_argument("--tune-lrs", default=None, help="recommend's --tune-lrs (default: its own)")
    parser.add_argument("--tune-weight-decays", default=None, help="recommend's --tune-weight-decays")
    parser.add_argument("--tune-extensions", default=None, help="recommend's --tune-extensions")
    parser.add_argument("--folder", type=Path, default=None, help="parent of recommend's run folders (one per "
                        "budget), kept and resumed by a later run (default: temporary ones)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench-recommend-tune.json",
                        help="the brute force's runs by job id, reused by a later run")
    args = parser.parse_args()
    grid = {k: v for k, v in vars(args).items() if k.startswith("tune_") and v is not None}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    machine = (f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
               f"ensplit {__version__} (commit {commit}), {time.strftime('%Y-%m-%d')}.")
    path = RESULTS / "recommend_tune.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    runs = {run["budget"]: run for run in earlier.get("runs", [])}
    for budget in args.budget or [23_050]:
        folder = None if args.folder is None else args.folder / str(budget)
        run = measure(budget, grid, args.cache, folder)
        run["grid"], run["machine"] = grid, machine
        runs[budget] = run
        print(f"budget {budget:,}: regret {run['regret']:.4f}; RMSE {run['prediction_rmse']:.4f}", flush=True)
        ordered = [runs[b] for b in sorted(runs)]
        path.write_text(json.dumps({"runs": ordered}, indent=1) + "\n")
        (RESULTS / "recommend_tune.md").write_text(markdown(ordered, machine))


if __name__ == "__main__":
    main()
