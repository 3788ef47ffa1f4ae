"""`ensplit compare`: train ensemble methods side by side at a width or a parameter budget, one table."""

from __future__ import annotations

from typing import Any

from ensplit.commands._options import experiment_command
from ensplit.experiments.compare import CompareConfig, run_compare

NAME = "compare"
HELP = "train deep, BatchEnsemble, MIMO, MixtureEnsemble, grouped and multihead ensembles; compare them"


add_arguments, settings, run = experiment_command(CompareConfig, "compare", run_compare, None,
                                                  writes="OUT/report.html and OUT/results.json")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _seconds(value: float | None) -> str:
    """Seconds with three significant digits (a tiny model's 0.0021 s is not "0.00")."""
    return "-" if value is None else f"{value:.3g}"


COLUMNS = [("method", "method"), ("width", "width"), ("members", "M"), ("params", "params"),
           ("flops_per_example", "FLOPs/ex"), ("seconds_per_epoch", "s/epoch"), ("accuracy", "acc"),
           ("member_accuracy", "m-acc"), ("nll", "NLL"), ("cnll", "CNLL"), ("ece", "ECE%"), ("brier", "Brier"),
           ("diversity", "divers"), ("corrupted_accuracy", "c-acc"), ("corrupted_nll", "c-NLL")]
OLD_KEYS = {"flops_per_example": "flops", "seconds_per_epoch": "train_seconds_per_epoch"}  # before docs/glossary.md


def _cell(row: dict[str, Any], key: str) -> str:
    value = row[key] if key in row else row.get(OLD_KEYS.get(key, key))
    return _seconds(value) if key == "seconds_per_epoch" else _fmt(value, 2 if key == "ece" else 4)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (rows of an older release, with its key names, too)."""
    cells = [[h for _, h in COLUMNS]] + [[_cell(r, k) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])


def render(result: dict[str, Any]) -> str:
    recipe = result["recipe"]
    budget = result.get("budget", result.get("param_budget"))  # results of an older release say param_budget
    at = f"{budget:,} parameters" if budget else f"width {result['width']}"
    lines = [f"Methods at {at}, {result['members']} members ({recipe['family']} on {recipe['dataset']}, "
             f"{recipe['train']['epochs']} epoch{'' if recipe['train']['epochs'] == 1 else 's'}, "
             f"{recipe['train']['optimizer']} lr {recipe['train']['lr']}):",
             table(result["methods"])]
    best = min((r for r in result["methods"] if r["cnll"] is not None), key=lambda r: r["cnll"], default=None)
    if best is not None:
        lines.append(f"Lowest CNLL: {best['method']} ({best['cnll']:.4f}).")
    if result["report"]:
        lines.append(f"Report: {result['report']}")
    return "\n".join(lines)
