"""Keep freed CPU memory in the process between training steps (glibc's malloc only).

A member-batched step allocates activations of a few MiB and frees them again. With glibc's defaults such
blocks are mapped fresh or trimmed back to the kernel, so every step page-faults them in again: on a
member-batched 1-D CNN, ~900 minor faults and ~2 ms of a ~17 ms step (benchmarks/results/member_batched.md).
Raising the mmap threshold to glibc's maximum and the trim threshold to 256 MiB keeps those blocks in the
heap for the next step. PyTorch's own CPU tuning guide recommends jemalloc or tcmalloc for the same reason;
`mallopt` gets there without a preloaded library.

Set ENSPLIT_KEEP_FREED_MEMORY=0 to keep malloc's defaults. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

from ensplit.errors import EnsplitError
from ensplit.parsing import parse_bool

ENV_VAR = "ENSPLIT_KEEP_FREED_MEMORY"
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 256 * 1024 * 1024  # free memory the heap keeps at its top before returning it


def enabled() -> bool:
    """Whether ENSPLIT_KEEP_FREED_MEMORY asks for it (default on); a value that is not a boolean is an error."""
    text = os.environ.get(ENV_VAR, "1")
    try:
        return parse_bool(text)
    except ValueError:
        raise EnsplitError(f"{ENV_VAR} = {text!r}: must be a boolean (1 or 0, true or false)") from None


@functools.cache
def _apply() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only; musl's mallopt is a no-op stub
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


def keep_freed_memory() -> bool:
    """Tune this process's malloc once (see the module docstring); True when it is tuned."""
    return enabled() and _apply()
