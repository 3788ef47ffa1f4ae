"""Standard CIFAR augmentation on the device, in batches: random crop with zero padding, horizontal flip.

Fully vectorised: the batch is padded once and every example's window is gathered with advanced indexing
(no per-image Python loop). Draws come from explicit `torch.Generator`s; for member batches `[M, B, ...]`
each member has its own generator, so a member's augmentations do not depend on its batch-mates and an
ensemble of M members trained together sees the same draws as M members trained alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropFlipDraws:
    """Per-example draws, each shaped like the batch's leading dims (`[B]` or `[M, B]`).

    top, left: the window's corner in the padded image, in [0, 2·padding]; flip: mirror horizontally.
    """

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor


def draw_crop_flip(
    generators: torch.Generator | Sequence[torch.Generator],
    batch: int,
    padding: int = 4,
    flip: bool = True,
    device: torch.device | str | None = None,
) -> CropFlipDraws:
    """Draw crop offsets and flips: `[B]` for one generator, `[M, B]` for a sequence of M generators.

    Each generator draws on its own device (a CUDA generator keeps the draws on the GPU); the result
    moves to `device` when given.
    """
    single = isinstance(generators, torch.Generator)
    gens = [generators] if single else list(generators)

    def draw(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        top = torch.randint(0, 2 * padding + 1, (batch,), generator=g, device=g.device)
        left = torch.randint(0, 2 * padding + 1, (batch,), generator=g, device=g.device)
        mirror = torch.rand(batch, generator=g, device=g.device) < 0.5
        return top, left, mirror if flip else torch.zeros_like(mirror)

    home = gens[0].device
    # [3, M, B] in one tensor, so moving the draws to the GPU is one copy per batch, not 3·M
    packed = torch.stack([torch.stack([t.to(home), s.to(home), f.to(home, torch.int64)])
                          for t, s, f in (draw(g) for g in gens)], dim=1)
    if device is not None:
        packed = _to_device(packed, torch.device(device))
    top, left, mirror = packed[0], packed[1], packed[2].bool()
    if single:
        top, left, mirror = top[0], left[0], mirror[0]
    return CropFlipDraws(top, left, mirror)


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host-to-GPU copies from pinned memory run asynchronously; from pageable memory they synchronise
    the host with the GPU, which the training loop must not do at every step."""
    if x.device.type == "cpu" and device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def apply_crop_flip(x: torch.Tensor, draws: CropFlipDraws, padding: int = 4) -> torch.Tensor:
    """Crop each image of `x` (`[..., C, H, W]`, any dtype) from its zero-padded copy and flip it.

    `draws` fields have shape `x.shape[:-3]`. Returns a new tensor shaped like `x`.
    """
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    flat = x.reshape(-1, c, h, w)
    n = flat.shape[0]
    padded = F.pad(flat, (padding, padding, padding, padding))  # zeros; works for uint8 too
    top = draws.top.reshape(n, 1).to(x.device)
    left = draws.left.reshape(n, 1).to(x.device)
    mirror = draws.flip.reshape(n, 1).to(x.device)
    rows = top + torch.arange(h, device=x.device)  # [n, H]
    cols_fwd = torch.arange(w, device=x.device)
    cols = left + torch.where(mirror, (w - 1) - cols_fwd, cols_fwd)  # [n, W]: a flip reads the window backwards
    out = padded[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    return out.reshape(*lead, c, h, w)


def random_crop_flip(
    x: torch.Tensor,
    generators: torch.Generator | Sequence[torch.Generator],
    padding: int = 4,
    flip: bool = True,
) -> torch.Tensor:
    """Augment a batch `[B, C, H, W]` (one generator) or member batches `[M, B, C, H, W]` (M generators)."""
    single = isinstance(generators, torch.Generator)
    expected = 4 if single else 5
    if x.dim() != expected:
        raise ValueError(f"expected a {expected}-d batch for {'one generator' if single else 'M generators'}, "
                         f"got shape {tuple(x.shape)}")
    if not single and len(generators) != x.shape[0]:
        raise ValueError(f"{len(generators)} generators for {x.shape[0]} members")
    batch = x.shape[-4]
    draws = draw_crop_flip(generators, batch, padding=padding, flip=flip, device=x.device)
    return apply_crop_flip(x, draws, padding=padding)
