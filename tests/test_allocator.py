"""ensplit.train.allocator: the switch, and its effect: page faults per step of a training-like allocation pattern,
measured in fresh processes (malloc settings are process-wide)."""

import json
import subprocess
import sys
import textwrap

import pytest

from ensplit.errors import EnsplitError
from ensplit.train import allocator

STEPS = textwrap.dedent("""
    import json, resource, torch
    from ensplit.train.allocator import keep_freed_memory
    tuned = keep_freed_memory()
    def step():  # as a training step does: activations of a few MiB allocated and written, then all freed
        activations = [torch.empty(512 * 1024 + 4096 * i).fill_(1.0) for i in range(12)]
        return sum(float(a[-1]) for a in activations)
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    print(json.dumps({"tuned": tuned, "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20}))
""")


def _faults_per_step(setting: str) -> dict:
    env = {"ENSPLIT_KEEP_FREED_MEMORY": setting, "OMP_NUM_THREADS": "1", "PATH": ""}
    done = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_kept_memory_removes_the_page_faults_of_each_step():
    default, tuned = _faults_per_step("0"), _faults_per_step("1")
    assert default["tuned"] is False
    if not tuned["tuned"]:
        pytest.skip("not glibc: mallopt is not available")
    if default["faults"] < 100:
        pytest.skip(f"malloc's defaults page-fault only {default['faults']:.0f} times a step here")
    assert tuned["faults"] < 0.1 * default["faults"], (default, tuned)


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
