"""Run a study: plan jobs, skip the finished ones, execute the rest, store each as it finishes."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ensplit.errors import EnsplitError
from ensplit.store import ResultStore
from ensplit.study.config import StudyConfig, build_config, load_toml, to_toml
from ensplit.study.executors import Executor, make_executor
from ensplit.study.jobs import load_job_data
from ensplit.study.plan import TrainJob, data_spec, plan_pool_jobs, plan_tune_jobs

CONFIG_FILE = "config.toml"


def open_study(config: StudyConfig, directory: str | Path) -> ResultStore:
    """Open (or start) a study folder; refuse one made by a config that trains something else."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise EnsplitError(f"study folder {directory} exists and is not a folder")
    existing = directory / CONFIG_FILE
    if existing.exists():
        previous = build_config(load_toml(existing))
        if previous.fingerprint() != config.fingerprint():
            changed = ", ".join(config.differences(previous)) or "unknown fields"
            raise EnsplitError(f"study folder {directory} was made by an incompatible config (differs in: "
                               f"{changed}); rerun with the same config or choose another --out")
    store = ResultStore(directory)
    existing.write_text(to_toml(config), encoding="utf-8")
    store.set_meta("fingerprint", config.fingerprint())
    return store


def execute(jobs: list[TrainJob], store: ResultStore, executor: Executor, progress: bool = True,
            label: str = "jobs") -> int:
    """Run the jobs the store lacks; returns how many ran. Each result is stored as soon as it arrives."""
    done = store.finished_jobs()
    pending = [job for job in jobs if job.job_id not in done]
    if not pending:
        return 0
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=label, file=sys.stderr,
               disable=not progress, unit="job")
    for job, result in executor.run(pending):
        store.save_job(job, result)
        bar.update(1)
    bar.close()
    return len(pending)


def _nll(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-network NLL of `[M, N, C]` log-probs."""
    return -np.take_along_axis(log_probs, labels[None, :, None], axis=2)[..., 0].mean(axis=1)


def choose_hyperparameters(store: ResultStore, config: StudyConfig) -> dict[int, dict[str, Any]]:
    """Per width, the tuning cell with the lowest mean validation NLL of its networks."""
    labels = store.labels("val")
    choice: dict[int, dict[str, Any]] = {}
    for width in config.widths:
        by_job: dict[str, list[dict]] = defaultdict(list)
        for row in store.networks("tune", width, status="ok"):
            by_job[row["job_id"]].append(row)
        scores = []
        for job_id, rows in by_job.items():
            nll = float(np.mean(_nll(store.log_probs(rows, "val"), labels)))
            train = store.job_train_config(job_id)
            scores.append((nll, {"weight_decay": train["weight_decay"], "dropout": train["dropout"]}))
        if scores:
            choice[width] = min(scores, key=lambda s: s[0])[1]
    return choice


def run_study(config: StudyConfig, directory: str | Path, progress: bool = True,
              executor: Executor | None = None) -> ResultStore:
    """Train everything the study needs that the folder does not hold yet; return the open store.

    `config.threads` sets torch's CPU threads for this process (the local executor trains here; process and
    Ray workers always use one thread each).
    """
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    store = open_study(config, directory)
    data = load_job_data(data_spec(config))
    store.save_labels("test", data.y_test.cpu().numpy())
    if data.y_val is not None:
        store.save_labels("val", data.y_val.cpu().numpy())
    executor = executor or make_executor(config.executor, config.device, config.workers, config.address, progress,
                                         config.gpus_per_job)
    overrides = None
    if config.tune:
        execute(plan_tune_jobs(config), store, executor, progress, "tuning")
        overrides = choose_hyperparameters(store, config)
        store.set_meta("tuned", repr(overrides))
    jobs = plan_pool_jobs(config, overrides, data.in_shape, data.num_classes)
    execute(jobs, store, executor, progress, "training pools")
    return store
