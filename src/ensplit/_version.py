"""The package version and the provenance every result carries, in a module of its own so that any stage
can import it without the front door."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the installed ensplit source tree, or None when it is not a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """`{"ensplit_version": ..., "git_commit": ...}`: the keys every results JSON carries (docs/glossary.md)."""
    return {"ensplit_version": __version__, "git_commit": git_commit()}
