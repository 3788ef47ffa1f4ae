"""Which command a folder belongs to, so that no command writes over another's results or a person's files.

The first command to use a folder records its name in `DIR/.ensplit-command`. A later run of another
command, or a run into a folder that holds files ensplit did not write, is refused with one line. Folders
written before the marker existed are recognised by what their command writes (`legacy`), and marked then.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ensplit.errors import EnsplitError
from ensplit.files import atomic_write_text
from ensplit.store.lock import LOCK_FILE, MARKER, PID_FILE

PAGE_START = "<!doctype html><html><head><meta charset='utf-8'>"  # how every ensplit report page begins
_OURS = {LOCK_FILE, PID_FILE, MARKER}


def folder_command(directory: Path) -> str | None:
    """The command recorded in the folder's marker (None when there is none or it is unreadable)."""
    try:
        return (directory / MARKER).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def claim_folder(directory: Path, command: str, legacy: Callable[[Path, set[str]], bool]) -> None:
    """Make `directory` (already created and locked) `command`'s, or refuse: another command's folder, or one
    holding files that `legacy(directory, names)` does not recognise as this command's earlier output."""
    recorded = folder_command(directory)
    if recorded is not None and recorded != command:
        raise EnsplitError(f"{directory} is an `ensplit {recorded}` folder, not an `ensplit {command}` one; choose "
                           "another --out")
    if recorded is None:
        names = {p.name for p in directory.iterdir()} - _OURS if directory.is_dir() else set()
        if names and not legacy(directory, names):
            shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            raise EnsplitError(f"{directory} holds files that `ensplit {command}` did not write ({shown}); choose "
                               "another --out, or an empty or new folder")
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / MARKER, f"{command}\n")


def report_and(signatures: dict[str, Callable[[Path], bool]] | None = None) -> Callable[[Path, set[str]], bool]:
    """The `legacy` test of a command that writes `report.html` and the files of `signatures`: the folder holds
    only those names (or stale `.*.tmp` files), at least one of them, and each passes its signature."""
    signatures = {"report.html": ensplit_page, **(signatures or {})}

    def test(directory: Path, names: set[str]) -> bool:
        if not all(n in signatures or (n.startswith(".") and n.endswith(".tmp")) for n in names):
            return False
        present = [n for n in signatures if n in names]
        return bool(present) and all(signatures[n](directory / n) for n in present)

    return test


def ensplit_page(path: Path) -> bool:
    """Whether `path` is a report page ensplit wrote."""
    try:
        with path.open(encoding="utf-8") as f:
            return f.read(len(PAGE_START)) == PAGE_START
    except (OSError, UnicodeDecodeError):
        return False


def json_with(*keys: str | tuple[str, ...]) -> Callable[[Path], bool]:
    """A signature: a JSON object holding every one of `keys`; a tuple is one key under any of its spellings
    (a results file of an older release: `("ensplit_version", "ensplit")`)."""

    def test(path: Path) -> bool:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(value, dict) and all(any(k in value for k in ((k,) if isinstance(k, str) else k))
                                               for k in keys)

    return test
