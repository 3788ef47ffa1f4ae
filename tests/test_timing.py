"""Timing and memory measurements: warm-ups and setup excluded, median of repeats, growth with size."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from ensplit.experiments.designspace import build_network
from ensplit.train import TrainConfig, measure

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


def test_epoch_time_is_the_median_timed_run_scaled_to_an_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every timed run trains each model for `steps` steps; the result is scaled by steps_per_epoch / steps.
    A fake clock advances one unit per optimiser step, so the expected numbers are exact."""
    clock = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter", clock)
    steps_taken = []

    def counting_step(model, optimizer, xb, yb):
        steps_taken.append(xb.shape)
        clock.now += 1.0

    monkeypatch.setattr(measure, "training_step", counting_step)
    x, y = torch.randn(128, 40), torch.randint(0, 10, (128,))
    plains = [_mlp(8), _mlp(8)]
    timing = measure.epoch_seconds(plains, x, y, CONFIG, [None, None], steps=3, steps_per_epoch=30, warmup=1,
                                   repeats=4)
    # two models one after another, 3 steps each per run: 6 clock units, scaled by 30 / 3
    assert timing.runs == (60.0,) * 4 and timing.median == 60.0
    assert len(steps_taken) == (1 + 4) * 2 * 3  # the warm-up run trains too, untimed
    assert all(shape == (CONFIG.batch_size, 40) for shape in steps_taken)


def test_member_batched_timing_draws_one_batch_per_member(monkeypatch: pytest.MonkeyPatch) -> None:
    """The member-batched protocol feeds `[M, B, ...]` batches: each member its own rows."""
    seen = []
    monkeypatch.setattr(measure, "training_step", lambda model, optimizer, xb, yb: seen.append((xb, yb)))
    x = torch.arange(128 * 40, dtype=torch.float32).view(128, 40)
    y = torch.arange(128) % 10
    model = build_network("mlp", [0, 1, 2], True, "cpu", width=16, depth=2, in_shape=(40,), num_classes=10)
    timing = measure.epoch_seconds([model], x, y, CONFIG, [3], steps=2, steps_per_epoch=4, repeats=2)
    assert len(timing.runs) == 2
    assert len(seen) == 3 * 2 and all(xb.shape == (3, CONFIG.batch_size, 40) for xb, _ in seen)
    xb, yb = seen[0]
    rows = (xb[..., 0] / 40).long()  # which rows of x each member got
    assert torch.equal(yb, y[rows]) and not torch.equal(rows[0], rows[1])


def test_inference_time_is_per_example_over_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter", clock)
    batches = []

    class Tick(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))

        def forward(self, xb: torch.Tensor) -> torch.Tensor:
            batches.append(xb.shape[0])
            clock.now += 0.5
            return xb

    ms = measure.inference_ms_per_example([Tick(), Tick()], torch.randn(10, 4), 8, calls=3, warmup=1, repeats=3)
    # per timed run: 3 calls × 2 models × 0.5 s = 3 s for 3 × 8 examples -> 125 ms per example
    assert ms == pytest.approx(125.0)
    assert set(batches) == {8} and len(batches) == (1 + 3) * 3 * 2


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
