"""Device augmentation: the vectorised crop+flip equals a naive per-image loop with the same draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ensplit.data.augment import CropFlipDraws, apply_crop_flip, draw_crop_flip, random_crop_flip


def _naive(x: torch.Tensor, draws: CropFlipDraws, padding: int) -> torch.Tensor:
    """One image at a time: pad, slice the window, maybe mirror."""
    h, w = x.shape[-2:]
    flat = x.reshape(-1, *x.shape[-3:])
    top, left, flip = draws.top.flatten(), draws.left.flatten(), draws.flip.flatten()
    out = []
    for i in range(flat.shape[0]):
        padded = F.pad(flat[i], (padding,) * 4)
        crop = padded[:, int(top[i]) : int(top[i]) + h, int(left[i]) : int(left[i]) + w]
        out.append(crop.flip(-1) if bool(flip[i]) else crop)
    return torch.stack(out).reshape(x.shape)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
@pytest.mark.parametrize("padding", [0, 2, 4])
def test_vectorised_equals_naive_loop(dtype: torch.dtype, padding: int) -> None:
    x = torch.randint(0, 256, (7, 3, 9, 6)).to(dtype)  # non-square, to catch swapped axes
    draws = draw_crop_flip(torch.Generator().manual_seed(0), 7, padding=padding)
    out = apply_crop_flip(x, draws, padding=padding)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, _naive(x, draws, padding))


def test_member_batches_equal_naive_loop_and_use_every_offset() -> None:
    x = torch.rand(3, 50, 2, 8, 8, dtype=torch.float64)
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    draws = draw_crop_flip(gens, 50, padding=4)
    assert draws.top.shape == (3, 50)
    assert torch.equal(apply_crop_flip(x, draws, 4), _naive(x, draws, 4))
    assert set(draws.top.flatten().tolist()) == set(range(9)) and draws.flip.any() and not draws.flip.all()


def test_member_draws_do_not_depend_on_batch_mates() -> None:
    """Member 1 of a 3-member batch is augmented exactly as if it were trained alone with its generator."""
    x = torch.rand(3, 16, 3, 8, 8)
    together = random_crop_flip(x, [torch.Generator().manual_seed(s) for s in (10, 11, 12)])
    alone = random_crop_flip(x[1], torch.Generator().manual_seed(11))
    assert torch.equal(together[1], alone)


def test_no_flip_and_zero_padding_border() -> None:
    x = torch.ones(4, 1, 5, 5)
    draws = draw_crop_flip(torch.Generator().manual_seed(1), 4, padding=2, flip=False)
    assert not draws.flip.any()
    out = apply_crop_flip(x, draws, padding=2)
    # the zero border shows exactly where the window left the image
    rows_in = (5 - (draws.top - 2).abs()).clamp(min=0)
    cols_in = (5 - (draws.left - 2).abs()).clamp(min=0)
    assert torch.equal(out.sum(dim=(1, 2, 3)), (rows_in * cols_in).float())


def test_shape_checks() -> None:
    with pytest.raises(ValueError, match="5-d"):
        random_crop_flip(torch.zeros(2, 3, 4, 4), [torch.Generator()] * 2)
    with pytest.raises(ValueError, match="2 generators for 3 members"):
        random_crop_flip(torch.zeros(3, 2, 3, 4, 4), [torch.Generator()] * 2)
