"""`ensplit designspace` on a process pool (two workers) and on Ray reports the numbers of the local executor:
the same training jobs, seeds and one torch thread everywhere, so accuracies, NLL, CNLL, parameters and layers
agree to a relative 1e-9 (in practice bit for bit). Timings and memory are measured, so they are only checked to
be there: the pool's cost jobs measure CPU memory in a process of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ensplit.experiments.designspace import DesignSpaceConfig, run_designspace

CONFIG = {"family": "mlp", "members": "2", "widths": "8,16", "depths": "2", "epochs": 2, "train_subset": 128,
          "test_subset": 64, "batch_size": 64, "timing_repeats": 1, "timing_warmup": 0, "inference_repeats": 1,
          "timing_steps": 1, "large_batch": 16, "measure_memory": True, "memory_steps": 1, "threads": 1}
MEASURED = ("seconds_per_epoch", "seconds_per_epoch_batched", "time_to_single_accuracy", "inference_ms_batch1",
            "inference_ms_large_batch", "peak_memory_bytes", "peak_memory_bytes_batched")
TOLERANCE = 1e-9


def numbers(result: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in vars(r).items() if k not in MEASURED} for r in result.records]


def same_numbers(result: Any, reference: Any) -> None:
    for row, expected in zip(numbers(result), numbers(reference), strict=True):
        assert set(row) == set(expected)
        for key, value in expected.items():
            close = pytest.approx(value, rel=TOLERANCE, abs=1e-12) if key == "accuracy_by_epoch" or isinstance(
                value, float) else value
            assert row[key] == close, (row["design_class"], key)
    assert result.est == reference.est and result.unformable == reference.unformable
    for record in result.records:
        assert record.seconds_per_epoch > 0 and record.seconds_per_epoch_batched > 0
        assert record.peak_memory_bytes is not None and record.peak_memory_bytes_batched is not None


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return run_designspace(DesignSpaceConfig.from_mapping(CONFIG), tmp_path_factory.mktemp("local"), progress=False)


@pytest.mark.slow  # two spawned workers import torch; cost jobs start memory workers
def test_designspace_on_a_process_pool_reports_the_numbers_of_the_local_executor(local: Any, tmp_path: Path) -> None:
    config = DesignSpaceConfig.from_mapping({**CONFIG, "executor": "process", "workers": 2})
    same_numbers(run_designspace(config, tmp_path, progress=False), local)
    again = run_designspace(DesignSpaceConfig.from_mapping(CONFIG), tmp_path, progress=False)  # local, same folder
    assert again.trained_jobs == 0  # the executor is not the folder's identity


@pytest.mark.slow  # a local Ray instance starts
@pytest.mark.ray
def test_designspace_on_ray_reports_the_numbers_of_the_local_executor(local: Any, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ensplit[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        config = DesignSpaceConfig.from_mapping({**CONFIG, "executor": "ray", "workers": 2})
        same_numbers(run_designspace(config, tmp_path, progress=False), local)
    finally:
        ray.shutdown()
