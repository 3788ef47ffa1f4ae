"""The results store: an SQLite index, prediction arrays in .npy files beside it, atomic writes.

Writing a job: its arrays are written to temporary files and renamed into place, then a sidecar
`arrays/<job>.json` (everything the index holds about the job, with the arrays' SHA-256), then the index
rows in one transaction, together with the folder's fingerprint (the identity of the settings that made
it). A run killed at any instant leaves all of a job or none of it in the index. Reading: `verify()`
checks every finished job's arrays against their checksums; a missing or damaged array makes its job
unfinished again (its rows are removed, so it is retrained and never analysed). A damaged index is
refused with a one-line error; `ResultStore.repair` rebuilds it from the sidecars and arrays.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ensplit._version import __version__, git_commit
from ensplit.errors import EnsplitError
from ensplit.files import atomic_save_npy, atomic_write_text, crash_point, file_sha256

INDEX = "results.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, family TEXT NOT NULL, width INTEGER NOT NULL,
    depth INTEGER, first_index INTEGER NOT NULL, config TEXT NOT NULL, seconds REAL NOT NULL,
    seconds_per_epoch TEXT NOT NULL, finished_at REAL NOT NULL, ensplit_version TEXT NOT NULL,
    git_commit TEXT, test_file TEXT NOT NULL, val_file TEXT);
CREATE TABLE IF NOT EXISTS networks (
    job_id TEXT NOT NULL REFERENCES jobs(job_id), member INTEGER NOT NULL, pool_index INTEGER NOT NULL,
    kind TEXT NOT NULL, width INTEGER NOT NULL, seed INTEGER NOT NULL, params INTEGER NOT NULL,
    status TEXT NOT NULL, final_train_loss REAL, train_seconds REAL NOT NULL,
    PRIMARY KEY (job_id, member));
"""
JOB_COLUMNS = ("job_id", "kind", "family", "width", "depth", "first_index", "config", "seconds", "seconds_per_epoch",
               "finished_at", "ensplit_version", "git_commit", "test_file", "val_file", "checksums")
NETWORK_COLUMNS = ("job_id", "member", "pool_index", "kind", "width", "seed", "params", "status", "final_train_loss",
                   "train_seconds")


def _damaged(path: Path, reason: str) -> EnsplitError:
    return EnsplitError(f"the index {path} is damaged ({reason}); rebuild it from the stored arrays: rerun the "
                        f"command that made {path.parent} (`ensplit study` or `ensplit recommend`, same settings) "
                        "with --repair")


