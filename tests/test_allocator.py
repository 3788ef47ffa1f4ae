"""ensplit.train.allocator: the switch, and its effect on glibc's malloc, read back with `mallinfo2` in fresh
processes (malloc settings are process-wide): with malloc's defaults a 16 MiB activation is mapped fresh and
handed back to the kernel when freed (so the next step page-faults it in again); kept, it comes from the heap
and stays there for the next step. The page faults themselves are counted in
benchmarks/results/member_batched.md (they vary with the heap's history, so no test counts them)."""

import json
import subprocess
import sys
import textwrap

import pytest

from ensplit.errors import EnsplitError
from ensplit.train import allocator

PROBE = textwrap.dedent("""
    import ctypes, json, torch
    from ensplit.train.allocator import keep_freed_memory
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                         "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        print(json.dumps(None))
        raise SystemExit
    libc.mallinfo2.restype = MallInfo2
    tuned = keep_freed_memory()
    before = libc.mallinfo2()
    block = torch.empty(4 * 1024 * 1024).fill_(1.0)  # 16 MiB, written
    during = libc.mallinfo2()
    del block
    after = libc.mallinfo2()
    print(json.dumps({"tuned": tuned, "mapped": during.hblkhd - before.hblkhd, "free_after": after.fordblks}))
""")
MIB16 = 16 * 1024 * 1024


def _probe(setting: str) -> dict | None:
    env = {"ENSPLIT_KEEP_FREED_MEMORY": setting, "OMP_NUM_THREADS": "1", "PATH": ""}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_activations_stay_in_the_heap():
    default, kept = _probe("0"), _probe("1")
    if default is None:
        pytest.skip("no mallinfo2 (glibc < 2.33 or another C library)")
    assert default["tuned"] is False and kept["tuned"] is True
    assert default["mapped"] >= MIB16  # malloc's defaults: mapped fresh, and unmapped again when freed
    assert kept["mapped"] == 0 and kept["free_after"] >= MIB16  # from the heap, and kept there once freed


@pytest.mark.parametrize("text,expected", [("1", True), ("true", True), ("on", True), ("0", False), ("off", False)])
def test_the_switch_reads_booleans(monkeypatch, text, expected):
    monkeypatch.setenv(allocator.ENV_VAR, text)
    assert allocator.enabled() is expected


def test_the_switch_is_on_by_default_and_refuses_a_non_boolean(monkeypatch):
    monkeypatch.delenv(allocator.ENV_VAR, raising=False)
    assert allocator.enabled()
    monkeypatch.setenv(allocator.ENV_VAR, "sometimes")
    with pytest.raises(EnsplitError, match="ENSPLIT_KEEP_FREED_MEMORY = 'sometimes': must be a boolean"):
        allocator.keep_freed_memory()
