"""The one line that states what a recommendation cost against the brute force it replaces."""

from __future__ import annotations

from typing import Any


def _short(flops: float) -> str:
    """2.4e8 for 240,000,000: two significant digits, no '+' or leading zeros in the exponent."""
    mantissa, exponent = f"{flops:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


TIME_ESTIMATE_ERROR = 1.25  # the brute force's time is estimated within about 25% (README, "What it costs")


def cost_line(cost: dict[str, Any], candidates: int) -> str:
    """The one line the text output and the report state (from `Cost.to_json()`). When the cheap runs cost more
    than training every candidate once (more FLOPs, or more time beyond the estimate's error), it says so."""
    cells = cost.get("brute_force_cells", 1)
    tuned = f" tuned on the same {cells}-cell grid" if cells > 1 else ""
    line = (f"Cost: {_short(cost['training_flops'])} training FLOPs, {cost['ratio']:.2f}x a one-seed brute force "
            f"of the {candidates} candidates{tuned} ({_short(cost['brute_force_flops'])}); {cost['seconds']:.0f} s, "
            f"{cost['jobs']} jobs")
    if cost.get("time_ratio") is not None:  # absent from results made before the time fields
        line += (f"; training {cost['training_seconds']:.0f} s against an estimated "
                 f"{cost['brute_force_seconds']:.0f} s for that brute force ({cost['time_ratio']:.2f}x)")
    dearer = [what for what, ratio, above in (("fewer FLOPs", cost["ratio"], 1.0),
                                             ("less time", cost.get("time_ratio"), TIME_ESTIMATE_ERROR))
              if ratio is not None and ratio > above]
    if dearer:
        line += f"; training every candidate once would have taken {' and '.join(dearer)}"
    if cost["verification_flops"]:
        line += f"; verification {_short(cost['verification_flops'])} FLOPs more"
    return line
