"""The training device from its name: `auto` (CUDA when available, else the CPU), `cpu`, `cuda`, `cuda:N`."""

from __future__ import annotations

import torch

from ensplit.errors import EnsplitError
from ensplit.settings.options import DEVICE_PATTERN, check_device_name  # declared once, with the device option

__all__ = ["DEVICE_PATTERN", "check_device_name", "resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for `name`; asking for CUDA where there is none is a one-line error."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EnsplitError(f"device = {name!r}: CUDA is not available on this machine (use auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise EnsplitError(f"device = {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
