"""Image classification data from disk: detect the format, decode once, cache uint8 arrays, return a Dataset.

Formats (see the readers): Hugging Face Parquet exports, image folders, the CIFAR-10/100 binary release,
IDX files (MNIST family). The decoded arrays are cached as .npz under `$ENSPLIT_CACHE`, keyed by every
source file's path, size and mtime plus the options that change the result, so an edited or replaced
file is decoded again and a cached load never opens the source files.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import torch

from ensplit.data.cache import load_arrays, save_arrays
from ensplit.data.dataset import Dataset
from ensplit.data.image_source import FoundImages, ImageSplit
from ensplit.data.readers_binary import find_cifar_binary, find_idx
from ensplit.data.readers_folder import find_image_folder
from ensplit.data.readers_parquet import find_parquet
from ensplit.errors import EnsplitError

CACHE_VERSION = 1  # bump when the decoding changes, so old caches are not reused


def find_images(path: Path, image_column: str | None = None, label_column: str | None = None) -> FoundImages:
    """Recognise the data set at `path` (a folder, or a file inside it / a single Parquet file)."""

    def structured(p: Path) -> FoundImages | None:
        return (find_parquet(p, image_column, label_column) or find_cifar_binary(p, label_column)
                or find_idx(p))

    found = structured(path)
    if found is None and path.is_dir():
        children = [c for c in path.iterdir() if not c.name.startswith(".")]
        if len(children) == 1 and children[0].is_dir():  # e.g. an unpacked `cifar-10-batches-bin/`
            found = structured(children[0])
        found = found or find_image_folder(path)
    if found is None:
        raise EnsplitError(
            f"unrecognised data {'folder' if path.is_dir() else 'file'} {path}: expected Parquet files, "
            "class folders of images, the CIFAR binary release (*.bin) or IDX files (*-ubyte[.gz])"
        )
    return found


def load_image_dataset(
    path: str | Path,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    image_size: int | tuple[int, int] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    workers: int | None = None,
    cache: bool = True,
) -> Dataset:
    """Load an image data set as uint8 `[N, C, H, W]` tensors with per-channel training mean/std (0–1 scale).

    train_subset / test_subset: keep a seeded random subset (decoded alone: quick runs and tests).
    test_fraction: the seeded hold-out used as the test split when the files hold a single split.
    image_size: resize encoded images to this size (an int for square) instead of requiring one size.
    image_column / label_column: override Parquet column detection (label_column also picks CIFAR-100's
    'fine_label' or 'coarse_label'). workers: decoding threads (default: up to 8).
    """
    path = Path(path)
    if not path.exists():
        raise EnsplitError(f"data path {path} does not exist")
    if not (path.is_file() or path.is_dir()):  # e.g. /dev/null or a pipe
        raise EnsplitError(f"data path {path} is neither a file nor a folder")
    if not 0.0 < test_fraction < 1.0:
        raise EnsplitError(f"test_fraction must be in (0, 1), got {test_fraction}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size) if image_size else None
    found = find_images(path, image_column, label_column)
    options = dict(train_subset=train_subset, test_subset=test_subset, seed=seed, test_fraction=test_fraction,
                   size=size, image_column=image_column, label_column=label_column)
    key = _cache_key(found, options)
    keys = ("x_train", "y_train", "x_test", "y_test", "num_classes", "mean", "std", "class_names")
    arrays = load_arrays(key, keys) if cache else None
    if arrays is None:
        arrays = _decode(found, train_subset, test_subset, seed, test_fraction, size, workers)
        if cache:
            save_arrays(key, arrays)
    names = tuple(str(n) for n in arrays["class_names"]) or None
    return Dataset(
        name=found.name,
        x_train=torch.from_numpy(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]),
        x_test=torch.from_numpy(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]),
        num_classes=int(arrays["num_classes"]),
        kind="image",
        mean=tuple(float(m) for m in arrays["mean"]),
        std=tuple(float(s) for s in arrays["std"]),
        class_names=names,
    )


def _cache_key(found: FoundImages, options: dict) -> str:
    stats = []
    for f in found.files:
        st = f.stat()
        stats.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    blob = json.dumps([CACHE_VERSION, found.format, stats, options], sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return f"images-{re.sub(r'[^A-Za-z0-9_.-]', '_', found.name)[:40]}-{digest}"


def _seeded_pick(n: int, k: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """k sorted row indices out of n (sorted: reads stay sequential), or None to keep all."""
    if k is None or k >= n:
        return None
    if k < 1:
        raise EnsplitError(f"a subset needs at least one example, got {k}")
    return np.sort(rng.permutation(n)[:k])


def _decode(found: FoundImages, train_subset: int | None, test_subset: int | None, seed: int,
            test_fraction: float, size: tuple[int, int] | None, workers: int | None) -> dict[str, np.ndarray]:
    splits = found.read()
    rng = np.random.default_rng(seed)
    train, test = splits.train, splits.test
    if test is None:  # one split on disk: hold out a seeded fraction as the test set
        n = len(train)
        if n < 2:
            raise EnsplitError(f"{found.name} has {n} image(s): too few to hold out a test split")
        order = rng.permutation(n)
        n_test = min(n - 1, max(1, round(n * test_fraction)))
        train, test = train.select(np.sort(order[n_test:])), train.select(np.sort(order[:n_test]))
    picked: list[ImageSplit] = []
    for split, k in ((train, train_subset), (test, test_subset)):
        index = _seeded_pick(len(split), k, rng)
        picked.append(split if index is None else split.select(index))
    train, test = picked
    x_train, x_test = train.decode(size, workers), test.decode(size, workers)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise EnsplitError(f"train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]} "
                           "(C, H, W); resize them to one size (from Python, load_dataset(..., image_size=...) "
                           "resizes them)")
    names = splits.class_names
    top = int(max(train.labels.max(initial=-1), test.labels.max(initial=-1)))
    for which, split in (("train", train), ("test", test)):
        if split.labels.min(initial=0) < 0:
            raise EnsplitError(f"{found.name}: the {which} labels include {int(split.labels.min())}; labels must be "
                               "class indices >= 0")
    if names is not None and top >= len(names):
        names = None  # the names file does not cover the labels: better no names than wrong ones
    mean, std = channel_mean_std(x_train)
    return {
        "x_train": x_train, "y_train": train.labels.astype(np.int64),
        "x_test": x_test, "y_test": test.labels.astype(np.int64),
        "num_classes": np.array(len(names) if names else top + 1),
        "class_names": np.array(names or [], dtype=str),
        "mean": mean, "std": std,
    }


def channel_mean_std(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std on the 0–1 scale of uint8 `[N, C, H, W]`.

    Exact: integer sums of values and squares, in chunks so memory stays small.
    """
    total = np.zeros(x.shape[1], dtype=np.int64)
    squares = np.zeros(x.shape[1], dtype=np.int64)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].astype(np.int32)
        total += part.sum(axis=(0, 2, 3), dtype=np.int64)
        squares += (part * part).sum(axis=(0, 2, 3), dtype=np.int64)  # ≤ 255² fits int32
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    variance = np.maximum(squares / count - mean**2, 0.0)
    return mean / 255.0, np.maximum(np.sqrt(variance) / 255.0, 1e-8)