class ResultStore:
    """All stored results of one run folder."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.arrays = self.directory / "arrays"
        self.path = self.directory / INDEX
        try:
            self.arrays.mkdir(parents=True, exist_ok=True)
        except (NotADirectoryError, FileExistsError):
            raise EnsplitError(f"cannot use {self.directory} as a folder: a path component is a file") from None
        except PermissionError:
            raise EnsplitError(f"cannot write in {self.directory}: permission denied") from None
        try:
            self._conn = sqlite3.connect(self.path, timeout=30)
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _damaged(self.path, check)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(jobs)")}
            if "checksums" not in columns:  # folders from before checksums: filled in by verify()
                self._conn.execute("ALTER TABLE jobs ADD COLUMN checksums TEXT")
        except sqlite3.DatabaseError as error:
            if "readonly" in str(error) or "unable to open" in str(error):
                raise EnsplitError(f"cannot write the index {self.path}: {error}") from None
            raise _damaged(self.path, str(error)) from None

    def close(self) -> None:
        self._conn.close()

    def checkpoint(self) -> None:
        """Move the write-ahead log into the index file itself (the folder is then one self-contained file)."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._conn:
            yield self._conn

    # -- metadata ---------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def fingerprint(self) -> str | None:
        """The identity of the settings whose results this folder holds (None before the first job)."""
        return self.get_meta("fingerprint")

    def save_labels(self, split: str, labels: np.ndarray) -> None:
        """Store the labels of a split once (rewritten if the stored file is missing or damaged); refuses labels
        that differ from the stored ones: the folder's results were scored on other data."""
        path = self.arrays / f"labels_{split}.npy"
        key = f"labels_{split}_sha256"
        if path.exists() and file_sha256(path) == self.get_meta(key):
            stored = np.load(path, allow_pickle=False)
            if stored.shape != np.shape(labels) or not np.array_equal(stored, labels):
                raise EnsplitError(f"{self.directory} holds results on other data: its {split} labels ({stored.size} "
                                   f"examples) are not this data set's ({np.size(labels)}); rerun with the folder's "
                                   "data or choose another --out")
            return
        self.set_meta(key, atomic_save_npy(path, np.asarray(labels, dtype=np.int64)))

    def labels(self, split: str = "test") -> np.ndarray:
        path = self.arrays / f"labels_{split}.npy"
        expected = self.get_meta(f"labels_{split}_sha256")
        if not path.exists() or (expected is not None and file_sha256(path) != expected):
            raise EnsplitError(f"the {split} labels of {self.directory} are missing or damaged; rerun "
                               "`ensplit study` on this folder to write them again")
        return np.load(path, allow_pickle=False)

    # -- jobs ---------------------------------------------------------------------------------------
    def finished_jobs(self) -> set[str]:
        return {row[0] for row in self._conn.execute("SELECT job_id FROM jobs")}

    def save_job(self, job: Any, result: Any, fingerprint: str | None = None, settings: str | None = None) -> None:
        """Store one finished TrainJob and its JobResult: arrays, then the sidecar, then the index rows and
        (with the first job) the folder's fingerprint, in one transaction."""
        files = {"test_file": f"{job.job_id}_test.npy", "val_file": None}
        checksums = {files["test_file"]: atomic_save_npy(self.arrays / files["test_file"], result.test_log_probs)}
        if result.val_log_probs is not None:
            files["val_file"] = f"{job.job_id}_val.npy"
            checksums[files["val_file"]] = atomic_save_npy(self.arrays / files["val_file"], result.val_log_probs)
        config = json.dumps({"train": dict(job.train), "family_options": dict(job.family_options),
                             "data": job.data.__dict__, "seeds": list(job.seeds), "method": job.method,
                             "members": job.members, "method_options": dict(job.method_options)}, default=list)
        job_row = dict(job_id=job.job_id, kind=job.kind, family=job.family, width=job.width, depth=job.depth,
                       first_index=job.first_index, config=config, seconds=result.seconds,
                       seconds_per_epoch=json.dumps(result.seconds_per_epoch), finished_at=time.time(),
                       ensplit_version=__version__, git_commit=git_commit(), **files,
                       checksums=json.dumps(checksums))
        per_network = result.seconds / max(len(result.failed), 1)
        network_rows = [dict(job_id=job.job_id, member=m, pool_index=job.first_index + m, kind=job.kind,
                             width=job.width, seed=_output_seed(job, m), params=result.params_per_member,
                             status="failed" if failed else "ok", final_train_loss=result.train_loss[m],
                             train_seconds=per_network)
                        for m, failed in enumerate(result.failed)]
        sidecar = {"format": 1, "fingerprint": fingerprint, "job": job_row, "networks": network_rows}
        atomic_write_text(self.arrays / f"{job.job_id}.json", json.dumps(sidecar, default=_json_default))
        with self._transaction() as c:
            self._insert(c, job_row, network_rows)
            if fingerprint is not None:
                c.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('fingerprint', ?)", (fingerprint,))
                stored = c.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0]
                if stored != fingerprint:  # rolled back with the job: results of two settings never mix
                    raise EnsplitError(f"{self.directory} holds the results of other settings (fingerprint "
                                       f"{stored}, these are {fingerprint}); choose another --out")
            if settings is not None:
                c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)", (settings,))
            crash_point("commit")  # every row written, the transaction not committed yet
        crash_point("stored")  # the job is committed: a kill here leaves exactly this many jobs stored

    @staticmethod
    def _insert(c: sqlite3.Connection, job_row: dict[str, Any], network_rows: list[dict[str, Any]]) -> None:
        marks = ", ".join("?" * len(JOB_COLUMNS))
        c.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({marks})",
                  [job_row.get(k) for k in JOB_COLUMNS])
        c.execute("DELETE FROM networks WHERE job_id = ?", (job_row["job_id"],))
        c.executemany(f"INSERT INTO networks VALUES ({', '.join('?' * len(NETWORK_COLUMNS))})",
                      [[row[k] for k in NETWORK_COLUMNS] for row in network_rows])

    def forget_job(self, job_id: str) -> None:
        """Remove a job from the index (it counts as unfinished again); its files stay for inspection."""
        with self._transaction() as c:
            c.execute("DELETE FROM networks WHERE job_id = ?", (job_id,))
            c.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def verify(self) -> list[str]:
        """Check every finished job's arrays; a job whose array is missing or does not match its checksum is
        forgotten (so it is retrained and never analysed). An intact job whose sidecar is missing gets it back
        from the index, so a later `--repair` still recovers it. Returns the forgotten job ids."""
        damaged, intact = [], []
        rows = self._conn.execute("SELECT job_id, test_file, val_file, checksums FROM jobs").fetchall()
        for job_id, test_file, val_file, checksums in rows:
            names = [n for n in (test_file, val_file) if n]
            expected = json.loads(checksums) if checksums else None
            if expected is None:
                expected = self._legacy_checksums(job_id, names)
            if expected is None or not all(self._intact(n, expected.get(n)) for n in names):
                self.forget_job(job_id)
                damaged.append(job_id)
            else:
                intact.append(job_id)
        self._restore_sidecars(intact)
        return damaged

    def _restore_sidecars(self, job_ids: list[str]) -> None:
        """Write the sidecars of these jobs that are missing again from their index rows (as `save_job` wrote
        them); nothing for a folder from before fingerprints, whose sidecars could not be repaired from."""
        fingerprint = self.fingerprint
        for job_id in job_ids:
            if fingerprint is not None and not (self.arrays / f"{job_id}.json").is_file():
                self._restore_sidecar(job_id, fingerprint)

    def _restore_sidecar(self, job_id: str, fingerprint: str) -> None:
        """One job's sidecar from its index rows."""
        job = self._conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        networks = self._conn.execute(f"SELECT {', '.join(NETWORK_COLUMNS)} FROM networks WHERE job_id = ? "
                                      "ORDER BY member", (job_id,)).fetchall()
        sidecar = {"format": 1, "fingerprint": fingerprint, "job": dict(zip(JOB_COLUMNS, job, strict=True)),
                   "networks": [dict(zip(NETWORK_COLUMNS, row, strict=True)) for row in networks]}
        atomic_write_text(self.arrays / f"{job_id}.json", json.dumps(sidecar, default=_json_default))

    def _intact(self, name: str, sha256: str | None) -> bool:
        path = self.arrays / name
        return path.is_file() and file_sha256(path) == sha256

    def _legacy_checksums(self, job_id: str, names: list[str]) -> dict[str, str] | None:
        """A job stored before checksums: accept its arrays if they load (no pickles) with the job's shape,
        and record their checksums from now on."""
        outputs = self._conn.execute("SELECT COUNT(*) FROM networks WHERE job_id = ?", (job_id,)).fetchone()[0]
        checksums = {}
        for name in names:
            try:
                array = np.load(self.arrays / name, allow_pickle=False, mmap_mode="r")
            except (OSError, ValueError, EOFError):
                return None
            if array.ndim != 3 or array.shape[0] != outputs or array.dtype.kind != "f":
                return None
            checksums[name] = file_sha256(self.arrays / name)
        with self._transaction() as c:
            c.execute("UPDATE jobs SET checksums = ? WHERE job_id = ?", (json.dumps(checksums), job_id))
        return checksums

    # -- queries ------------------------------------------------------------------------------------
    def networks(self, kind: str = "pool", width: int | None = None, status: str | None = None) -> list[dict]:
        query = ("SELECT n.*, j.test_file, j.val_file, j.first_index FROM networks n JOIN jobs j USING (job_id) "
                 "WHERE n.kind = ?")
        args: list[Any] = [kind]
        if width is not None:
            query += " AND n.width = ?"
            args.append(width)
        if status is not None:
            query += " AND n.status = ?"
            args.append(status)
        query += " ORDER BY n.width, n.pool_index"
        cursor = self._conn.execute(query, args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def log_probs(self, rows: list[dict], split: str = "test") -> np.ndarray:
        """Stack the predictions of the given network rows: `[len(rows), N, C]` float32."""
        cache: dict[str, np.ndarray] = {}
        out = []
        for row in rows:
            name = row["test_file"] if split == "test" else row["val_file"]
            if name not in cache:
                cache[name] = np.load(self.arrays / name, allow_pickle=False, mmap_mode="r")
            out.append(np.asarray(cache[name][row["member"]]))
        return np.stack(out) if out else np.empty((0, 0, 0), dtype=np.float32)

    def pool(self, width: int, split: str = "test") -> tuple[np.ndarray, int]:
        """The healthy networks of one width: log-probs `[ℓ, N, C]` and the params per member."""
        rows = self.networks("pool", width, status="ok")
        params = rows[0]["params"] if rows else 0
        return self.log_probs(rows, split), params

    def job_seconds(self, kind: str = "pool") -> dict[int, list[list[float]]]:
        out: dict[int, list[list[float]]] = {}
        for width, spe in self._conn.execute("SELECT width, seconds_per_epoch FROM jobs WHERE kind = ?", (kind,)):
            out.setdefault(width, []).append(json.loads(spe))
        return out

    def epoch_seconds(self, job_ids: Iterable[str]) -> dict[str, list[float]]:
        """The recorded seconds of each epoch (training steps only) of the finished jobs among `job_ids`."""
        wanted = set(job_ids)
        rows = self._conn.execute("SELECT job_id, seconds_per_epoch FROM jobs")
        return {job_id: json.loads(spe) for job_id, spe in rows if job_id in wanted}

    def job_train_config(self, job_id: str) -> dict[str, Any]:
        return self.job_config(job_id)["train"]

    def job_config(self, job_id: str) -> dict[str, Any]:
        row = self._conn.execute("SELECT config FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return json.loads(row[0])

    # -- repair -------------------------------------------------------------------------------------
    @classmethod
    def repair(cls, directory: str | os.PathLike[str], fingerprint: str) -> tuple[ResultStore, int, int]:
        """Rebuild a damaged index from the sidecars and arrays of jobs made by `fingerprint`'s settings.
        The damaged index is kept beside it (`results.sqlite.damaged`). Returns (store, jobs recovered,
        jobs skipped: damaged arrays or other settings)."""
        directory = Path(directory)
        index = directory / INDEX
        if index.is_file():  # a readable index first gives back the sidecars it can (nothing it knows is lost)
            try:
                readable = cls(directory)
            except EnsplitError:
                pass
            else:  # its arrays are checked against the sidecars below, so no need to hash them here too
                readable._restore_sidecars([row[0] for row in readable._conn.execute("SELECT job_id FROM jobs")])
                readable.close()
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{index}{suffix}")
            if old.exists():
                os.replace(old, Path(f"{index}.damaged{suffix}"))
        store = cls(directory)
        recovered = skipped = 0
        for sidecar in sorted(store.arrays.glob("*.json")):
            try:
                record = json.loads(sidecar.read_text(encoding="utf-8"))
                job_row, network_rows = record["job"], record["networks"]
                expected = json.loads(job_row["checksums"])
                intact = all((store.arrays / n).is_file() and file_sha256(store.arrays / n) == sha
                             for n, sha in expected.items())
            except (OSError, ValueError, KeyError, TypeError):
                intact, record = False, {}
            if not intact or record.get("fingerprint") != fingerprint:
                skipped += 1
                continue
            with store._transaction() as c:
                cls._insert(c, job_row, network_rows)
                c.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('fingerprint', ?)", (fingerprint,))
            recovered += 1
        return store, recovered, skipped


def _output_seed(job: Any, member: int) -> int:
    """The seed of output `member`: its own network's (deep), or its ensemble's (sharing methods)."""
    per_seed = job.outputs_per_seed if hasattr(job, "outputs_per_seed") else 1
    return int(job.seeds[member // per_seed])


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return list(value)
