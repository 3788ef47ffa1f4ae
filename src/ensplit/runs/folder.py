"""A run folder: the store of one experiment's settings, resumable, never mixed with another's results.

The folder's identity is the settings' fingerprint, kept in the index (written with the first job) and in
every job's sidecar; `config.toml` is a copy for people, written atomically. `open_folder` refuses a folder
whose index or config belongs to other settings, resumes one whose config is missing or damaged, verifies
the stored arrays (a damaged job becomes unfinished and is retrained) and rebuilds a lost index from the
sidecars; with the data, it refuses a folder whose runs were trained on other data (`bind_data`). `admit`
makes the settings checks before any work, read-only. `execute` runs the jobs the store lacks, storing each
result as it arrives, so a killed run loses at most the jobs in flight. The caller holds the folder's lock
(`ensplit.store.folder_lock`) meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from ensplit.data import Dataset
from ensplit.errors import EnsplitError
from ensplit.recipe import EXPERIMENT_TABLES, recipe_names
from ensplit.runs.executors import Executor
from ensplit.runs.plan import TrainJob
from ensplit.settings import load_toml, loads_toml, settings_to_toml
from ensplit.store import ResultStore, atomic_write_text
from ensplit.store.ownership import claim_folder, folder_command
from ensplit.store.results import INDEX

CONFIG_FILE = "config.toml"
DATA_KEY = "data_sha256"  # the index's record of the data the folder's runs were trained on
S = TypeVar("S")


@dataclass
class RunFolder:
    """An open run folder: its store and the identity every stored job is written with."""

    store: ResultStore
    fingerprint: str
    settings_text: str

    def save(self, job: TrainJob, result: Any) -> None:
        self.store.save_job(job, result, self.fingerprint, self.settings_text)


def note(message: str) -> None:
    """One line on stderr that a person should read (what was repaired or refused, and why)."""
    print(f"ensplit: {message}", file=sys.stderr, flush=True)


def read_settings(directory: Path, cls: type) -> Any | None:
    """The settings in `directory/config.toml`, or None when it is missing, empty or unreadable."""
    path = directory / CONFIG_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        return cls.from_mapping(load_toml(path))
    except EnsplitError:
        return None


def folder_owner(directory: Path) -> str | None:
    """Whose run folder this is: the command in its marker, else the experiment table of its config.toml, else
    that of the settings copy in its index. "" for a config.toml with no ensplit settings in it; None when
    nothing says (no marker, config or index, or recipe settings only)."""
    recorded = folder_command(directory)
    if recorded is not None:
        return recorded
    for text in (_read_text(directory / CONFIG_FILE), _index_settings(directory)):
        owner = _settings_owner(text)
        if owner is not None:
            return owner
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def index_meta(directory: Path, key: str) -> str | None:
    """One value of the folder's index metadata, read without opening it for writing (None if unreadable)."""
    if not (directory / INDEX).is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{directory / INDEX}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else row[0]


def _index_settings(directory: Path) -> str | None:
    """The settings copy in the folder's index, read without opening it for writing (None if unreadable)."""
    return index_meta(directory, "settings")


def _settings_owner(text: str | None) -> str | None:
    """The experiment table of a settings text; "" for TOML with no ensplit settings; None if unknown."""
    if not text:
        return None
    try:
        tables = loads_toml(text)
    except EnsplitError:
        return None
    found = [name for name in EXPERIMENT_TABLES if isinstance(tables.get(name), dict)]
    if found:
        return found[0]
    return None if (set(recipe_names()) | {"train"}) & set(tables) else ""


def _legacy_run_folder(table: str) -> Callable[[Path, set[str]], bool]:
    """A folder from before the ownership marker is a run folder of `table` when it holds stored results (an
    index or sidecars; notes a person added beside them do not matter), or only what study and recommend write
    with settings of `table`."""

    def test(directory: Path, names: set[str]) -> bool:
        if INDEX in names or any((directory / "arrays").glob("*.json")):
            return True
        known = all(n in (CONFIG_FILE, "arrays", "report.html") or n.startswith(INDEX)
                    or (n.startswith(".") and n.endswith(".tmp")) for n in names)
        return known and _settings_owner(_read_text(directory / CONFIG_FILE)) == table

    return test


def _refuse_other_owner(directory: Path, table: str) -> None:
    """Refuse another experiment's folder (read-only)."""
    owner = folder_owner(directory)
    if owner and owner != table:
        raise EnsplitError(f"{directory} is an `ensplit {owner}` folder, not an `ensplit {table}` one; choose "
                           "another --out")


def _check_owner(directory: Path, table: str) -> None:
    """Refuse another experiment's folder and a folder of files ensplit did not write; mark it `table`'s."""
    _refuse_other_owner(directory, table)
    claim_folder(directory, table, _legacy_run_folder(table))


def _incompatible(directory: Path, settings: Any, previous: Any) -> EnsplitError:
    changed = ", ".join(settings.differences(previous)) or "unknown fields"
    return EnsplitError(f"folder {directory} was made by an incompatible config (differs in: {changed}); "
                        "rerun with the same config or choose another --out")


def _same_path(given: str, stored: str) -> bool:
    """Whether two data-set names are two spellings of one existing file or folder (relative, absolute, a link)."""
    try:
        return "mnist1d" not in (given, stored) and Path(given).exists() and Path(stored).exists() \
            and Path(given).samefile(stored)
    except OSError:
        return False


