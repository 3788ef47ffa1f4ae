"""The design-space study of Wasay & Idreos: single networks vs width- and depth-equivalent ensembles.

For every single network S(w, d) of the grid and every ensemble size K, the budget planner gives the
width-equivalent ensemble (K members of width w, depth d') and the depth-equivalent one (K members of
width w', depth d). Each distinct network configuration is one training job (member-batched, the ensemble's
test predictions stored after every epoch, so one run fills the whole epochs axis) and one cost job (timing,
inference and memory measured on fresh copies), planned by `designspace_plan`, run by `designspace_jobs` and
stored in a resumable run folder (`ensplit.runs.folder`); every record is scored from the store. A killed
designspace rerun with the same command trains only what is missing; a finished one trains nothing.

Jobs run on the configured executor (local, process pool or Ray); each loads the recipe's data set itself.

Seconds per epoch, both by the one rule of `ensplit.train.epoch_time` (the median after the warm-up):
`seconds_per_epoch_batched` is the training job's own, of the epochs the training loop timed after the first;
`seconds_per_epoch` (the paper's protocol, members one after another) is the cost job's, of its timed runs
after the warm-up runs, scaled to an epoch.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ensplit._version import provenance
from ensplit.analysis.design_space import SINGLE, DesignRecord, SwitchoverThreshold, thresholds, time_to_accuracy
from ensplit.analysis.ensemble_scores import score
from ensplit.data.dataset import Dataset
from ensplit.data.spec import load_data
from ensplit.errors import EnsplitError
from ensplit.experiments.designspace_config import DesignSpaceConfig
from ensplit.experiments.designspace_jobs import (
    MEMORY_CACHE,
    build_network,
    measure_cost_job,
    stored_costs,
    train_design_job,
)
from ensplit.experiments.designspace_plan import (
    COST_KIND,
    KIND,
    PlannedRecord,
    Planner,
    network_jobs,
    plan_equivalents,
    plan_networks,
    plan_records,
)
from ensplit.jsonable import to_jsonable
from ensplit.runs.executors import make_executor
from ensplit.runs.folder import RunFolder, admit, execute, folder_owner, legacy_run_folder, open_folder, stored_job
from ensplit.runs.jobs import JobResult, load_job_data
from ensplit.runs.plan import TrainJob
from ensplit.train import measure
from ensplit.train.epoch_time import seconds_per_epoch

__all__ = ["DesignSpaceConfig", "DesignSpaceResult", "Planner", "build_network", "plan_equivalents",
           "run_design_space", "run_designspace"]


@dataclass
class DesignSpaceResult:
    """Every record (triples single, weq, deq per (w, d, K), in grid order), the EST per K, and notes.
    `to_json()` is what `ensplit designspace --json` prints; `trained_jobs` (how many jobs this run ran, training
    and cost; 0 for a finished folder) is not part of it."""

    config: DesignSpaceConfig
    dataset: str
    device: str
    records: list[DesignRecord]
    est: dict[int, SwitchoverThreshold]
    memory_method: str
    unformable: list[str] = field(default_factory=list)
    report: Path | None = None
    trained_jobs: int = 0
    notes: list[str] = field(default_factory=list)  # data, device, threads, version, training: for the page
    threads: int = 1

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({"recipe": self.config.recipe.to_json(), "dataset": self.dataset, "device": self.device,
                            "est": {str(k): vars(v) for k, v in sorted(self.est.items())},
                            "memory_method": self.memory_method, "unformable": self.unformable,
                            "records": [r.to_json() for r in self.records],
                            "report": None if self.report is None else str(self.report), **provenance()})

    def save(self, folder: Path) -> None:
        """`folder/results.json`: `to_json()` with the notes, threads and every record's extra fields."""
        from ensplit.store import atomic_write_text

        summary = {**self.to_json(), "notes": self.notes, "threads": self.threads,
                   "full_records": [vars(r) for r in self.records]}
        atomic_write_text(Path(folder) / "results.json", json.dumps(to_jsonable(summary), indent=1))


