"""The results store: an SQLite index, prediction arrays in .npy files beside it, atomic writes.

A job's arrays are written to a temporary file and renamed into place before its rows are committed
in one transaction, so a study killed at any instant has either all of a job or none of it.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ensplit._version import __version__

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


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the ensplit source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy.tmp", delete=False) as f:
        np.save(f, array, allow_pickle=False)
    os.replace(f.name, path)


class ResultStore:
    """All stored results of one study folder."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.arrays = self.directory / "arrays"
        self.arrays.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "results.sqlite"
        self._conn = sqlite3.connect(self.path, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

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

    def save_labels(self, split: str, labels: np.ndarray) -> None:
        path = self.arrays / f"labels_{split}.npy"
        if not path.exists():
            atomic_save_npy(path, np.asarray(labels, dtype=np.int64))

    def labels(self, split: str = "test") -> np.ndarray:
        return np.load(self.arrays / f"labels_{split}.npy", allow_pickle=False)

    # -- jobs ---------------------------------------------------------------------------------------
    def finished_jobs(self) -> set[str]:
        return {row[0] for row in self._conn.execute("SELECT job_id FROM jobs")}

    def save_job(self, job: Any, result: Any) -> None:
        """Store one finished TrainJob and its JobResult (arrays first, then rows, atomically)."""
        test_file = f"{job.job_id}_test.npy"
        atomic_save_npy(self.arrays / test_file, result.test_log_probs)
        val_file = None
        if result.val_log_probs is not None:
            val_file = f"{job.job_id}_val.npy"
            atomic_save_npy(self.arrays / val_file, result.val_log_probs)
        config = json.dumps({"train": dict(job.train), "family_options": dict(job.family_options),
                             "data": job.data.__dict__, "seeds": list(job.seeds)}, default=list)
        with self._transaction() as c:
            c.execute("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (job.job_id, job.kind, job.family, job.width, job.depth, job.first_index, config,
                       result.seconds, json.dumps(result.seconds_per_epoch), time.time(), __version__,
                       git_commit(), test_file, val_file))
            c.execute("DELETE FROM networks WHERE job_id = ?", (job.job_id,))
            per_network = result.seconds / max(len(job.seeds), 1)
            c.executemany("INSERT INTO networks VALUES (?,?,?,?,?,?,?,?,?,?)", [
                (job.job_id, m, job.first_index + m, job.kind, job.width, seed, result.params_per_member,
                 "failed" if result.failed[m] else "ok", result.train_loss[m], per_network)
                for m, seed in enumerate(job.seeds)])

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

    def job_train_config(self, job_id: str) -> dict[str, Any]:
        row = self._conn.execute("SELECT config FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return json.loads(row[0])["train"]
