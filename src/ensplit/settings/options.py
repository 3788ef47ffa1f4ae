"""Shared typed options: each bound and choice that more than one setting takes, declared once.

A typed option is an `Annotated` type carrying its constraints (and, where every user means the same thing,
its help text). Configs use them as field types (`workers: Workers = 2`), field groups bundle them
(`ensplit.settings.groups`), and plain functions check their arguments against them with `check_int` and
`check_choice`, so a bound is written in one place and every command refuses the same values.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import Field

from ensplit.errors import EnsplitError

MAX_SEED = 2**31 - 1
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"

# -- seeds, sizes and training values ------------------------------------------------------------------------
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Width = Annotated[int, Field(ge=1, le=1_000_000)]  # a family's width knob (study, compare, designspace, ...)
Epochs = Annotated[int, Field(ge=1, le=100_000)]
LearningRate = Annotated[float, Field(gt=0, le=1e3, allow_inf_nan=False)]
WeightDecay = Annotated[float, Field(ge=0, le=1)]
DropoutRate = Annotated[float, Field(ge=0, lt=1)]
BudgetKnob = Annotated[int, Field(ge=1, le=10**9)]  # the budget planner's widths, depths, classes, members

# -- where the work runs ---------------------------------------------------------------------------------------
Device = Annotated[str, Field(description="auto (CUDA when available), cpu, cuda or cuda:N")]
Threads = Annotated[int, Field(ge=1, le=4096, description="torch CPU threads of this process (1 avoids "
                                                          "oversubscription on a busy machine)")]
ExecutorName = Annotated[Literal["local", "process", "ray"], Field(description="local, process or ray")]
Workers = Annotated[int, Field(ge=1, le=4096, description="process-pool or Ray workers")]
Address = Annotated[str, Field(description="Ray cluster address (default: a local instance)")]
GpusPerJob = Annotated[float, Field(gt=0, le=1, description="fraction of a GPU per Ray task (with a CUDA device)")]

# -- analysis of pools -----------------------------------------------------------------------------------------
Temperature = Annotated[Literal["before", "after"], Field(description="calibrate before or after averaging")]
CnllSplits = Annotated[int, Field(ge=1, le=1000, description="test-time cross-validation splits")]
PredictMaxN = Annotated[int, Field(ge=3, le=1000, description="prediction fits on n ≤ this (at least 3: the power "
                                                              "law in n has three parameters)")]
PredictPool = Annotated[int, Field(ge=3, le=100_000, description="networks the prediction starts from")]
Bootstrap = Annotated[int, Field(ge=0, le=10_000, description="resamples for prediction bands")]
PredictResample = Annotated[Literal["bootstrap", "subsets"], Field(
    description="prediction repeats: bootstrap the small pool, or draw independent subsets of the pool (the "
                "paper's repeats)")]
FitObjective = Annotated[Literal["nll", "log2"], Field(
    description="power-law fit: least squares in NLL units, or Lobacheva et al. eq. 6 (log2 space); RMSE in its "
                "units")]
TemperatureGrid = Annotated[tuple[Annotated[float, Field(gt=0, le=1000)], ...], Field(
    min_length=1, max_length=200, description="temperatures τ of NLL_n(τ) and its power laws")]


def bounds(option: Any) -> dict[str, Any]:
    """The numeric bounds (`ge`, `gt`, `le`, `lt`) a typed option or a field's metadata (a sequence) declares;
    those inside an `X | None` are not looked for."""
    if typing.get_origin(option) is Annotated:
        metadata: Any = typing.get_args(option)[1:]
    else:
        metadata = option if isinstance(option, (list, tuple)) else ()
    found: dict[str, Any] = {}
    for item in metadata:
        for kind in ("ge", "gt", "le", "lt"):
            if getattr(item, kind, None) is not None:
                found[kind] = getattr(item, kind)
        found.update({k: v for k, v in bounds(getattr(item, "metadata", ())).items() if k not in found})
    return found


def _number(value: int) -> str:
    """1e9 for a large power of ten (as the budget planner always wrote its bounds), else the integer."""
    exponent = len(str(value)) - 1
    return f"1e{exponent}" if value >= 10**6 and value == 10**exponent else str(value)


def check_int(name: str, value: Any, option: Any, upper: bool = True) -> int:
    """`value` if it is an integer within `option`'s bounds, else a one-line error naming `name`, the value and
    the range (`cnll_splits = 0: must be an integer in [1, 1000]`). `upper=False` checks the lower bound alone,
    for arguments whose size the data limits (the networks of a pool read from files)."""
    found = bounds(option)
    low = found.get("ge", found["gt"] + 1 if "gt" in found else None)
    high = found.get("le", found["lt"] - 1 if "lt" in found else None) if upper else None
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            allowed = f">= {_number(low)}"
        else:
            allowed = f"in [{_number(low)}, {_number(high)}]" if low is not None else f"<= {_number(high)}"
        raise EnsplitError(f"{name} = {value!r}: must be an integer {allowed}")
    return value


def choices(option: Any) -> tuple[Any, ...]:
    """The values a `Literal` typed option allows."""
    while typing.get_origin(option) is Annotated:
        option = typing.get_args(option)[0]
    return typing.get_args(option)


def check_choice(name: str, value: Any, option: Any) -> Any:
    """`value` if `option` allows it, else one line: `temperature = 'x': must be before or after`."""
    allowed = choices(option)
    if value not in allowed or isinstance(value, bool):
        listed = ", ".join(map(str, allowed[:-1])) + f" or {allowed[-1]}" if len(allowed) > 1 else str(allowed[0])
        raise EnsplitError(f"{name} = {value!r}: must be {listed}")
    return value


def check_device_name(name: Any) -> str:
    """`name` if it is a device name ensplit runs on, else a one-line error (no CUDA needed to check)."""
    if not isinstance(name, str) or not re.fullmatch(DEVICE_PATTERN, name):
        raise EnsplitError(f"device = {name!r}: must be auto, cpu, cuda or cuda:N")
    return name


def check_address(executor: str, address: str | None) -> None:
    """A Ray address only means something to the Ray executor: given with another, it is a mistake."""
    if address is not None and executor != "ray":
        raise EnsplitError(f"address = {address!r}: applies to executor ray only, not {executor} (add --executor ray)")
