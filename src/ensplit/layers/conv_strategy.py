"""Choose how `MemberConv` runs M convolutions ("grouped" or "loop") from a table of measured timings.

The rows come from `benchmarks/bench_member_conv.py` (forward + backward, see
`benchmarks/results/member_conv_<device>.md`): a shape takes the choice of its nearest measured shape on
the same device type and conv dimension, distance measured in log members, channels and spatial size.
Devices without measurements get "grouped" (one kernel launch instead of M; the usual GPU winner, but
not measured here: no GPU was available when the table was made).
"""

from __future__ import annotations

import math

# (device type, conv dim, members, channels, spatial size, choice), measured on a shared 2-core CPU
# (benchmarks/results/member_conv_cpu.md); few channels on large images favour the loop on CPU
TABLE: tuple[tuple[str, int, int, int, int, str], ...] = (
    ("cpu", 1, 16, 16, 40, "grouped"),
    ("cpu", 1, 16, 64, 40, "grouped"),
    ("cpu", 1, 4, 64, 40, "grouped"),
    ("cpu", 2, 4, 16, 32, "loop"),
    ("cpu", 2, 16, 16, 32, "loop"),
    ("cpu", 2, 4, 64, 8, "grouped"),
    ("cpu", 2, 16, 64, 8, "grouped"),
)

DEFAULT = "grouped"


def choose_strategy(device_type: str, dim: int, members: int, channels: int, spatial: int) -> str:
    """"grouped" or "loop" for M = `members` convolutions of `channels` channels on size `spatial` inputs."""
    rows = [r for r in TABLE if r[0] == device_type and r[1] == dim]
    if not rows:
        return DEFAULT

    def distance(row: tuple[str, int, int, int, int, str]) -> float:
        return sum(math.log(a / b) ** 2 for a, b in zip(row[2:5], (members, channels, spatial), strict=True))

    return min(rows, key=distance)[5]
