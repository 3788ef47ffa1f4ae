"""Bring your own predictions: pools in `.npz` files made by any framework (no pickles are read).

Each file holds `log_probs` `[members, N, classes]` (or `logits`), `labels` `[N]` and, for `analyze`,
`params_per_member` (a scalar): one file per member size.
"""

from __future__ import annotations

import itertools
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch

from ensplit.errors import EnsplitError
from ensplit.metrics import log_softmax, validate_predictions


@dataclass(frozen=True)
class Pool:
    """One member size: validated float64 log-probs `[ℓ, N, C]`, labels `[N]`, params per member."""

    name: str
    log_probs: torch.Tensor
    labels: torch.Tensor
    params_per_member: int | None


NPY_MAGIC = b"\x93NUMPY"
ARRAYS = ("log_probs", "logits", "labels", "params_per_member")


def _headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of an `.npz`, read from the headers alone (nothing is allocated)."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
            headers[name] = (tuple(shape), dtype)
    return headers


def _check_headers(path: Path, headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    for name, (_, dtype) in headers.items():
        if dtype.hasobject:
            raise EnsplitError(f"{path}: array {name!r} holds Python objects; ensplit never unpickles (save numbers)")
    size = sum(int(np.prod(shape, dtype=np.float64)) * dtype.itemsize for shape, dtype in headers.values())
    limit = psutil.virtual_memory().available // 2
    if size > limit:
        raise EnsplitError(f"{path}: its arrays would take {size / 2**30:,.1f} GiB, more than half of the "
                           f"{2 * limit / 2**30:,.1f} GiB of available RAM")
    kinds = {"log_probs": "f", "logits": "f", "labels": "iu", "params_per_member": "iuf"}
    for name, allowed in kinds.items():
        if name in headers and headers[name][1].kind not in allowed:
            what = {"f": "floating-point", "iu": "integer", "iuf": "numeric"}[allowed]
            raise EnsplitError(f"{path}: {name!r} must be {what}, got dtype {headers[name][1]}")


def _open(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        raise EnsplitError(f"{path} is a folder; give an .npz file")
    if not path.is_file():
        raise EnsplitError(f"no such file: {path}")
    with path.open("rb") as f:
        start = f.read(6)
    if not start:
        raise EnsplitError(f"{path} is empty")
    if start == NPY_MAGIC:
        raise EnsplitError(f"{path} is a single .npy array, not an .npz archive; save the pool with "
                           "np.savez(path, log_probs=..., labels=..., params_per_member=...)")
    try:
        headers = _headers(path)
        _check_headers(path, headers)
        with np.load(path, allow_pickle=False) as data:
            return {k: _native(data[k]) for k in data.files if k in ARRAYS}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise EnsplitError(f"{path} is not a readable .npz file ({error})") from None


def _native(array: np.ndarray) -> np.ndarray:
    """The array in this machine's byte order (a big-endian file is read like any other)."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _params(path: Path, value: np.ndarray) -> int:
    flat = np.asarray(value).reshape(-1)
    number = float(flat[0]) if flat.size == 1 else float("nan")
    if not (math.isfinite(number) and number >= 1 and number == int(number)):
        raise EnsplitError(f"{path}: params_per_member must be one positive whole number, got {value!r}")
    return int(number)


def load_pool(path: str | Path, need_params: bool = False) -> Pool:
    """One pool from an `.npz`: headers checked before any array is read (kinds, objects, size)."""
    path = Path(path)
    arrays = _open(path)
    if "labels" not in arrays:
        raise EnsplitError(f"{path} has no 'labels' array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    if "log_probs" in arrays and "logits" in arrays:
        raise EnsplitError(f"{path} holds both 'log_probs' and 'logits'; keep one, so it is clear which is meant")
    if "log_probs" in arrays:
        log_probs = torch.as_tensor(arrays["log_probs"])
    elif "logits" in arrays:
        try:
            log_probs = log_softmax(torch.as_tensor(arrays["logits"]).double())
        except EnsplitError as error:
            raise EnsplitError(f"{path}: {error}") from None
    else:
        raise EnsplitError(f"{path} needs a 'log_probs' or 'logits' array [members, N, classes]")
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    if log_probs.dim() != 3:
        raise EnsplitError(f"{path}: predictions must be [members, N, classes], got shape {tuple(log_probs.shape)}")
    if log_probs.shape[0] == 0:
        raise EnsplitError(f"{path}: the pool has zero members")
    labels = arrays["labels"]
    if labels.ndim != 1 or labels.shape[0] != log_probs.shape[1]:
        raise EnsplitError(f"{path}: labels have shape {labels.shape} but predictions cover "
                           f"{log_probs.shape[1]} objects")
    try:
        log_probs, labels_t = validate_predictions(log_probs, labels)
    except EnsplitError as error:
        raise EnsplitError(f"{path}: {error}") from None
    params = None
    if "params_per_member" in arrays:
        params = _params(path, arrays["params_per_member"])
    elif need_params:
        raise EnsplitError(f"{path} has no 'params_per_member' (needed to place it on the size axis)")
    return Pool(path.stem, log_probs.double(), labels_t, params)


def load_pools(paths: list[str]) -> list[Pool]:
    """Pools from files and/or folders of `.npz` files, sorted by member size; labels must agree."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(f for f in path.glob("*.npz") if f.is_file())
            if not found:
                raise EnsplitError(f"no .npz files in {path}")
            files += found
        else:
            files.append(path)
    pools = sorted((load_pool(f, need_params=True) for f in files), key=lambda p: p.params_per_member)
    if pools and pools[0].labels.shape[0] < 2:
        raise EnsplitError(f"{pools[0].name}: CNLL's test-time cross-validation needs at least 2 test objects, "
                           f"the pool has {pools[0].labels.shape[0]}")
    for pool in pools[1:]:
        if not torch.equal(pool.labels, pools[0].labels):
            raise EnsplitError(f"{pool.name}: labels differ from {pools[0].name}'s; pools must share one split")
        if pool.log_probs.shape[-1] != pools[0].log_probs.shape[-1]:
            raise EnsplitError(f"{pool.name}: {pool.log_probs.shape[-1]} classes, but {pools[0].name} has "
                               f"{pools[0].log_probs.shape[-1]}; pools must share one task")
    for first, second in itertools.pairwise(pools):
        if first.params_per_member == second.params_per_member:
            raise EnsplitError(f"{first.name} and {second.name} have the same params_per_member "
                               f"({first.params_per_member:,}); give one file per member size")
    return pools
