"""One epoch timer (`ensplit.train.epoch_time`): the median of the epochs after the first, checked against hand
computations, and the one figure every experiment reports as `seconds_per_epoch`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ensplit.experiments import compare, designspace
from ensplit.train import measure
from ensplit.train.epoch_time import WARMUP_EPOCHS, seconds_per_epoch, steady_median

SRC = Path(__file__).resolve().parents[1] / "src" / "ensplit"


@pytest.mark.parametrize("epochs, expected", [
    ([9.0, 1.0, 3.0, 2.0], 2.0),  # epochs 2..4 sorted: 1, 2, 3 -> the middle one
    ([9.0, 1.0, 2.0, 4.0, 3.0], 2.5),  # an even count: (2 + 3) / 2
    ([9.0, 1.0, 1.0, 100.0], 1.0),  # one stall (100 s) moves the mean (34) but not the median
    ([10.0, 3.0], 3.0),  # two epochs: the second
    ([4.0], 4.0),  # one epoch: the only figure there is, warm-up included
])
def test_seconds_per_epoch_is_the_median_after_the_first_epoch(epochs: list[float], expected: float) -> None:
    assert WARMUP_EPOCHS == 1
    assert seconds_per_epoch(epochs) == expected


def test_steady_median_drops_the_warmup_runs_and_refuses_nothing_to_time() -> None:
    assert steady_median([50.0, 40.0, 3.0, 1.0, 2.0], warmup=2) == 2.0
    assert steady_median([3.0, 1.0, 2.0], warmup=0) == 2.0
    assert steady_median([5.0, 7.0], warmup=5) == 6.0  # nothing after the warm-up: all of them
    with pytest.raises(ValueError, match="no timed runs"):
        seconds_per_epoch([])
    with pytest.raises(ValueError, match="warmup"):
        steady_median([1.0], warmup=-1)


def test_measure_times_the_warmups_and_reports_by_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(measure.time, "perf_counter", lambda: now[0])
    costs = iter([100.0, 3.0, 1.0, 2.0])

    def run() -> None:
        now[0] += next(costs)

    timing = measure.median_time(run, warmup=1, repeats=3)
    assert timing.runs == (3.0, 1.0, 2.0) and timing.median == 2.0 == steady_median([100.0, 3.0, 1.0, 2.0], 1)


def test_compare_and_designspace_report_with_the_one_timer() -> None:
    assert compare.seconds_per_epoch is seconds_per_epoch
    assert designspace.seconds_per_epoch is seconds_per_epoch


def test_no_other_module_defines_its_own_seconds_per_epoch() -> None:
    """A second definition would be a second meaning (recommend*.py left out: it times a few steps, scaled)."""
    found = []
    for path in SRC.rglob("*.py"):
        if path.name.startswith("recommend"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "seconds_per_epoch":
                found.append(str(path.relative_to(SRC)))
    assert found == ["train/epoch_time.py"]
