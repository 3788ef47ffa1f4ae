"""Raw binary releases: CIFAR-10/100 (`*.bin`) and IDX files (the MNIST family, optionally gzipped).

Only the binary CIFAR release is read: the "python" release is pickled, and ensplit never unpickles
files a user points at.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ensplit.data.image_source import FoundImages, ImageSplit, ImageSplits
from ensplit.errors import EnsplitError

_CIFAR_PIXELS = 3 * 32 * 32


def _read_bytes(file: Path) -> bytes:
    try:
        if file.suffix == ".gz":
            with gzip.open(file, "rb") as f:
                return f.read()
        return file.read_bytes()
    except (OSError, EOFError) as error:
        raise EnsplitError(f"cannot read {file}: {error}") from None


def _names_file(file: Path) -> tuple[str, ...] | None:
    if not file.is_file():
        return None
    names = tuple(line.strip() for line in file.read_text(errors="replace").splitlines() if line.strip())
    return names or None


# ---------------------------------------------------------------- CIFAR


def find_cifar_binary(path: Path, label_column: str | None = None) -> FoundImages | None:
    """CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`) or CIFAR-100 (`train.bin`, `test.bin`)."""
    folder = path.parent if path.is_file() else path
    train10 = sorted(folder.glob("data_batch_*.bin"))
    if train10 and (folder / "test_batch.bin").is_file():
        if label_column not in (None, "label"):
            raise EnsplitError(f"CIFAR-10 has one label; label_column={label_column!r} does not apply")
        meta = folder / "batches.meta.txt"
        files = [*train10, folder / "test_batch.bin"] + ([meta] if meta.is_file() else [])
        return FoundImages("cifar10-binary", folder.name, files,
                           lambda: _cifar(train10, folder / "test_batch.bin", 1, 0, _names_file(meta)))
    if (folder / "train.bin").is_file() and (folder / "test.bin").is_file():
        which = {None: 1, "fine_label": 1, "fine": 1, "coarse_label": 0, "coarse": 0}
        if label_column not in which:
            raise EnsplitError(f"CIFAR-100 labels are 'fine_label' or 'coarse_label', not {label_column!r}")
        offset = which[label_column]
        meta = folder / ("fine_label_names.txt" if offset else "coarse_label_names.txt")
        files = [folder / "train.bin", folder / "test.bin"] + ([meta] if meta.is_file() else [])
        return FoundImages("cifar100-binary", folder.name, files,
                           lambda: _cifar([folder / "train.bin"], folder / "test.bin", 2, offset, _names_file(meta)))
    return None


def _cifar_file(file: Path, label_bytes: int, label_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Records are `label_bytes` label bytes then 3072 pixels (all R rows, then G, then B)."""
    data = np.frombuffer(_read_bytes(file), dtype=np.uint8)
    record = label_bytes + _CIFAR_PIXELS
    if data.size == 0 or data.size % record:
        raise EnsplitError(f"CIFAR binary file {file} is truncated: {data.size} bytes is not a multiple of {record}")
    rows = data.reshape(-1, record)
    return rows[:, label_offset].astype(np.int64), rows[:, label_bytes:].reshape(-1, 3, 32, 32)


def _cifar(train: list[Path], test: Path, label_bytes: int, offset: int,
           names: tuple[str, ...] | None) -> ImageSplits:
    parts = [_cifar_file(f, label_bytes, offset) for f in train]
    y_test, x_test = _cifar_file(test, label_bytes, offset)
    train_split = ImageSplit(np.concatenate([y for y, _ in parts]), pixels=np.concatenate([x for _, x in parts]))
    return ImageSplits(train_split, ImageSplit(y_test, pixels=x_test), names)


# ---------------------------------------------------------------- IDX

_IDX_TYPES = {0x08: np.uint8}


def _idx_role(file: Path) -> tuple[str, str] | None:
    """("train" | "test", "images" | "labels") from names like `t10k-images-idx3-ubyte.gz`."""
    name = file.name.lower()
    kind = "images" if "idx3" in name else "labels" if "idx1" in name else None
    split = "train" if "train" in name else "test" if ("t10k" in name or "test" in name) else None
    return (split, kind) if kind and split else None


def find_idx(path: Path) -> FoundImages | None:
    """A folder (or a file in it) with train/test image (idx3) and label (idx1) files."""
    folder = path.parent if path.is_file() else path
    roles: dict[tuple[str, str], Path] = {}
    for f in sorted(folder.iterdir()):
        role = _idx_role(f) if f.is_file() and "ubyte" in f.name.lower() else None
        if role is not None:
            if role in roles:  # e.g. both `x.gz` and the unpacked `x`: read the unpacked one
                roles[role] = min(roles[role], f, key=lambda p: (p.suffix == ".gz", p.name))
            else:
                roles[role] = f
    if not roles:
        return None
    missing = [f"{s} {k}" for s in ("train", "test") for k in ("images", "labels") if (s, k) not in roles]
    if missing:
        raise EnsplitError(f"IDX files in {folder} are incomplete: no {', '.join(missing)} file")
    files = [roles[(s, k)] for s in ("train", "test") for k in ("images", "labels")]
    return FoundImages("idx", folder.name, files, lambda: ImageSplits(
        _idx_split(roles[("train", "images")], roles[("train", "labels")]),
        _idx_split(roles[("test", "images")], roles[("test", "labels")]), None))


def read_idx(file: Path) -> np.ndarray:
    """An IDX array: magic 0x0000, type byte, ndim byte, ndim big-endian uint32 sizes, then the data."""
    raw = _read_bytes(file)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise EnsplitError(f"{file} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise EnsplitError(f"IDX file {file} is truncated (header)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise EnsplitError(
            f"IDX file {file} is truncated: {len(raw) - header} data bytes, shape {shape} needs {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_split(images: Path, labels: Path) -> ImageSplit:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise EnsplitError(f"IDX pair {images} / {labels}: shapes {x.shape} and {y.shape} do not match")
    return ImageSplit(y.astype(np.int64), pixels=x[:, None])
