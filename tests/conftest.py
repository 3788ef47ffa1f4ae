"""Test-wide settings: one torch thread (fast on 2 shared cores) and a private data cache."""

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one torch thread, whatever an earlier test set: tiny tensors on shared cores
    run erratically (up to 100× slower) with OpenMP threads spinning against other jobs."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep generated and decoded data sets out of the user's cache, but share them across tests."""
    import os

    if "ENSPLIT_CACHE" not in os.environ:
        os.environ["ENSPLIT_CACHE"] = str(tmp_path_factory.mktemp("ensplit-cache"))


@pytest.fixture
def float64_default():
    """Float64 as torch's default dtype (and one thread) for one test; restored afterwards."""
    previous, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(previous)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def benchmark_script() -> Callable[[str], ModuleType]:
    """Loads a script of benchmarks/ by name as a module, to test its pure parts (importing times nothing)."""
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