def admit(settings: S, directory: str | Path, table: str) -> S:
    """The settings a run in `directory` goes on with, checked before any work (read-only: a refusal costs
    nothing and leaves nothing behind). Refuses another experiment's folder and one made by other settings, as
    `open_folder` does; a data set given as another spelling of the folder's own path (relative where it was
    absolute, through a link) takes the folder's spelling, so the stored runs keep their ids. The data itself
    is checked when the folder opens (`open_folder(..., data=)`)."""
    directory = Path(directory)
    if not directory.is_dir():
        return settings
    _refuse_other_owner(directory, table)
    previous = read_settings(directory, type(settings))
    if previous is None or previous.fingerprint() == settings.fingerprint():
        return settings
    given, stored = settings.recipe.dataset, previous.recipe.dataset
    if given != stored and _same_path(given, stored):
        respelled = replace(settings, recipe=replace(settings.recipe, dataset=stored))
        if respelled.fingerprint() == previous.fingerprint():
            note(f"dataset {given!r} is the folder's {stored!r}; going on with the folder's spelling")
            return respelled
    raise _incompatible(directory, settings, previous)


def bind_data(store: ResultStore, data: Dataset) -> None:
    """Refuse a folder whose results were trained on other data than `data` (its SHA-256, recorded with the
    first run; a folder from before the record takes this run's, its stored labels checked), and store the
    test (and validation) labels. A path names a data set, it does not pin what the files hold."""
    digest = data.digest()
    recorded = store.get_meta(DATA_KEY)
    if recorded is not None and recorded != digest:
        raise EnsplitError(f"{store.directory} holds results on other data: the data set given is not the one its "
                           f"runs were trained on (SHA-256 {digest[:12]}…, the folder's {recorded[:12]}…); rerun with "
                           "the folder's data or choose another --out")
    store.save_labels("test", data.y_test.cpu().numpy())
    if data.y_val is not None:
        store.save_labels("val", data.y_val.cpu().numpy())
    if recorded is None:
        store.set_meta(DATA_KEY, digest)


def open_folder(settings: Any, directory: str | Path, table: str, repair: bool = False,
                data: Dataset | None = None) -> RunFolder:
    """Open (or start) the folder of `settings` (which has `fingerprint()`, `differences(other)` and a
    `from_mapping` constructor). Refuses a folder made by other settings, or another experiment's, or one whose
    config.toml is someone else's file; with `data`, one whose runs were trained on other data (`bind_data`,
    which also stores the labels). See the module docstring."""
    directory = Path(directory)
    _check_owner(directory, table)
    fingerprint = settings.fingerprint()
    previous = read_settings(directory, type(settings))
    if previous is not None and previous.fingerprint() != fingerprint:
        raise _incompatible(directory, settings, previous)
    sidecars = list((directory / "arrays").glob("*.json")) if (directory / "arrays").is_dir() else []
    if repair or (sidecars and not (directory / INDEX).exists()):
        store, recovered, skipped = ResultStore.repair(directory, fingerprint)
        store.set_meta("settings", settings_to_toml(settings, table))  # the copy `report` restores config.toml from
        note(f"rebuilt the index of {directory} from its arrays: {recovered} job(s) recovered"
             + (f", {skipped} skipped (damaged, or made by other settings)" if skipped else ""))
    else:
        store = ResultStore(directory)
    stored = store.fingerprint
    if stored is not None and stored != fingerprint:
        store.close()
        raise EnsplitError(f"folder {directory} holds the results of other settings (fingerprint {stored}, these "
                           f"are {fingerprint}); rerun with the folder's settings or choose another --out")
    for stale in [*directory.glob(".*.tmp"), *directory.glob("arrays/.*.tmp")]:  # a killed run's half-writes
        stale.unlink(missing_ok=True)
    text = settings_to_toml(settings, table)
    if previous is None and (directory / CONFIG_FILE).exists():
        note(f"{directory / CONFIG_FILE} was empty or damaged; rewritten from these settings "
             + ("(the index confirms they are the folder's)" if stored else "(no results were stored yet)"))
    atomic_write_text(directory / CONFIG_FILE, text)
    damaged = store.verify()
    if damaged:
        note(f"{len(damaged)} stored job(s) of {directory} had missing or damaged arrays; they count as unfinished "
             "and will be trained again")
    if data is not None:
        try:
            bind_data(store, data)
        except EnsplitError:
            store.close()
            raise
    return RunFolder(store, fingerprint, text)


def execute(jobs: list[TrainJob], folder: RunFolder, executor: Executor, progress: bool = True,
            label: str = "jobs") -> int:
    """Run the jobs the store lacks; returns how many ran. Each result is stored as soon as it arrives."""
    done = folder.store.finished_jobs()
    pending = [job for job in jobs if job.job_id not in done]
    if not pending:
        return 0
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=label, file=sys.stderr,
               disable=not progress, unit="job")
    for job, result in executor.run(pending):
        folder.save(job, result)
        bar.update(1)
    bar.close()
    return len(pending)


def legacy_run_folder(table: str) -> Callable[[Path, set[str]], bool]:
    """Whether a folder without the ownership marker is a run folder of `table` (see `_legacy_run_folder`), for
    a command that also accepts an older layout of its own."""
    return _legacy_run_folder(table)


def stored_job(folder: RunFolder, job_id: str) -> dict[str, Any]:
    """The index row of one stored job as its sidecar keeps it (`seconds`, `seconds_per_epoch` as JSON text,
    `ensplit_version`, ...); `open_folder` has checked it and written back any sidecar that was missing."""
    record = json.loads((folder.store.arrays / f"{job_id}.json").read_text(encoding="utf-8"))
    return dict(record["job"])
