"""Bring your own predictions: pools in `.npz` files made by any framework (no pickles are read).

Each file holds `log_probs` `[members, N, classes]` (or `logits`), `labels` `[N]` and, for `analyze`,
`params_per_member` (a scalar): one file per member size.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


def load_pool(path: str | Path, need_params: bool = False) -> Pool:
    path = Path(path)
    if not path.is_file():
        raise EnsplitError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise EnsplitError(f"{path} is not a readable .npz file ({error})") from None
    if "labels" not in arrays:
        raise EnsplitError(f"{path} has no 'labels' array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    if "log_probs" in arrays:
        log_probs = torch.as_tensor(arrays["log_probs"])
    elif "logits" in arrays:
        log_probs = log_softmax(torch.as_tensor(arrays["logits"]).double())
    else:
        raise EnsplitError(f"{path} needs a 'log_probs' or 'logits' array [members, N, classes]")
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    if log_probs.dim() != 3:
        raise EnsplitError(f"{path}: predictions must be [members, N, classes], got shape {tuple(log_probs.shape)}")
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
        value = np.asarray(arrays["params_per_member"]).reshape(-1)
        if value.size != 1 or not float(value[0]) > 0:
            raise EnsplitError(f"{path}: params_per_member must be one positive number")
        params = int(value[0])
    elif need_params:
        raise EnsplitError(f"{path} has no 'params_per_member' (needed to place it on the size axis)")
    return Pool(path.stem, log_probs.double(), labels_t, params)


def load_pools(paths: list[str]) -> list[Pool]:
    """Pools from files and/or folders of `.npz` files, sorted by member size; labels must agree."""
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(path.glob("*.npz"))
            if not found:
                raise EnsplitError(f"no .npz files in {path}")
            files += found
        else:
            files.append(path)
    pools = sorted((load_pool(f, need_params=True) for f in files), key=lambda p: p.params_per_member)
    for pool in pools[1:]:
        if not torch.equal(pool.labels, pools[0].labels):
            raise EnsplitError(f"{pool.name}: labels differ from {pools[0].name}'s; pools must share one split")
    sizes = [p.params_per_member for p in pools]
    if len(set(sizes)) != len(sizes):
        raise EnsplitError("two pools have the same params_per_member; give one file per member size")
    return pools
