"""Parameter-sharing ensembles side by side at one width or one parameter budget (the MixtureEnsembles paper).

For each method: size it (at the width, or the widest that fits the budget), train it with the recipe as one
`TrainJob` (`compare_plan`, `compare_jobs`) stored in a resumable run folder (`ensplit.runs.folder`), and score
the stored member log-probabilities `[M, N, C]` (probabilities averaged, science.md §1; CNLL by test-time
cross-validation). Optional sweeps re-run every method over budgets and member counts. A killed compare
rerun with the same command trains only what is missing; a finished one trains nothing. Without `out`, the
runs are stored in a temporary folder and forgotten.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ensplit._version import provenance
from ensplit.analysis.ensemble_scores import score
from ensplit.data.dataset import Dataset
from ensplit.ensembles.cost import forward_flops
from ensplit.experiments.compare_config import CompareConfig, Method, nested_method_options
from ensplit.experiments.compare_jobs import build_job_model, corrupted_metrics, corrupted_scores, run_compare_job
from ensplit.experiments.compare_plan import KIND, PlannedRow, check_method_options, plan_compare
from ensplit.files import atomic_write_text
from ensplit.jsonable import to_jsonable
from ensplit.runs.executors import make_executor
from ensplit.runs.folder import RunFolder, admit, execute, legacy_run_folder, open_folder, stored_job
from ensplit.runs.jobs import JobResult
from ensplit.runs.plan import TrainJob
from ensplit.store import folder_lock
from ensplit.store.ownership import claim_folder, json_with, report_and
from ensplit.train.epoch_time import seconds_per_epoch

__all__ = ["RESULT_KEYS", "CompareConfig", "CompareResult", "Method", "corrupted_scores", "nested_method_options",
           "run_compare", "run_method"]

RESULT_KEYS = ("method", "width", "members", "params", "flops_per_example", "seconds_per_epoch", "accuracy",
               "member_accuracy", "nll", "cnll", "ece", "brier", "disagreement", "diversity",
               "corrupted_accuracy", "corrupted_nll", "corrupted_ece")
FLOPS_BATCH = 128  # FLOPs per object are measured on a batch of this size (see forward_flops)


def run_method(job: TrainJob, device: str = "cpu", progress: bool = False) -> JobResult:
    """Train one planned method (the job task of compare's executor; `compare_jobs.run_compare_job`)."""
    return run_compare_job(job, device, progress)


def _task(job: TrainJob, device: str, progress: bool) -> JobResult:
    """The job function of compare's executor: module-level, so process and Ray workers import it by name."""
    return run_method(job, device, progress)  # looked up when called, so a test may replace run_method


def _log(message: str, progress: bool) -> None:
    if progress:
        print(f"ensplit compare: {message}", file=sys.stderr, flush=True)


def stored_row(planned: PlannedRow, folder: RunFolder, dataset: Dataset) -> dict[str, Any]:
    """One row with RESULT_KEYS and the method's `info`, scored from the job's stored predictions (the test set,
    then its corrupted copies, see `compare_jobs`); FLOPs and `info` come from the model rebuilt untrained."""
    job = planned.job
    networks = sorted((n for n in folder.store.networks(KIND) if n["job_id"] == job.job_id),
                      key=lambda n: n["member"])
    stored = torch.as_tensor(folder.store.log_probs(networks))
    labels = dataset.y_test.cpu()
    n = labels.shape[0]
    parts = list(torch.split(stored, n, dim=1))
    model = build_job_model(job, dataset)
    sample = dataset.prepare(dataset.x_test[:FLOPS_BATCH]).cpu().to(next(model.parameters()).dtype)
    epochs = json.loads(stored_job(folder, job.job_id)["seconds_per_epoch"])
    row = {"method": planned.method, "width": planned.width, "members": planned.members,
           "params": int(networks[0]["params"]), "flops_per_example": forward_flops(model, sample),
           "seconds_per_epoch": seconds_per_epoch(epochs), **score(parts[0], labels),
           **corrupted_metrics(parts[1:], labels)}
    row = {k: (None if isinstance(row[k], float) and not math.isfinite(row[k]) else row[k]) for k in RESULT_KEYS}
    diverged = sum(1 for n in networks if n["status"] != "ok")
    if diverged:
        print(f"ensplit compare: {planned.method}: {diverged} member(s) diverged", file=sys.stderr)
    return {**row, "info": dict(model.info)}


@dataclass
class CompareResult:
    """Rows of the comparison (and of the sweeps). `to_json()` is what `ensplit compare --json` prints;
    `trained_jobs` (how many jobs this run trained; 0 for a finished folder) is not part of it."""

    config: CompareConfig
    rows: list[dict[str, Any]]
    budget_rows: list[dict[str, Any]] = field(default_factory=list)
    member_rows: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    trained_jobs: int = 0

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({"recipe": self.config.recipe.to_json(), "members": self.config.members,
                            "budget": self.config.budget, "width": self.config.width,
                            "methods": self.rows, "budget_sweep": self.budget_rows, "member_sweep": self.member_rows,
                            "report": None if self.report is None else str(self.report), **provenance()})

    def save(self, folder: Path) -> None:
        """`folder/results.json`: the same object as `to_json()` (rewritten once the page's path is known)."""
        atomic_write_text(Path(folder) / "results.json", json.dumps(self.to_json(), indent=1))


def _compare_folder(directory: Path, names: set[str]) -> bool:
    """A compare folder without the ownership marker: its results.json and report of a release that stored no
    runs (`"ensplit"`: older still), or a run folder of compare's."""
    older = report_and({"results.json": json_with(("ensplit_version", "ensplit"), "methods")})
    return older(directory, names) or legacy_run_folder("compare")(directory, names)


def run_compare(config: CompareConfig | None = None, out: str | Path | None = None,
                progress: bool = True) -> CompareResult:
    """Train (what `out` lacks) and score every method and the sweeps; with `out`, write `out/results.json`
    beside the stored runs (the caller writes the page: `ensplit.reports.write(result, out)`)."""
    config = config or CompareConfig()
    if out is None:
        with tempfile.TemporaryDirectory(prefix="ensplit-compare-") as scratch:
            return _compare(config, Path(scratch), progress, keep=False)
    with folder_lock(out, "compare"):  # an unusable --out is refused before any training
        claim_folder(Path(out), "compare", _compare_folder)
        return _compare(admit(config, out, "compare"), Path(out), progress, keep=True)


def _compare(config: CompareConfig, out: Path, progress: bool, keep: bool) -> CompareResult:
    """The comparison itself; the caller holds `out`'s lock. Everything is planned and checked before the run
    folder is opened, so a refused run leaves nothing behind."""
    dataset = config.recipe.load_data()
    config.recipe.params(config.width, dataset)  # family, width, depth and options fit the data
    check_method_options(config, dataset)
    planned = plan_compare(config, dataset)
    folder = open_folder(config, out, "compare", data=dataset)
    try:
        jobs = list({row.job.job_id: row.job for rows in planned for row in rows}.values())
        executor = make_executor(config.executor, str(config.recipe.torch_device()), config.workers, config.address,
                                 progress, config.gpus_per_job, task=_task)
        trained = execute(jobs, folder, executor, progress, "methods")
        tables = [[stored_row(row, folder, dataset) for row in rows] for rows in planned]
        folder.store.checkpoint()
    finally:
        folder.store.close()
    for row in tables[0]:
        _log(f"{row['method']}: width {row['width']}, {row['members']} member(s), {row['params']:,} parameters, "
             f"accuracy {row['accuracy']:.4f}, CNLL {row['cnll']:.4f}", progress)
    result = CompareResult(config, *tables, trained_jobs=trained)
    if keep:
        result.save(out)
    return result
