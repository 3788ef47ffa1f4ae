"""MNIST-1D (Greydanus, 2020), generated procedurally by the `mnist1d` package: no network, no files."""

from __future__ import annotations

import numpy as np
import torch

from ensplit.data.cache import load_arrays, save_arrays
from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError

STANDARD_SAMPLES = 5000  # the standard split: 4,000 train / 1,000 test
STANDARD_SEED = 42


def _generate(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset  # never get_dataset: it downloads

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG; leave the caller's intact
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


def load_mnist1d(num_samples: int = STANDARD_SAMPLES, seed: int = STANDARD_SEED, cache: bool = True) -> Dataset:
    """The MNIST-1D split for `num_samples` (80/20 train/test) and generator `seed`, cached after first use."""
    if num_samples < 50:
        raise EnsplitError(f"mnist1d needs at least 50 samples, got {num_samples}")
    name = f"mnist1d-n{num_samples}-s{seed}"
    arrays = load_arrays(name, ("x", "y", "x_test", "y_test")) if cache else None
    if arrays is None:
        arrays = _generate(num_samples, seed)
        if cache:
            save_arrays(name, arrays)
    return Dataset(
        name="mnist1d" if (num_samples, seed) == (STANDARD_SAMPLES, STANDARD_SEED) else name,
        x_train=torch.as_tensor(arrays["x"], dtype=torch.float32),
        y_train=torch.as_tensor(arrays["y"], dtype=torch.long),
        x_test=torch.as_tensor(arrays["x_test"], dtype=torch.float32),
        y_test=torch.as_tensor(arrays["y_test"], dtype=torch.long),
        num_classes=10,
        kind="vector",
    )
