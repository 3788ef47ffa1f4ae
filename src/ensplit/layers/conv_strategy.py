"""Choose how `MemberConv` runs M convolutions ("grouped", "loop", and for 1-d convs "im2col" or
"grouped_nhwc") from a table of measured timings.

The rows come from `benchmarks/bench_member_conv.py` (forward + backward, see
`benchmarks/results/member_conv_<device>.md`): a shape takes the choice of its nearest measured shape on
the same device type and conv dimension, distance measured in log members, input channels, output channels
and spatial size. Rows are `(device, dim, members, in channels, out channels, spatial, choice)`; rows
without the output channels (the older six-field form) count them equal to the input channels.
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

Row = tuple  # (device, dim, members, in channels, [out channels,] spatial, choice)

# (device type, conv dim, members, in channels, out channels, spatial size, choice), measured on a 2-core CPU
# (benchmarks/results/member_conv_cpu.md), each strategy timed in the steady state of a network built on it
# (inputs and gradients in the layout its own output has) and with malloc keeping freed memory, as training
# runs. Every 1-d shape is fastest channels-last (0.34-0.57 of the grouped conv on first layers, 0.70-0.98
# on hidden ones), so a 1-d network runs channels-last end to end; 2-d shapes keep the grouped conv unless
# the model itself is converted to channels-last (docs/scale-out.md).
TABLE: tuple[Row, ...] = (
    ("cpu", 1, 8, 1, 16, 40, "grouped_nhwc"),
    ("cpu", 1, 8, 16, 16, 20, "grouped_nhwc"),
    ("cpu", 1, 8, 16, 16, 10, "grouped_nhwc"),
    ("cpu", 1, 8, 1, 32, 40, "grouped_nhwc"),
    ("cpu", 1, 8, 32, 32, 20, "grouped_nhwc"),
    ("cpu", 1, 8, 32, 32, 10, "grouped_nhwc"),
    ("cpu", 1, 8, 1, 64, 40, "grouped_nhwc"),
    ("cpu", 1, 8, 64, 64, 20, "grouped_nhwc"),
    ("cpu", 1, 4, 64, 64, 20, "grouped_nhwc"),
    ("cpu", 1, 16, 1, 16, 40, "grouped_nhwc"),
    ("cpu", 1, 16, 16, 16, 20, "grouped_nhwc"),
    ("cpu", 1, 16, 64, 64, 20, "grouped_nhwc"),
    ("cpu", 1, 32, 32, 32, 10, "grouped_nhwc"),
    ("cpu", 2, 4, 16, 16, 32, "grouped"),
    ("cpu", 2, 16, 16, 16, 32, "grouped"),
    ("cpu", 2, 4, 64, 64, 8, "grouped"),
    ("cpu", 2, 16, 64, 64, 8, "grouped"),
)

DEFAULT = "grouped"
CHOICES = ("grouped", "loop", "im2col", "grouped_nhwc")
_EXPECTED = ('[device_type, dim (1 or 2), members, in_channels, (out_channels,) spatial, one of '
             + ", ".join(f'"{c}"' for c in CHOICES) + "]")
ENV_VAR = "ENSPLIT_CONV_TABLE"


def _valid_row(row: object) -> bool:
    if not isinstance(row, list) or len(row) not in (6, 7):
        return False
    device, dim, *sizes, choice = row
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
            raise EnsplitError(f"{ENV_VAR} file {path}: row {i} is {json.dumps(row)}, expected {_EXPECTED}")
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


def _sizes(row: Row) -> tuple[int, int, int, int]:
    """(members, in channels, out channels, spatial) of a six- or seven-field row."""
    return tuple(row[2:6]) if len(row) == 7 else (row[2], row[3], row[3], row[4])


def choose_strategy(device_type: str, dim: int, members: int, channels: int, spatial: int,
                    out_channels: int | None = None) -> str:
    """The strategy (one of CHOICES) for M = `members` convolutions of `channels` input channels (and
    `out_channels`, default the same) on size `spatial` inputs."""
    rows = [r for r in active_table() if r[0] == device_type and r[1] == dim]
    if not rows:
        return DEFAULT
    shape = (members, channels, channels if out_channels is None else out_channels, spatial)

    def distance(row: Row) -> float:
        return sum(math.log(a / b) ** 2 for a, b in zip(_sizes(row), shape, strict=True))

    return min(rows, key=distance)[-1]


# Whole members one by one (a plain network per member, dense convolutions) against the member-batched layers,
# measured on the 2-core CPU with ResNet-20 (benchmarks/results/member_resnet_cpu.md, training steps, the loop and
# batched columns in either memory layout; member_resnet_inference_cpu.md, scoring test sets). Training: the
# loop wins once a member's first stage has 16 channels, or 8 with 8 members; below that the grouped convs and
# packed element-wise ops win (1.1-1.8x faster at width 4). Scoring (eval mode): the loop wins at every measured
# width and member count.
LOOP_FIRST_CHANNELS = 16
LOOP_FIRST_CHANNELS_MANY = (8, 8)  # (channels, members): from 8 members on, 8 first-stage channels suffice
EXECUTIONS = ("auto", "batched", "loop")


def choose_execution(device_type: str, dim: int, members: int, first_channels: int, training: bool = True) -> str:
    """"loop" or "batched" for a stack of `members` plain networks whose first convolution (`dim`-d) has
    `first_channels` output channels per member, in training or in eval mode. Only 2-d convs on the CPU were
    measured; elsewhere (1-d convs, GPUs: one kernel launch per layer instead of M) the member-batched layers
    run."""
    if device_type != "cpu" or dim != 2 or members < 2:
        return "batched"
    if not training:
        return "loop"
    channels, many = LOOP_FIRST_CHANNELS_MANY
    if first_channels >= LOOP_FIRST_CHANNELS or (first_channels >= channels and members >= many):
        return "loop"
    return "batched"
