"""Corruptions: severity is monotone, shapes and dtypes are kept, results are deterministic in the seed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ensplit.data.corruptions import corrupt, corrupted_test_sets, corruption_names, gaussian_kernel
from ensplit.data.dataset import Dataset


def _smooth_images(n: int = 16, channels: int = 3, size: int = 32) -> torch.Tensor:
    """uint8 images with structure at several scales (upsampled noise), like natural images."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, channels, size // 4, size // 4, generator=g)
    fine = torch.rand(n, channels, size, size, generator=g)
    x = 0.8 * F.interpolate(coarse, size=size, mode="bilinear", align_corners=False) + 0.2 * fine
    return (x * 255).round().to(torch.uint8)


def _signals(n: int = 64, length: int = 40) -> torch.Tensor:
    t = torch.linspace(0, 6.28, length)
    phase = torch.rand(n, 1, generator=torch.Generator().manual_seed(0)) * 6.28
    return torch.sin(3 * t + phase) + 0.3 * torch.cos(7 * t)


@pytest.mark.parametrize("name", corruption_names("image"))
@pytest.mark.parametrize("channels", [1, 3])
def test_image_corruption_monotone_shape_dtype_deterministic(name: str, channels: int) -> None:
    x = _smooth_images(channels=channels)
    distances = []
    for severity in range(1, 6):
        out = corrupt(x, name, severity, seed=5)
        assert out.shape == x.shape and out.dtype == torch.uint8
        assert torch.equal(out, corrupt(x, name, severity, seed=5))
        distances.append(float((out.float() - x.float()).abs().mean()))
    assert distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


def test_float_images_stay_float_in_unit_range() -> None:
    x = _smooth_images().double() / 255
    for name in corruption_names("image"):
        out = corrupt(x, name, 3, seed=1)
        assert out.dtype == torch.float64 and out.shape == x.shape
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_noise_depends_on_seed() -> None:
    x = _smooth_images()
    assert not torch.equal(corrupt(x, "gaussian_noise", 3, seed=1), corrupt(x, "gaussian_noise", 3, seed=2))


def test_blur_equals_direct_2d_convolution() -> None:
    """The separable blur equals a dense 2-D Gaussian conv on the replicate-padded image (float64)."""
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    k = gaussian_kernel(1.0)
    r = k.numel() // 2
    dense = (k[:, None] * k[None, :]).expand(3, 1, -1, -1)
    expected = F.conv2d(F.pad(x, (r,) * 4, mode="replicate"), dense, groups=3)
    assert torch.allclose(corrupt(x, "gaussian_blur", 5), expected, atol=1e-12)


@pytest.mark.parametrize("name", corruption_names("vector"))
@pytest.mark.parametrize("shape", [(64, 40), (64, 1, 40)])
def test_signal_corruption_monotone_shape_deterministic(name: str, shape: tuple[int, ...]) -> None:
    x = _signals().reshape(shape)
    distances = []
    for severity in range(1, 6):
        out = corrupt(x, name, severity, seed=3)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.equal(out, corrupt(x, name, severity, seed=3))
        distances.append(float((out - x).abs().mean()))
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


def test_shift_is_a_circular_roll_per_signal() -> None:
    x = _signals(8)
    out = corrupt(x, "shift", 5, seed=0)
    for row, shifted in zip(x, out, strict=True):
        assert any(torch.equal(torch.roll(row, s), shifted) for s in range(-8, 9))


def test_corrupted_test_sets_covers_every_name_and_severity() -> None:
    images = _smooth_images(4)
    data = Dataset("toy", images, torch.zeros(4, dtype=torch.long), images, torch.zeros(4, dtype=torch.long),
                   num_classes=2, kind="image")
    sets = list(corrupted_test_sets(data, severities=(1, 5)))
    assert [(n, s) for n, s, _ in sets] == [(n, s) for n in corruption_names("image") for s in (1, 5)]
    assert all(x.shape == images.shape and x.dtype == torch.uint8 for _, _, x in sets)
    again = list(corrupted_test_sets(data, severities=(1, 5)))
    assert all(torch.equal(a[2], b[2]) for a, b in zip(sets, again, strict=True))
    labels = torch.zeros(64, dtype=torch.long)
    signals = Dataset("sig", _signals(), labels, _signals(), labels, num_classes=2)
    assert [n for n, _, _ in corrupted_test_sets(signals, severities=(2,))] == ["noise", "shift"]


def test_bad_requests() -> None:
    with pytest.raises(ValueError, match="severity"):
        corrupt(_smooth_images(), "contrast", 6)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(_smooth_images(), "fog", 1)
    with pytest.raises(ValueError, match="needs"):
        corrupt(_signals(), "jpeg", 1)
