"""Timing and memory measurements: warm-ups and setup excluded, median of repeats, growth with size."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from ensplit.study import measure
from ensplit.study.designspace import build_network
from ensplit.train import TrainConfig

CONFIG = TrainConfig(batch_size=64)


class FakeClock:
    """perf_counter that only advances when the timed function says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_median_of_timed_repeats_excludes_warmups(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter", clock)
    costs = iter([100.0, 50.0, 3.0, 1.0, 2.0, 9.0, 4.0])  # two warm-ups, then five timed runs

    def fn() -> None:
        clock.now += next(costs)

    timing = measure.median_time(fn, warmup=2, repeats=5)
    assert timing.runs == (3.0, 1.0, 2.0, 9.0, 4.0)
    assert timing.median == 3.0
    with pytest.raises(ValueError):
        measure.median_time(fn, repeats=0)


def test_zero_cost_function_measures_near_zero() -> None:
    calls = []
    timing = measure.median_time(lambda: calls.append(1), warmup=3, repeats=5)
    assert len(calls) == 8
    assert timing.median < 1e-3


def test_parameter_free_modules_are_not_counted_as_layers() -> None:
    mlp = build_network("mlp", [0], False, "cpu", width=8, depth=3, in_shape=(40,), num_classes=10)
    assert measure.parameterised_layers(mlp) == 4  # 3 hidden + head; ReLUs excluded
    normed = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.1), nn.Identity())
    assert measure.parameterised_layers(normed) == 2


def _mlp(width: int) -> nn.Module:
    return build_network("mlp", [0], False, "cpu", width=width, depth=2, in_shape=(40,), num_classes=10)


def test_epoch_time_and_inference_grow_with_size() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(256, 40), torch.randint(0, 10, (256,))
    timing = dict(steps=3, steps_per_epoch=30, warmup=1, repeats=5)
    small = measure.epoch_seconds([_mlp(8)], x, y, CONFIG, [None], **timing)
    large = measure.epoch_seconds([_mlp(1024)], x, y, CONFIG, [None], **timing)
    assert len(small.runs) == 5
    # ~1000× the FLOPs; a loose factor because other jobs share the cores and the small run is all overhead
    assert large.median > 2 * small.median
    infer_small = measure.inference_ms_per_example([_mlp(8)], x, 256)
    infer_large = measure.inference_ms_per_example([_mlp(512)], x, 256)
    assert infer_large > 2 * infer_small
    # members one after another: two networks take longer than one
    one = measure.epoch_seconds([_mlp(256)], x, y, CONFIG, [None], **timing)
    two = measure.epoch_seconds([_mlp(256), _mlp(256)], x, y, CONFIG, [None, None], **timing)
    assert two.median > 1.2 * one.median


def test_member_batched_epoch_time_runs() -> None:
    x, y = torch.randn(128, 40), torch.randint(0, 10, (128,))
    model = build_network("mlp", [0, 1, 2], True, "cpu", width=16, depth=2, in_shape=(40,), num_classes=10)
    timing = measure.epoch_seconds([model], x, y, CONFIG, [3], steps=2, steps_per_epoch=4, repeats=2)
    assert timing.median > 0 and len(timing.runs) == 2


def test_peak_cpu_memory_grows_with_size_in_a_fresh_worker() -> None:
    x, y = torch.randn(128, 40), torch.randint(0, 10, (128,))

    def peak(width: int) -> int:
        factory = partial(build_network, "mlp", [0], False, "cpu", width=width, depth=2, in_shape=(40,),
                          num_classes=10)
        return measure.peak_training_memory(factory, x, y, None, CONFIG, steps=2)

    small, large = peak(8), peak(2048)
    params = 40 * 2048 + 2048 * 2048 + 10 * 2048
    assert large >= 3 * 4 * params * 0.9  # weights, gradients and momentum in float32
    assert small < 0.25 * large
    assert "resident set" in measure.memory_method("cpu")
    assert "CUDA" in measure.memory_method("cuda")
