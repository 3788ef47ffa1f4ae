"""A run folder: the store of one experiment's settings, resumable, never mixed with another's results.

`open_folder` refuses a folder whose stored settings train something else (another fingerprint), writes
the settings as `config.toml` for people to read, and returns the open store. `execute` runs the jobs the
store lacks, storing each result as it arrives, so a killed run loses at most the jobs in flight.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ensplit.errors import EnsplitError
from ensplit.recipe import load_toml, settings_to_toml
from ensplit.runs.executors import Executor
from ensplit.runs.plan import TrainJob
from ensplit.store import ResultStore

CONFIG_FILE = "config.toml"


def open_folder(settings: Any, directory: str | Path, table: str) -> ResultStore:
    """Open (or start) the folder of `settings` (which has `fingerprint()`, `differences(other)` and a
    `from_mapping` constructor); refuse a folder made by settings with another fingerprint."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise EnsplitError(f"folder {directory} exists and is not a folder")
    existing = directory / CONFIG_FILE
    if existing.exists():
        previous = type(settings).from_mapping(load_toml(existing))
        if previous.fingerprint() != settings.fingerprint():
            changed = ", ".join(settings.differences(previous)) or "unknown fields"
            raise EnsplitError(f"folder {directory} was made by an incompatible config (differs in: "
                               f"{changed}); rerun with the same config or choose another --out")
    store = ResultStore(directory)
    existing.write_text(settings_to_toml(settings, table), encoding="utf-8")
    store.set_meta("fingerprint", settings.fingerprint())
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
