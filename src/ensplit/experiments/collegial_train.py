"""Training the designed networks along the primal and dual curves (Littwin et al. 2020, Figs. 4 and 6).

Every collegial ensemble of the plan (`collegial_plan`: m paths of width n per point, one job per seed) is a
`TrainJob` run by the standard job runner (`ensplit.runs.jobs.run_job`, method "grouped" with collegial
aggregation) on the configured executor (in this process, a process pool or Ray) and stored in a resumable run
folder (`ensplit.runs.folder`): a killed `collegial --train` rerun with the same command trains only the jobs the
folder lacks, and a finished one trains nothing. Each point is scored from its stored test predictions
(accuracy, NLL, CNLL by test-time cross-validation); rows give the mean, the sample standard deviation over seeds
and the per-seed values, the exact parameters, the FLOPs per example and the seconds per training epoch
(`ensplit.train.epoch_time.seconds_per_epoch` of each run, averaged over the seeds).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ensplit.analysis.collegial import MLPBaseline
from ensplit.analysis.ensemble_scores import score
from ensplit.experiments.collegial_config import CollegialConfig
from ensplit.experiments.collegial_plan import KIND, PlannedCurve, PlannedPoint, plan_curves
from ensplit.runs.executors import make_executor
from ensplit.runs.folder import RunFolder, execute, open_folder, stored_job
from ensplit.train.epoch_time import seconds_per_epoch

METRICS = ("accuracy", "nll", "cnll")
Key = tuple[int, int, int]  # (width n, members m, seed)


@dataclass
class CurveTraining:
    """Rows (one per curve and width), predicted against measured optima, and the test predictions.
    `trained_jobs`: how many jobs this run trained (0 for a finished folder)."""

    rows: list[dict[str, Any]]
    optimum: dict[str, dict[str, Any]]
    log_probs: dict[Key, torch.Tensor]   # (n, m, seed) -> test log-probabilities [1, N, C] (float64, CPU)
    labels: torch.Tensor                 # test labels [N]
    trained_jobs: int = 0


@dataclass(frozen=True)
class StoredRun:
    """One stored job, read back: its test log-probabilities `[1, N, C]` (float64), scores and timings."""

    log_probs: torch.Tensor
    scores: dict[str, float]
    seconds_per_epoch: float
    seconds: float


def summarise(values: dict[str, list[float]]) -> dict[str, Any]:
    """Mean and sample standard deviation (None for one seed) of each metric over seeds."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        v = np.asarray(values[metric], dtype=float)
        out[metric] = float(v.mean())
        out[f"{metric}_std"] = float(v.std(ddof=1)) if len(v) > 1 else None
    return out


def _optimum(rows: list[dict[str, Any]], predicted: tuple[int, int]) -> dict[str, Any]:
    """The predicted optimum (n, m) next to the measured best point by accuracy and by CNLL."""
    def brief(row: dict[str, Any], metric: str) -> dict[str, Any]:
        return {"width": row["width"], "members": row["members"], "params": row["params"], metric: row[metric],
                f"{metric}_std": row[f"{metric}_std"]}

    by_acc = sorted(rows, key=lambda r: -r["accuracy"])
    by_cnll = sorted(rows, key=lambda r: r["cnll"])
    rank = {name: next((i + 1 for i, r in enumerate(order) if (r["width"], r["members"]) == predicted), None)
            for name, order in (("accuracy", by_acc), ("cnll", by_cnll))}
    return {"predicted": {"width": predicted[0], "members": predicted[1]},
            "best_accuracy": brief(by_acc[0], "accuracy"), "best_cnll": brief(by_cnll[0], "cnll"),
            "predicted_rank": rank, "points": len(rows)}


def stored_runs(folder: RunFolder, job_ids: list[str], labels: torch.Tensor) -> dict[str, StoredRun]:
    """The stored jobs, by id, each scored on the test labels."""
    networks: dict[str, list[dict[str, Any]]] = {}
    for network in folder.store.networks(KIND):
        networks.setdefault(network["job_id"], []).append(network)
    return {job_id: _stored_run(folder, job_id, networks[job_id], labels) for job_id in job_ids}


