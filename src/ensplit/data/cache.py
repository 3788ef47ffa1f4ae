"""Where decoded or generated data sets are cached (plain .npz, read with allow_pickle=False)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """`$ENSPLIT_CACHE`, else `$XDG_CACHE_HOME/ensplit`, else `~/.cache/ensplit`."""
    root = os.environ.get("ENSPLIT_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ensplit"


def load_arrays(name: str) -> dict[str, np.ndarray] | None:
    path = cache_dir() / f"{name}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError):  # a damaged cache is rebuilt, never trusted
        return None


def save_arrays(name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically so a killed process never leaves half a cache file."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz.tmp", delete=False) as f:
        np.savez(f, **arrays)
    os.replace(f.name, directory / f"{name}.npz")
