"""The data-set contract: tensors ready to live on the training device."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace

import torch


@functools.lru_cache(maxsize=16)
def _channel_stats(mean: tuple[float, ...], std: tuple[float, ...],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std shaped `[C, 1, 1]` on `device`, copied there once: a fresh host-to-GPU
    copy in every batch would synchronise the host with the GPU at every step."""
    shape = (len(mean), 1, 1)  # broadcast over [..., C, H, W]
    return torch.tensor(mean, device=device).view(shape), torch.tensor(std, device=device).view(shape)


@dataclass(frozen=True)
class Dataset:
    """A classification data set held as tensors.

    x_*: float32 features `[N, *in_shape]` (kind "vector"/"sequence") or uint8 images `[N, C, H, W]`
    (kind "image"; `prepare` turns a batch into normalised floats). y_*: int64 labels `[N]`.
    `x_val`/`y_val` are an optional validation split carved from training data.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    kind: str = "vector"
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    mean: tuple[float, ...] | None = None  # per-channel, for images (0–1 scale)
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        move = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        if self.x_val is not None:
            move.update(x_val=self.x_val.to(device), y_val=self.y_val.to(device))
        return replace(self, **move)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as the network's float input: images are scaled to [0, 1] and normalised."""
        if self.kind != "image":
            return x
        x = x.float().div_(255.0)
        if self.mean is not None:
            mean, std = _channel_stats(tuple(self.mean), tuple(self.std), x.device)
            x = (x - mean) / std
        return x

    def digest(self) -> str:
        """SHA-256 of every split's examples and labels (dtype, shape, bytes): the data's identity, which a
        run folder checks, since a path names a data set but does not pin what it holds."""
        digest = hashlib.sha256()
        for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            tensor = getattr(self, key)
            if tensor is None:
                digest.update(f"{key}|none|".encode())
                continue
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def with_validation(self, fraction: float, seed: int) -> Dataset:
        """Carve a seeded, class-agnostic validation split off the training data."""
        if not 0.0 < fraction < 1.0:
            raise ValueError("validation fraction must be in (0, 1)")
        n = self.x_train.shape[0]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(self.x_train.device)
        n_val = max(1, int(round(n * fraction)))
        val, train = order[:n_val], order[n_val:]
        return replace(self, x_train=self.x_train[train], y_train=self.y_train[train],
                       x_val=self.x_train[val], y_val=self.y_train[val])

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> Dataset:
        """A seeded random subset (for quick runs and tests)."""
        g = torch.Generator().manual_seed(seed)
        out = self
        if train is not None and train < self.x_train.shape[0]:
            idx = torch.randperm(self.x_train.shape[0], generator=g)[:train].to(self.x_train.device)
            out = replace(out, x_train=self.x_train[idx], y_train=self.y_train[idx])
        if test is not None and test < self.x_test.shape[0]:
            idx = torch.randperm(self.x_test.shape[0], generator=g)[:test].to(self.x_test.device)
            out = replace(out, x_test=self.x_test[idx], y_test=self.y_test[idx])
        return out
