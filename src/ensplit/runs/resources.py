"""Resource guards: refuse a plan that cannot fit before anything is allocated, and say by how much.

The estimates are lower bounds from exact parameter counts (no model is built): float32 weights, their
gradients and the optimizer's state (one momentum buffer for SGD, two moments for Adam/AdamW) for every
network trained at once, plus the prediction arrays the analysis holds in float64. Activations come on
top, so a plan refused here could never have run; one that passes may still need more.
"""

from __future__ import annotations

import psutil
import torch

from ensplit.errors import EnsplitError

FLOAT32 = 4
FLOAT64 = 8


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"


def available_memory(device: torch.device) -> tuple[int, str]:
    """Bytes the device can give now, and where they are (free GPU memory, or available RAM)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free on {device}"
    return int(psutil.virtual_memory().available), "of available RAM"


def training_bytes(params: int, optimizer: str = "sgd") -> int:
    """Weights, gradients and optimizer state of `params` float32 parameters (a lower bound)."""
    states = 2 if optimizer in ("adam", "adamw") else 1
    return FLOAT32 * params * (2 + states)


def require(needed: int, device: torch.device, what: str, hint: str = "") -> None:
    """Refuse (one line, exit 2) when `needed` bytes exceed what the device has."""
    have, where = available_memory(device)
    if needed > have:
        raise EnsplitError(f"{what} needs at least {format_bytes(needed)}, more than the {format_bytes(have)} {where} "
                           f"({needed / max(have, 1):,.1f}×){'; ' + hint if hint else ''}")


def check_training(params: int, optimizer: str, device: torch.device, what: str, hint: str = "") -> None:
    """One model of `params` parameters (all members) must fit while it trains."""
    require(training_bytes(params, optimizer), device, f"{what} ({params:,} parameters)", hint)
