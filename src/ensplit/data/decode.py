"""Decode encoded images (PNG, JPEG, ...) into one uint8 array with Pillow, in parallel threads.

Threads, not processes: nothing is pickled, and Pillow releases the GIL while it decodes pixels. For
tiny images (CIFAR's 32x32 JPEGs, ~85 µs of CPU each) much of the time is Pillow parsing headers in
Python under the GIL, so threads help there less than the core count suggests; the result is cached.
16-bit grayscale is clipped to 8 bits by Pillow's "L" conversion.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ensplit.errors import EnsplitError

# Modes that carry no colour: decoded as one channel ("L"); everything else becomes "RGB" (alpha dropped).
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_CHUNK = 256  # images per task: big enough that pool overhead is noise, small enough to balance cores

# An item is either raw bytes or a file to read (the read happens in the worker thread, too).
EncodedImage = bytes | Path


def _open(item: EncodedImage) -> Image.Image:
    image = Image.open(io.BytesIO(item) if isinstance(item, bytes) else item)
    image.load()  # Image.open is lazy: truncation and corruption surface here
    return image


def _to_array(image: Image.Image, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """`[H, W, C]` uint8 in `mode` ("L" or "RGB"), resized (bilinear) to `size` = (H, W) when given."""
    if image.mode != mode:
        image = image.convert(mode)
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def decode_images(
    items: Sequence[EncodedImage],
    describe: Callable[[int], str],
    size: tuple[int, int] | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Decode `items` into uint8 `[N, C, H, W]` (C = 1 if every image is grayscale, else 3).

    `describe(i)` names item i in errors (a file path, or a Parquet file and row). All images must share
    one size unless `size` = (H, W) is given, in which case each is resized (bilinear) to it.
    """
    if len(items) == 0:
        raise EnsplitError("no images to decode")
    first = _safe_open(items, 0, describe)
    mode = "L" if first.mode in _GRAY_MODES else "RGB"
    resize = size is not None
    size = size or (first.height, first.width)
    out = _decode_all(items, describe, mode, size, resize, workers)
    if out is None:  # the first image was gray but another is not: decode again in colour
        out = _decode_all(items, describe, "RGB", size, resize, workers)
    assert out is not None
    return out


def _safe_open(items: Sequence[EncodedImage], i: int, describe: Callable[[int], str]) -> Image.Image:
    try:
        return _open(items[i])
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        reason = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", reason)  # PIL names its in-memory file
        raise EnsplitError(f"cannot decode image {describe(i)}: {reason}") from None


def _decode_all(
    items: Sequence[EncodedImage],
    describe: Callable[[int], str],
    mode: str,
    size: tuple[int, int],
    resize: bool,
    workers: int | None,
) -> np.ndarray | None:
    """`[N, C, H, W]` uint8, or None when `mode` is "L" but some image has colour."""
    out = np.empty((len(items), 1 if mode == "L" else 3, size[0], size[1]), dtype=np.uint8)

    def chunk(start: int) -> bool:
        for i in range(start, min(start + _CHUNK, len(items))):
            image = _safe_open(items, i, describe)
            if mode == "L" and image.mode not in _GRAY_MODES:
                return False
            if not resize and image.size != (size[1], size[0]):
                raise EnsplitError(
                    f"image {describe(i)} is {image.width}x{image.height} but the first is "
                    f"{size[1]}x{size[0]}; resize them to one size (from Python, load_dataset(..., "
                    "image_size=...) resizes them)"
                )
            out[i] = _to_array(image, mode, size).transpose(2, 0, 1)  # per image: no big transpose copy later
        return True

    starts = range(0, len(items), _CHUNK)
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(starts) == 1:
        ok = all([chunk(s) for s in starts])
    else:
        with ThreadPoolExecutor(workers) as pool:
            ok = all(list(pool.map(chunk, starts)))  # list(): every chunk finishes (or raises) first
    return out if ok else None
