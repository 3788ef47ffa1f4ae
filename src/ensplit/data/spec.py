"""Which data a run trains on, as a small hashable value, and loading it the same way everywhere.

A `DataSpec` is part of every stored job's identity (its field names are hashed into job ids: never rename
them). `load_data(spec)` builds the data set once per process and caches it, so the study's workers, the
comparison and the recommender all see the same split, the same seeded subsets and the same validation
carve-out for the same spec.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

from ensplit.data import load_dataset
from ensplit.data.dataset import Dataset


@dataclass(frozen=True)
class DataSpec:
    """Enough to rebuild the same data set in any process.

    dataset: "mnist1d" (generated: num_samples at generator seed data_seed) or a path to image data.
    train_subset / test_subset: seeded random subsets (seed data_seed). validation_fraction: a seeded
    share of the training data held out as a validation split.
    """

    dataset: str = "mnist1d"
    num_samples: int = 5000
    data_seed: int = 42
    train_subset: int | None = None
    test_subset: int | None = None
    validation_fraction: float = 0.0


def load_data(spec: DataSpec) -> Dataset:
    """The data set of `spec` on the CPU (cached per process; move it with `.to(device)`). A path is cached by
    what it names now: the same spelling from another working directory, or a folder written anew, is read
    again."""
    if spec.dataset == "mnist1d":
        return _load(spec, None)
    path = Path(spec.dataset).resolve()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None  # the reader says what is missing
    return _load(replace(spec, dataset=str(path)), stamp)


@functools.lru_cache(maxsize=4)
def _load(spec: DataSpec, stamp: int | None) -> Dataset:
    """`load_data` of `spec` (an absolute path, or mnist1d), cached by `stamp`, the path's modification time."""
    if spec.dataset == "mnist1d":
        data = load_dataset(spec.dataset, num_samples=spec.num_samples, seed=spec.data_seed)
        data = data.subset(train=spec.train_subset, test=spec.test_subset, seed=spec.data_seed)
    else:  # image readers draw the seeded subsets themselves and decode only what they keep
        data = load_dataset(spec.dataset, train_subset=spec.train_subset, test_subset=spec.test_subset,
                            seed=spec.data_seed)
    if spec.validation_fraction > 0:
        data = data.with_validation(spec.validation_fraction, seed=spec.data_seed)
    return data