def _stored_run(folder: RunFolder, job_id: str, networks: list[dict[str, Any]], labels: torch.Tensor) -> StoredRun:
    networks = sorted(networks, key=lambda n: n["member"])
    log_probs = torch.as_tensor(folder.store.log_probs(networks)).double()
    record = stored_job(folder, job_id)
    return StoredRun(log_probs, score(log_probs, labels), seconds_per_epoch(json.loads(record["seconds_per_epoch"])),
                     float(record["seconds"]))


def point_row(point: PlannedPoint, runs: dict[str, StoredRun], baseline: MLPBaseline, alpha: float,
              curve: PlannedCurve) -> dict[str, Any]:
    """One row of the table: the point's design quantities and its scores over seeds."""
    n, m = point.width, point.members
    stored = [runs[job.job_id] for job in point.jobs]
    per_seed = {k: [float(run.scores[k]) for run in stored] for k in METRICS}
    variance = math.expm1(alpha * float(baseline.variance_sum(n))) / m
    return {"curve": point.curve, "width": n, "members": m, "params": point.params,
            "flops_per_example": m * float(baseline.path_cost(n, "flops")),
            "seconds_per_epoch": float(np.mean([run.seconds_per_epoch for run in stored])),
            "variance": variance, "variance_ratio": variance / curve.baseline_variance,
            "predicted_optimum": (n, m) == curve.predicted, **summarise(per_seed), "seeds": list(point.seeds),
            "per_seed": per_seed}


def train_curves(config: CollegialConfig, baseline: MLPBaseline, alpha: float, out: str | Path,
                 progress: bool = True) -> CurveTraining:
    """Train (what the run folder `out` lacks) and score the collegial ensembles along each curve of `config`
    (see the module docstring); the caller holds `out`'s lock. Everything is planned and checked before the
    folder is opened, so a refused run leaves no runs behind."""
    recipe = config.recipe
    dataset = recipe.load_data()
    curves = plan_curves(recipe, baseline, dataset, alpha, config.cost, config.max_width, config.train_curves,
                         config.train_widths, config.train_points, config.train_seeds, progress)
    labels = dataset.y_test.cpu()
    points = [point for curve in curves for point in curve.points]
    jobs = list({job.job_id: job for point in points for job in point.jobs}.values())
    folder = open_folder(config, out, KIND, data=dataset)
    try:
        executor = make_executor(config.executor, str(dataset.x_train.device), config.workers, config.address,
                                 False, config.gpus_per_job)  # no per-epoch bars: one bar over the networks
        trained = execute(jobs, folder, executor, progress, "collegial ensembles")
        runs = stored_runs(folder, [job.job_id for job in jobs], labels)
        folder.store.checkpoint()
    finally:
        folder.store.close()
    rows: list[dict[str, Any]] = []
    optimum: dict[str, dict[str, Any]] = {}
    for curve in curves:
        curve_rows = [point_row(point, runs, baseline, alpha, curve) for point in curve.points]
        if curve_rows:
            optimum[curve.curve] = _optimum(curve_rows, curve.predicted)
        rows += curve_rows
    _log_points(curves, runs, progress)
    log_probs = {(p.width, p.members, seed): runs[job.job_id].log_probs
                 for p in points for seed, job in zip(p.seeds, p.jobs, strict=True)}
    return CurveTraining(rows, optimum, log_probs, labels, trained)


def _log_points(curves: list[PlannedCurve], runs: dict[str, StoredRun], progress: bool) -> None:
    """One line per trained network on stderr (a network both curves share, once)."""
    if not progress:
        return
    seen: set[str] = set()
    for curve in curves:
        for p in curve.points:
            for seed, job in zip(p.seeds, p.jobs, strict=True):
                if job.job_id in seen:
                    continue
                seen.add(job.job_id)
                run = runs[job.job_id]
                print(f"ensplit collegial: {curve.curve}: n = {p.width}, m = {p.members} ({p.params:,} params), "
                      f"seed {seed}: accuracy {run.scores['accuracy']:.4f}, CNLL {run.scores['cnll']:.4f} "
                      f"({run.seconds:.1f} s)", file=sys.stderr, flush=True)
