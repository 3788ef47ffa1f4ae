"""kill -9 at any write: the process is killed at chosen points (the config, an array, a sidecar, the index
commit) and the next run resumes the folder to exactly the numbers of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ensplit.files import CRASH_VARIABLE

pytestmark = pytest.mark.slow  # a dozen subprocess studies

ARGS = ["--widths", "4,8", "--epochs", "1", "--pool-min", "3", "--pool-max", "3", "--members-per-run", "2",
        "--train-subset", "200", "--test-subset", "100", "--bootstrap", "0", "--cnll-splits", "2", "--no-report",
        "--quiet", "--json"]


def run(folder: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_VARIABLE, None)
    if crash:
        env[CRASH_VARIABLE] = crash
    return subprocess.run([sys.executable, "-m", "ensplit", "study", "--out", str(folder), *ARGS], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    done = run(tmp_path_factory.mktemp("reference") / "study")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("point", [
    "rename.toml",      # config.toml complete but not in place
    "rename.npy:2",     # the second array written but not in place
    "rename.json:3",    # the third job's sidecar not in place
    "commit:4",         # the last job's index rows written but not committed
])
def test_killed_at_a_write_the_folder_resumes_to_the_same_numbers(tmp_path, reference, point):
    folder = tmp_path / "study"
    killed = run(folder, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = run(folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(resumed.stdout)
    assert result["budgets"] == reference["budgets"] and result["sizes"] == reference["sizes"]
    assert not list(folder.rglob("*.tmp"))  # the killed write's temporary file was cleaned up
