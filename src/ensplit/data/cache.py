"""Where decoded or generated data sets are cached (plain .npz, read with allow_pickle=False).

A cache file that is damaged (truncated, not a zip, other arrays than expected, or arrays that no longer
match the checksum saved with them) is never trusted: the caller rebuilds it. A cache location that is not
a folder is a one-line error.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ensplit.errors import EnsplitError
from ensplit.files import atomic_write

CHECKSUM = "_sha256"  # the SHA-256 of every other array (name, dtype, shape, bytes), saved beside them


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """`$ENSPLIT_CACHE`, else `$XDG_CACHE_HOME/ensplit`, else `~/.cache/ensplit`."""
    root = os.environ.get("ENSPLIT_CACHE")
    if root:
        path = Path(root)
        if path.exists() and not path.is_dir():
            raise EnsplitError(f"ENSPLIT_CACHE={root} is a file; point it at a folder (or unset it)")
        return path
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ensplit"


def load_arrays(name: str, keys: Iterable[str] | None = None) -> dict[str, np.ndarray] | None:
    """The cached arrays of `name`, or None when absent or damaged (or, with `keys`, not exactly those)."""
    path = cache_dir() / f"{name}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # damaged: rebuilt, never trusted
        return None
    stored = arrays.pop(CHECKSUM, None)
    if keys is not None and set(arrays) != set(keys):
        return None
    if stored is None or str(stored) != _checksum(arrays):  # edited, or from before checksums: rebuilt
        return None
    return arrays


def save_arrays(name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically so a killed process never leaves half a cache file; an unwritable cache is skipped."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        checked = {**arrays, CHECKSUM: np.array(_checksum(arrays))}
        atomic_write(directory / f"{name}.npz", lambda f: np.savez(f, **checked))
    except OSError:
        return
