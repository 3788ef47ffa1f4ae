"""Heat-map logic of the design-space study: winner per cell and the EST boundary, on synthetic tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ensplit.analysis.design_space import (
    CLASSES,
    DEPTH_EQUIVALENT,
    NO_WINNER,
    SINGLE,
    WIDTH_EQUIVALENT,
    DesignRecord,
    accuracy_tables,
    ensemble_wins,
    epochs_to_reach,
    switchover_epochs,
    switchover_staircase,
    switchover_threshold,
    thresholds,
    time_to_accuracy,
    winners,
)

S, W, D = (CLASSES.index(c) for c in (SINGLE, WIDTH_EQUIVALENT, DEPTH_EQUIVALENT))


def test_winner_per_cell_ties_go_to_single_and_nan_never_wins() -> None:
    single = np.array([[0.50, 0.60], [0.70, 0.80]])
    weq = np.array([[0.55, 0.60], [np.nan, 0.79]])
    deq = np.array([[0.52, 0.65], [0.71, 0.80]])
    got = winners({SINGLE: single, WIDTH_EQUIVALENT: weq, DEPTH_EQUIVALENT: deq})
    np.testing.assert_array_equal(got, [[W, D], [D, S]])
    # a margin demands a clear win
    got = winners({SINGLE: single, WIDTH_EQUIVALENT: weq, DEPTH_EQUIVALENT: deq}, margin=0.02)
    np.testing.assert_array_equal(got, [[W, D], [S, S]])
    single[0, 0] = np.nan
    assert winners({SINGLE: single, DEPTH_EQUIVALENT: deq})[0, 0] == NO_WINNER


def test_winner_matches_a_naive_loop_on_random_tables() -> None:
    rng = np.random.default_rng(0)
    tables = {c: rng.integers(0, 5, size=(6, 7)) / 4.0 for c in CLASSES}  # many ties
    tables[WIDTH_EQUIVALENT][rng.random((6, 7)) < 0.2] = np.nan
    got = winners(tables)
    for i, e in itertools.product(range(6), range(7)):
        best, who = tables[SINGLE][i, e], S
        for c in (WIDTH_EQUIVALENT, DEPTH_EQUIVALENT):
            value = tables[c][i, e]
            if not np.isnan(value) and value > best:
                best, who = value, CLASSES.index(c)
        assert got[i, e] == who


def test_ensemble_wins_any_both_and_one_class() -> None:
    single = np.array([[0.5, 0.5, 0.5]])
    weq = np.array([[0.6, 0.4, np.nan]])
    deq = np.array([[0.6, 0.6, 0.6]])
    tables = {SINGLE: single, WIDTH_EQUIVALENT: weq, DEPTH_EQUIVALENT: deq}
    np.testing.assert_array_equal(ensemble_wins(tables, "any"), [[True, True, True]])
    np.testing.assert_array_equal(ensemble_wins(tables, "both"), [[True, False, False]])
    np.testing.assert_array_equal(ensemble_wins(tables, WIDTH_EQUIVALENT), [[True, False, False]])
    with pytest.raises(ValueError):
        ensemble_wins(tables, "neither")


def _naive_staircase(wins: np.ndarray, fraction: float = 1.0) -> list[int | None]:
    budgets, epochs = wins.shape
    out: list[int | None] = []
    for i in range(budgets):
        first = None
        for e in range(epochs):
            cells = [wins[a, b] for a in range(i, budgets) for b in range(e, epochs)]
            if sum(cells) >= fraction * len(cells):
                first = e
                break
        out.append(first)
    return out


@pytest.mark.parametrize("fraction", [1.0, 0.8, 0.5])
def test_staircase_matches_a_naive_search_on_random_masks(fraction: float) -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        shape = tuple(rng.integers(1, 7, size=2))
        # bias towards wins in the upper right so that staircases are non-trivial
        i, e = np.indices(shape)
        wins = rng.random(shape) < (0.5 + 0.5 * (i / shape[0] + e / shape[1]) / 2)
        stairs = switchover_staircase(wins, fraction)
        assert stairs == _naive_staircase(wins, fraction)
        if fraction == 1.0:  # the strict staircase never rises as the budget grows
            steps = [s for s in stairs if s is not None]
            assert steps == sorted(steps, reverse=True)


def test_est_is_the_corner_of_a_known_threshold_and_follows_a_staircase() -> None:
    params, epochs = [1000, 2000, 4000, 8000, 16000], [1, 2, 3, 4, 5, 6]
    i, e = np.indices((5, 6))
    wins = (i >= 2) & (e >= 3)
    est = switchover_threshold(wins, params, epochs)
    assert (est.params, est.epochs, est.budget_index, est.epoch_index) == (4000, 4, 2, 3)
    # a staircase: bigger budgets switch earlier; the EST is where it starts
    wins = e >= np.array([6, 4, 3, 1, 0])[:, None]
    est = switchover_threshold(wins, params, epochs)
    assert est.staircase == (None, 4, 3, 1, 0)
    assert (est.params, est.epochs) == (2000, 5)
    # a lost cell in the far corner leaves no EST; noise below the threshold does not matter
    wins = (i >= 2) & (e >= 3)
    wins[0, 0] = True
    assert switchover_threshold(wins, params, epochs).params == 4000
    wins[4, 5] = False
    assert switchover_threshold(wins, params, epochs).params is None
    # ... unless a few lost cells are tolerated: 8 of the 9 cells of the (2, 3) quadrant are won
    tolerant = switchover_threshold(wins, params, epochs, min_fraction=0.85)
    assert (tolerant.params, tolerant.epochs, tolerant.min_fraction) == (4000, 4, 0.85)
    with pytest.raises(ValueError):
        switchover_threshold(wins, params[::-1], epochs)


def test_switchover_epoch_per_budget() -> None:
    wins = np.array([[0, 0, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=bool)
    assert switchover_epochs(wins) == [None, 2, 1, 0]
    # the per-budget epoch is the staircase of a one-row table
    for row in wins:
        assert switchover_epochs(row[None]) == switchover_staircase(row[None])


def test_time_to_accuracy() -> None:
    assert epochs_to_reach([0.1, 0.5, 0.7, 0.6], 0.6) == 3
    assert epochs_to_reach([0.1, 0.5], 0.6) is None
    assert time_to_accuracy([0.1, 0.5, 0.7], 0.7, seconds_per_epoch=2.0) == pytest.approx(6.0)
    assert time_to_accuracy([0.1, 0.5], 0.7, seconds_per_epoch=2.0) is None


def _record(cls: str, w: int, d: int, k: int, params: int, acc: list[float]) -> DesignRecord:
    return DesignRecord(cls, w, d, k, w, d, 1 if cls == SINGLE else k, params, acc)


def _synthetic_records(switch: dict[int, int]) -> list[DesignRecord]:
    """Four budgets, five epochs; ensembles of K beat the single network from budget index switch[K], epoch 3."""
    records = []
    for b, (w, params) in enumerate([(8, 1000), (16, 2000), (32, 4000), (64, 8000)]):
        single = [0.5 + 0.02 * e for e in range(5)]
        for k, start in switch.items():
            records.append(_record(SINGLE, w, 2, k, params, single))
            better = [s + (0.05 if b >= start and e >= 2 else -0.05) for e, s in enumerate(single)]
            records.append(_record(DEPTH_EQUIVALENT, w, 2, k, params - 10, better))
            records.append(_record(WIDTH_EQUIVALENT, w, 2, k, params - 20, [s - 0.1 for s in single]))
    return records


def test_est_moves_right_as_k_grows_on_synthetic_records() -> None:
    records = _synthetic_records({2: 1, 4: 3})
    tables, params = accuracy_tables(records, 4)
    assert params == [1000, 2000, 4000, 8000]
    assert tables[SINGLE].shape == (4, 5)
    est = thresholds(records)
    assert (est[2].params, est[2].epochs) == (2000, 3)
    assert (est[4].params, est[4].epochs) == (8000, 3)
    assert thresholds(records, which="both")[2].params is None  # weq never wins


def test_json_keys_are_exactly_the_contract() -> None:
    record = _record(DEPTH_EQUIVALENT, 8, 2, 4, 123, [0.5])
    assert list(record.to_json()) == ["class", "width", "depth", "members", "params", "accuracy_by_epoch",
                                      "seconds_per_epoch", "seconds_per_epoch_batched", "time_to_single_accuracy",
                                      "inference_ms_batch1", "inference_ms_large_batch", "peak_memory_bytes"]
    assert record.to_json()["class"] == DEPTH_EQUIVALENT and record.to_json()["members"] == 4
