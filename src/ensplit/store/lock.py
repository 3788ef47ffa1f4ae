"""One writer per folder: a lock held for the whole run, naming the process that holds it.

`filelock` takes an OS-level lock on `.ensplit.lock` (released by the kernel when the process dies, even by
`kill -9`, so a crash never leaves a stale lock); the holder writes its PID beside it, so a second run on
the same folder is refused with "in use by PID N" instead of writing beside the first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ensplit.errors import EnsplitError

LOCK_FILE = ".ensplit.lock"
PID_FILE = ".ensplit.pid"
MARKER = ".ensplit-command"  # the command whose folder it is (`ensplit.store.ownership`)


@contextmanager
def folder_lock(directory: str | os.PathLike[str], action: str = "use") -> Iterator[None]:
    """Hold the folder's lock for the block; refuse at once (exit 2) if another process holds it. A folder
    this call made is removed again if the block leaves nothing in it (a refused run leaves nothing behind)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise EnsplitError(f"{directory} exists and is not a folder")
    real = directory.resolve()  # `a/../b` and symlinks as the file system reads them, for the clean-up
    made = _first_missing(real)
    try:
        directory.mkdir(parents=True, exist_ok=True)  # as `mkdir -p`, so later writes to `directory` work
    except (NotADirectoryError, FileExistsError):
        raise EnsplitError(f"cannot make the folder {directory}: a path component is a file") from None
    except PermissionError:
        raise EnsplitError(f"cannot make the folder {directory}: permission denied") from None
    if not os.access(real, os.W_OK | os.X_OK):
        raise EnsplitError(f"{directory} is read-only; ensplit {action} writes there (copy the folder somewhere "
                           "writable, or make it writable)")
    lock = FileLock(str(real / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _read_pid(real / PID_FILE)
        who = f"PID {holder}" if holder else "another process"
        raise EnsplitError(f"{directory} is in use by {who}; wait for it to finish (one run per folder)") from None
    except OSError as error:  # e.g. a folder where the lock file belongs
        raise EnsplitError(f"cannot lock {directory}: {directory / LOCK_FILE}: {error.strerror}") from None
    try:
        (real / PID_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")
        yield
    finally:
        try:
            (real / PID_FILE).unlink(missing_ok=True)
        finally:
            lock.release()
            if made is not None:
                _remove_if_unused(real, made)


def _first_missing(directory: Path) -> Path | None:
    """The outermost folder of `directory`'s path that does not exist yet (None if `directory` exists)."""
    missing = None
    for path in (directory, *directory.parents):
        if path.exists():
            break
        missing = path
    return missing


def _remove_if_unused(directory: Path, top: Path) -> None:
    """Remove `directory` and its new parents up to `top` while they hold nothing but the lock file."""
    try:
        if {p.name for p in directory.iterdir()} <= {LOCK_FILE, MARKER}:
            for name in (LOCK_FILE, MARKER):
                (directory / name).unlink(missing_ok=True)
            path = directory
            while True:
                path.rmdir()
                if path == top or any(path.parent.iterdir()):
                    break
                path = path.parent
    except OSError:  # in use again, or not ours to remove: leave it
        pass


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
