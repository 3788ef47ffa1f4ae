"""Corrupted test sets, computed on tensors, each at severities 1–5 (after Hendrycks & Dietterich, 2019).

Images (`[N, C, H, W]`, uint8 0–255 or float 0–1; returned in the same dtype and scale):
- gaussian_noise: x + N(0, σ²), σ ∈ {0.04, 0.06, 0.08, 0.09, 0.10} (CIFAR-10-C values), clipped;
- gaussian_blur: separable Gaussian kernel conv, σ ∈ {0.4, 0.6, 0.7, 0.8, 1.0} px, replicate padding;
- jpeg: JPEG encode/decode at quality {80, 65, 58, 50, 40}. This is the one non-tensor step: each image
  goes through Pillow on the CPU (float input is quantised to uint8 first);
- contrast: (x − m)·c + m with m each image's per-channel mean, c ∈ {0.75, 0.5, 0.4, 0.3, 0.15}.
1-D signals (`[N, L]` or `[N, C, L]` float, e.g. MNIST-1D):
- noise: x + N(0, (s·std(x))²), s ∈ {0.1, 0.2, 0.4, 0.6, 0.8};
- shift: each signal rolled circularly by a uniform integer in [−k, k], k = {2.5, 5, 10, 15, 20} % of L.
Random corruptions are deterministic given `seed` (drawn on the CPU, so the same on every device).
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ensplit.data.dataset import Dataset

SEVERITIES = (1, 2, 3, 4, 5)
_NOISE_SIGMA = (0.04, 0.06, 0.08, 0.09, 0.10)
_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)
_JPEG_QUALITY = (80, 65, 58, 50, 40)
_CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
_SIGNAL_NOISE = (0.1, 0.2, 0.4, 0.6, 0.8)
_SHIFT_FRACTION = (0.025, 0.05, 0.10, 0.15, 0.20)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gaussian_noise(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=_generator(seed)).to(x.device)
    return (x + noise * _NOISE_SIGMA[severity - 1]).clamp_(0.0, 1.0)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian, radius ⌈3σ⌉ (float64 `[2r + 1]`)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _gaussian_blur(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    kernel = gaussian_kernel(_BLUR_SIGMA[severity - 1]).to(x.device, x.dtype)
    r, c = kernel.numel() // 2, x.shape[1]
    out = F.pad(x, (r, r, r, r), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H


def _jpeg_one(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 `[C, H, W]` through a Pillow JPEG round trip."""
    mode = "L" if image.shape[0] == 1 else "RGB"
    pil = Image.fromarray(image[0] if mode == "L" else image.transpose(1, 2, 0), mode=mode)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer).convert(mode), dtype=np.uint8)
    return decoded[None] if mode == "L" else decoded.transpose(2, 0, 1)


def _jpeg(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    if x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg needs 1 or 3 channels, got {x.shape[1]}")
    images = (x * 255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    quality = _JPEG_QUALITY[severity - 1]
    with ThreadPoolExecutor() as pool:  # Pillow releases the GIL while it encodes and decodes
        out = np.stack(list(pool.map(lambda im: _jpeg_one(im, quality), images)))
    return torch.from_numpy(out).to(x.device, x.dtype) / 255.0


def _contrast(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * _CONTRAST[severity - 1] + mean).clamp_(0.0, 1.0)


def _signal_noise(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    scale = x.std() * _SIGNAL_NOISE[severity - 1]
    return x + torch.randn(x.shape, generator=_generator(seed)).to(x.device, x.dtype) * scale


def _signal_shift(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    length = x.shape[-1]
    k = max(1, round(_SHIFT_FRACTION[severity - 1] * length))
    shifts = torch.randint(-k, k + 1, (x.shape[0],), generator=_generator(seed)).to(x.device)
    source = (torch.arange(length, device=x.device) - shifts[:, None]) % length  # out[t] = x[t − s]
    source = source.view(x.shape[0], *([1] * (x.dim() - 2)), length).expand_as(x)
    return torch.gather(x, -1, source)


Corruption = Callable[[torch.Tensor, int, int], torch.Tensor]
IMAGE_CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": _gaussian_noise,
    "gaussian_blur": _gaussian_blur,
    "jpeg": _jpeg,
    "contrast": _contrast,
}
SIGNAL_CORRUPTIONS: dict[str, Corruption] = {"noise": _signal_noise, "shift": _signal_shift}


def corruption_names(kind: str = "image") -> tuple[str, ...]:
    """The corruptions for a data-set kind: "image", or "vector"/"sequence" for 1-D signals."""
    return tuple(IMAGE_CORRUPTIONS if kind == "image" else SIGNAL_CORRUPTIONS)


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`x` corrupted by `name` at `severity` (1–5); same shape, dtype and scale as `x`, deterministic in `seed`."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    if name in IMAGE_CORRUPTIONS:
        if x.dim() != 4:
            raise ValueError(f"image corruption {name!r} needs [N, C, H, W], got shape {tuple(x.shape)}")
        as_uint8 = x.dtype == torch.uint8
        images = x.float() / 255.0 if as_uint8 else x
        out = IMAGE_CORRUPTIONS[name](images, severity, seed)
        return (out * 255.0).round_().clamp_(0, 255).to(torch.uint8) if as_uint8 else out.to(x.dtype)
    if name in SIGNAL_CORRUPTIONS:
        if x.dim() not in (2, 3) or not x.is_floating_point():
            raise ValueError(f"signal corruption {name!r} needs float [N, L] or [N, C, L], got {tuple(x.shape)}")
        return SIGNAL_CORRUPTIONS[name](x, severity, seed)
    known = sorted(IMAGE_CORRUPTIONS) + sorted(SIGNAL_CORRUPTIONS)
    raise ValueError(f"unknown corruption {name!r}; known: {', '.join(known)}")


def corrupted_test_sets(
    dataset: Dataset,
    severities: Iterable[int] = SEVERITIES,
    names: Iterable[str] | None = None,
    seed: int = 0,
) -> Iterator[tuple[str, int, torch.Tensor]]:
    """Yield `(name, severity, x)` for the test split of `dataset`.

    `x` is stored like `dataset.x_test` (uint8 images stay uint8; pass it through `dataset.prepare`).
    Each (name, severity) gets its own seed derived from `seed`, so the sets are independent and stable.
    """
    kind, x = dataset.kind, dataset.x_test
    severities = tuple(severities)
    for name in names if names is not None else corruption_names(kind):
        for severity in severities:
            derived = (seed * 1_000_003 + zlib.crc32(name.encode()) * 7 + severity) % (2**63)
            yield name, severity, corrupt(x, name, severity, seed=derived)
