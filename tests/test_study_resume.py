"""Resume: a running `ensplit study` SIGKILLs itself right after its third job is stored (ENSPLIT_CRASH_AT,
no race with a poller); the same command then finishes with exactly the predictions of an uninterrupted run,
without retraining what was already stored."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ensplit.experiments.study_config import StudyConfig
from ensplit.files import CRASH_VARIABLE
from ensplit.runs.executors import LocalExecutor
from ensplit.store import ResultStore
from studies import train_study

# 8 one-network jobs; the process kills itself once the third is committed to the index
STUDY = {"widths": "8,16", "pool_min": 4, "pool_max": 4, "members_per_run": 1, "epochs": 2,
         "train_subset": 500, "test_subset": 200}
KILLED_AFTER = 3
RUNTIME = ["--bootstrap", "0", "--cnll-splits", "2"]  # cheap analysis; these fields do not change training


def study_command(out: Path) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in STUDY.items()]
    return [sys.executable, "-m", "ensplit", "study", "--out", str(out), *flags, *RUNTIME, "--quiet", "--no-report"]


def finished_at(out: Path) -> dict[str, float]:
    """job id -> finish time, read straight from the SQLite index (empty while it does not exist yet)."""
    if not (out / "results.sqlite").exists():
        return {}
    try:
        with sqlite3.connect(out / "results.sqlite", timeout=5) as conn:
            return dict(conn.execute("SELECT job_id, finished_at FROM jobs"))
    except sqlite3.OperationalError:  # the schema is not written yet
        return {}


@pytest.mark.slow
def test_sigkilled_study_resumes_to_the_uninterrupted_result(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread, like the in-process reference below
    env.pop(CRASH_VARIABLE, None)
    out = tmp_path / "killed"
    killed = subprocess.run(study_command(out), env={**env, CRASH_VARIABLE: f"stored:{KILLED_AFTER}"},
                            capture_output=True, text=True, timeout=300)
    before = finished_at(out)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(before) == KILLED_AFTER  # killed right after the chosen write, every time

    rerun = subprocess.run(study_command(out), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = finished_at(out)
    assert len(after) == 8
    assert all(after[job] == t for job, t in before.items())  # stored jobs were kept, not retrained

    reference = train_study(StudyConfig.from_mapping(STUDY), tmp_path / "uninterrupted", progress=False,
                            executor=LocalExecutor())
    resumed = ResultStore(out)
    for width in (8, 16):
        assert np.array_equal(resumed.pool(width)[0], reference.pool(width)[0])
