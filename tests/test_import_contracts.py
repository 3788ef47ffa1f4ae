"""The one-way data flow, written as import-linter contracts in pyproject.toml, holds."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept():
    executable = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(executable).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    run = subprocess.run([executable, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "6 kept, 0 broken" in run.stdout
    assert "reports are a view: experiments return typed results" in run.stdout  # experiments write no pages
