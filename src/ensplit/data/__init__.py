"""Data sets as device-resident tensors: the embedded MNIST-1D default and image readers."""

from __future__ import annotations

from pathlib import Path

from ensplit.data.dataset import Dataset
from ensplit.data.mnist1d import load_mnist1d
from ensplit.errors import EnsplitError


def load_dataset(spec: str = "mnist1d", **options: object) -> Dataset:
    """`"mnist1d"` (options: num_samples, seed) or a path to image data on disk (see `ensplit.data.images`)."""
    if spec == "mnist1d":
        return load_mnist1d(**options)
    path = Path(spec)
    if not path.exists():
        raise EnsplitError(f"data set {spec!r} is neither 'mnist1d' nor an existing path")
    from ensplit.data.images import load_image_dataset

    return load_image_dataset(path, **options)


__all__ = ["Dataset", "load_dataset", "load_mnist1d"]
