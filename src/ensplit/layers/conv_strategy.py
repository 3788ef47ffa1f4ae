"""Choose how `MemberConv` runs M convolutions ("grouped" or "loop") from a table of measured timings.

The rows come from `benchmarks/bench_member_conv.py` (forward + backward, see
`benchmarks/results/member_conv_<device>.md`): a shape takes the choice of its nearest measured shape on
the same device type and conv dimension, distance measured in log members, channels and spatial size.
Devices without measurements get "grouped" (one kernel launch instead of M; the usual GPU winner, but
not measured here: no GPU was available when the table was made).

A table measured elsewhere (`bench_member_conv.py --write-table PATH`, e.g. on a GPU) is read from the
JSON file named by the environment variable `ENSPLIT_CONV_TABLE`; its rows replace the built-in rows of
every device type it covers.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

from ensplit.errors import EnsplitError

Row = tuple[str, int, int, int, int, str]

# (device type, conv dim, members, channels, spatial size, choice), measured on an idle 2-core CPU
# (benchmarks/results/member_conv_cpu.md): the loop where it beats the grouped conv by 10% or more. Few
# channels on large images, and 1-D convs with 32+ channels, favour the loop on CPU.
TABLE: tuple[Row, ...] = (
    ("cpu", 1, 8, 16, 40, "grouped"),
    ("cpu", 1, 8, 32, 40, "loop"),
    ("cpu", 1, 32, 32, 20, "grouped"),
    ("cpu", 1, 16, 16, 40, "grouped"),
    ("cpu", 1, 16, 64, 40, "loop"),
    ("cpu", 1, 4, 64, 40, "grouped"),
    ("cpu", 2, 4, 16, 32, "loop"),
    ("cpu", 2, 16, 16, 32, "loop"),
    ("cpu", 2, 4, 64, 8, "grouped"),
    ("cpu", 2, 16, 64, 8, "grouped"),
)

DEFAULT = "grouped"
CHOICES = ("grouped", "loop")
ENV_VAR = "ENSPLIT_CONV_TABLE"


def _valid_row(row: object) -> bool:
    if not isinstance(row, list) or len(row) != 6:
        return False
    device, dim, members, channels, spatial, choice = row
    sizes = (members, channels, spatial)
    return (isinstance(device, str) and bool(device) and dim in (1, 2) and not isinstance(dim, bool)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes) and choice in CHOICES)


@functools.lru_cache(maxsize=8)
def _read_rows(path: str, mtime_ns: int) -> tuple[Row, ...]:
    """Rows of a JSON table file (cached per path and modification time)."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EnsplitError(f"{ENV_VAR} file {path} is not readable JSON: {error}".replace("\n", " ")) from None
    if not isinstance(rows, list) or not rows:
        raise EnsplitError(f"{ENV_VAR} file {path} must hold a non-empty JSON list of rows")
    for i, row in enumerate(rows):
        if not _valid_row(row):
            raise EnsplitError(f"{ENV_VAR} file {path}: row {i} is {json.dumps(row)}, expected "
                               '[device_type, dim (1 or 2), members, channels, spatial, "grouped" or "loop"]')
    return tuple(tuple(r) for r in rows)


def load_table(path: str | Path) -> tuple[Row, ...]:
    """The rows of a table file written by `bench_member_conv.py --write-table` (EnsplitError if bad)."""
    path = str(path)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        raise EnsplitError(f"{ENV_VAR} file {path} not found") from None
    return _read_rows(path, mtime)


def active_table() -> tuple[Row, ...]:
    """The built-in rows, with those of every device type in `$ENSPLIT_CONV_TABLE` replaced by the file's."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return TABLE
    extra = load_table(path)
    devices = {r[0] for r in extra}
    return tuple(r for r in TABLE if r[0] not in devices) + extra


def choose_strategy(device_type: str, dim: int, members: int, channels: int, spatial: int) -> str:
    """"grouped" or "loop" for M = `members` convolutions of `channels` channels on size `spatial` inputs."""
    rows = [r for r in active_table() if r[0] == device_type and r[1] == dim]
    if not rows:
        return DEFAULT

    def distance(row: Row) -> float:
        return sum(math.log(a / b) ** 2 for a, b in zip(row[2:5], (members, channels, spatial), strict=True))

    return min(rows, key=distance)[5]