def _log(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _train_config(job: TrainJob, dataset: Dataset, progress: bool) -> JobResult:
    """Train one network configuration (its training job; `designspace_jobs.train_design_job`)."""
    return train_design_job(job, dataset, progress)


def _task(job: TrainJob, device: str, progress: bool) -> JobResult:
    """The job function of designspace's executor, on the job's data set (loaded once per process, then moved
    to `device`): module-level, so process and Ray workers import it by name."""
    dataset = load_job_data(job.data, device)
    if job.kind == COST_KIND:
        return measure_cost_job(job, dataset, MEMORY_CACHE)
    return _train_config(job, dataset, progress)  # looked up when called, so a test may replace it


def _check_dataset(config: DesignSpaceConfig, dataset: Dataset) -> None:
    """The jobs load the recipe's data set themselves (in any worker): refuse another one given for planning."""
    recipe = load_data(config.recipe.data)
    if not (torch.equal(dataset.y_train.cpu(), recipe.y_train) and torch.equal(dataset.y_test.cpu(), recipe.y_test)):
        raise EnsplitError("run_design_space: the data set is not the recipe's; pass config.recipe.load_data() "
                           "(every job trains on the recipe's data)")


def _stored(folder: RunFolder, kind: str, job: TrainJob) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """A stored job's array and its network rows, in member order."""
    rows = sorted((n for n in folder.store.networks(kind) if n["job_id"] == job.job_id), key=lambda n: n["member"])
    return torch.as_tensor(folder.store.log_probs(rows)), rows


def stored_network(folder: RunFolder, jobs: tuple[TrainJob, TrainJob], labels: torch.Tensor,
                   progress: bool) -> dict[str, Any]:
    """One configuration's scores and costs, from its stored jobs (see `designspace_jobs` for their arrays)."""
    trained, cost = jobs
    stored, rows = _stored(folder, KIND, trained)
    epochs = list(torch.split(stored, labels.shape[0], dim=1))  # [K, N, C] per epoch
    accuracy = [score(lp, labels)["accuracy"] for lp in epochs]
    final = score(epochs[-1], labels)
    diverged = sum(1 for n in rows if n["status"] != "ok")
    if diverged:
        _log(f"  warning: {trained.family} width {trained.width} depth {trained.depth}: {diverged} member(s) "
             "diverged", progress)
    costs = stored_costs(_stored(folder, COST_KIND, cost)[0][0, 0].numpy())
    batched = seconds_per_epoch(json.loads(stored_job(folder, trained.job_id)["seconds_per_epoch"]))
    return dict(accuracy_by_epoch=accuracy, member_accuracy=final["member_accuracy"], nll=final["nll"],
                cnll=final["cnll"], seconds_per_epoch_batched=batched, **costs)


def run_design_space(config: DesignSpaceConfig, dataset: Dataset, progress: bool = True,
                     planner: Planner | None = None, out: Path | None = None) -> DesignSpaceResult:
    """Train and measure every class at every grid point (what `out` lacks: without it, in a temporary folder
    forgotten afterwards); `dataset` is the recipe's (`config.recipe.load_data()`, on the device), for planning
    and labels: the jobs load it themselves. The caller holds `out`'s lock."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="ensplit-designspace-") as scratch:
            return run_design_space(config, dataset, progress, planner, Path(scratch))
    _check_dataset(config, dataset)
    planner = planner or partial(plan_equivalents, **config.recipe.options)
    planned, unformable = plan_records(config, dataset, planner)
    networks = plan_networks(config, planned, dataset)
    jobs = {network: network_jobs(config, network) for network in networks}
    folder = open_folder(config, out, "designspace", data=dataset)
    try:
        executor = make_executor(config.executor, str(dataset.x_train.device), config.workers, config.address,
                                 progress, config.gpus_per_job, task=_task)
        trained = execute([job for pair in jobs.values() for job in pair], folder, executor, progress, "networks")
        labels = dataset.y_test.cpu()
        scored = {network: stored_network(folder, pair, labels, progress) for network, pair in jobs.items()}
        folder.store.checkpoint()
    finally:
        folder.store.close()
    for (mw, md, k), s in scored.items():
        _log(f"{config.recipe.family} width {mw} depth {md} × {k}: accuracy {s['accuracy_by_epoch'][-1]:.4f}, "
             f"{s['seconds_per_epoch']:.3g} s/epoch ({s['seconds_per_epoch_batched']:.3g} batched)", progress)
    records = _fill_time_to_accuracy([_record(config, r, scored[r.network], dataset) for r in planned])
    return DesignSpaceResult(config, dataset.name, str(dataset.x_train.device), records,
                             thresholds(records, min_fraction=config.est_fraction),
                             measure.memory_method(dataset.x_train.device), unformable, trained_jobs=trained)


def _record(config: DesignSpaceConfig, planned: PlannedRecord, scored: dict[str, Any],
            dataset: Dataset) -> DesignRecord:
    return DesignRecord(design_class=planned.design_class, budget_width=planned.budget_width,
                        budget_depth=planned.budget_depth, group_members=planned.group_members,
                        width=planned.width, depth=planned.depth, members=planned.members,
                        params=planned.members * config.recipe.params(planned.width, dataset, planned.depth),
                        **scored)


def _fill_time_to_accuracy(records: list[DesignRecord]) -> list[DesignRecord]:
    """Seconds (paper protocol: members one after another) to reach the single network's best accuracy."""
    best = {(r.budget_width, r.budget_depth): max(r.accuracy_by_epoch) for r in records if r.design_class == SINGLE}
    return [replace(r, time_to_single_accuracy=time_to_accuracy(
        r.accuracy_by_epoch, best[(r.budget_width, r.budget_depth)], r.seconds_per_epoch)) for r in records]


def _designspace_folder(directory: Path, names: set[str]) -> bool:
    """A designspace folder without the ownership marker: its results.json and report of a release that stored
    no runs (`"ensplit"`: older still), or a run folder of designspace's (never another command's run folder,
    whose config or index names its command)."""
    from ensplit.store.ownership import json_with, report_and

    if folder_owner(directory) not in (None, "designspace"):
        return False
    older = report_and({"results.json": json_with(("ensplit_version", "ensplit"), "records")})
    return older(directory, names) or legacy_run_folder("designspace")(directory, names)


def run_designspace(config: DesignSpaceConfig | None = None, out: str | Path = "designspace-out",
                    progress: bool = True) -> DesignSpaceResult:
    """The whole experiment: load the recipe's data on its device, train and measure the grid, write
    `out/results.json` (every record, with the recipe, version and commit); the caller writes the page
    (`ensplit.reports.write(result, out)`)."""
    from ensplit.store import folder_lock
    from ensplit.store.ownership import claim_folder

    config = config or DesignSpaceConfig()
    out = Path(out)
    with folder_lock(out, "designspace"):  # an unusable --out is refused before any training
        claim_folder(out, "designspace", _designspace_folder)
        config = admit(config, out, "designspace")
        dataset = config.recipe.load_data()
        result = run_design_space(config, dataset, progress, out=out)
        _record_designspace(config, result, dataset, out, progress)
    return result


def _record_designspace(config: DesignSpaceConfig, result: DesignSpaceResult, dataset: Any, out: Path,
                        progress: bool) -> None:
    """Log the EST per K, put the run's notes on `result` and write `out/results.json`."""
    from ensplit._version import __version__

    for k, t in sorted(result.est.items()):
        where = f"{t.params:,} params, {t.epochs} epochs" if t.params is not None else "not reached in this grid"
        _log(f"EST for K={k}: {where}", progress)
    result.threads = torch.get_num_threads()
    result.notes = [f"Data: {result.dataset} ({dataset.x_train.shape[0]} train / {dataset.x_test.shape[0]} test), "
                    f"device {result.device}, {result.threads} CPU thread(s), ensplit {__version__}.",
                    f"Training: {config.recipe.train}.", *(f"Not formable: {u}." for u in result.unformable)]
    result.save(out)
