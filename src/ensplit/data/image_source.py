"""What every image reader hands back: labels now, pixels later (decoded only for the rows kept)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensplit.data.decode import EncodedImage, decode_images
from ensplit.errors import EnsplitError


@dataclass(frozen=True)
class ImageSplit:
    """One split of an image data set: int64 `labels [N]` and either encoded images or raw pixels.

    Encoded formats (Parquet, image folders) give `encoded` items and `describe(i)` to name item i in
    errors; raw formats (CIFAR binary, IDX) give uint8 `pixels [N, C, H, W]` directly.
    """

    labels: np.ndarray
    encoded: Sequence[EncodedImage] | None = None
    describe: Callable[[int], str] | None = None
    pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, index: np.ndarray) -> ImageSplit:
        """The rows `index` (before decoding, so a subset decodes only what it keeps)."""
        if self.pixels is not None:
            return ImageSplit(self.labels[index], pixels=self.pixels[index])
        assert self.encoded is not None and self.describe is not None
        describe = self.describe
        return ImageSplit(
            self.labels[index],
            encoded=[self.encoded[i] for i in index.tolist()],
            describe=lambda j: describe(int(index[j])),
        )

    def decode(self, size: tuple[int, int] | None = None, workers: int | None = None) -> np.ndarray:
        """uint8 `[N, C, H, W]`; `size` = (H, W) resizes encoded images."""
        if self.pixels is not None:
            if size is not None and tuple(self.pixels.shape[2:]) != size:
                raise EnsplitError(f"image_size {size} applies to encoded images only; these are stored raw")
            return np.array(self.pixels, order="C", copy=True)  # frombuffer views are read-only
        assert self.encoded is not None and self.describe is not None
        return decode_images(self.encoded, self.describe, size=size, workers=workers)


@dataclass(frozen=True)
class ImageSplits:
    """What a reader returns. `test` is None when the files hold one split (a hold-out is then carved)."""

    train: ImageSplit
    test: ImageSplit | None
    class_names: tuple[str, ...] | None


@dataclass(frozen=True)
class FoundImages:
    """A data set recognised on disk, not yet read: `files` (every file `read` will open) key the cache
    by path + size + mtime before anything is read, so a cached load never touches them."""

    format: str
    name: str
    files: list[Path]
    read: Callable[[], ImageSplits]
