"""Atomic file writes (a temporary file in the same folder, flushed, then renamed into place) and checksums.

A reader (or a run killed at any instant) sees the old file or the new one, never half of one. Files get
the permissions an ordinary `open()` would give them (0666 minus the umask), not the 0600 of the
temporary file they were written as.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

CRASH_VARIABLE = "ENSPLIT_CRASH_AT"
_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Where the tests kill the process: with `ENSPLIT_CRASH_AT=name` (or `name:n`, the n-th time) this process
    sends itself SIGKILL here, exactly as `kill -9` would. Unset (always, outside the tests) it does nothing."""
    wanted = os.environ.get(CRASH_VARIABLE)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write `path` through `write(file)`, atomically, with ordinary permissions."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as f:
        try:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    os.chmod(f.name, 0o666 & ~_umask())
    crash_point(f"rename{path.suffix}")  # the new file is complete but not in place yet
    os.replace(f.name, path)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> str:
    """Save one array as `.npy` (never pickled), atomically; returns the file's SHA-256 (hex), computed from the
    bytes written rather than by reading the file back."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    content = buffer.getvalue()
    atomic_write(path, lambda f: f.write(content))
    return hashlib.sha256(content).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
