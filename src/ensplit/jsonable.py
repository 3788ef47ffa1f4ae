"""Plain JSON from results: dataclasses, numpy and torch values, tuples; non-finite floats become null."""

from __future__ import annotations

import dataclasses
import math
from pathlib import PurePath
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples, paths and dataclasses to plain JSON; NaN and ±inf
    become null (JSON has no such numbers)."""
    if hasattr(value, "to_json") and callable(value.to_json):
        return to_jsonable(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):  # numpy / torch
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
