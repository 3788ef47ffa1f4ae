"""Helpers shared by the image families: input-shape checks and spatial-size arithmetic."""

from __future__ import annotations

from ensplit.errors import EnsplitError

CIFAR_SHAPE = (3, 32, 32)


def image_shape(in_shape: tuple[int, ...], family: str) -> tuple[int, int, int]:
    """Validate an image input shape `(C, H, W)` and return it as ints."""
    if len(in_shape) != 3 or any(int(s) < 1 for s in in_shape):
        raise EnsplitError(f"family {family!r} needs an image in_shape (C, H, W), got {tuple(in_shape)}")
    c, h, w = (int(s) for s in in_shape)
    return c, h, w


def halve(size: int) -> int:
    """Spatial size after a stride-2 3×3 conv with padding 1 (also `x[..., ::2]`): ceil(size / 2)."""
    return (size + 1) // 2
