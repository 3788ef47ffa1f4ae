"""`ensplit designspace`: single network vs width-/depth-equivalent ensembles over a grid (Wasay & Idreos's EST)."""

from __future__ import annotations

from typing import Any

from ensplit.commands._options import experiment_command
from ensplit.experiments.designspace import DesignSpaceConfig, run_designspace

NAME = "designspace"
HELP = ("train single networks and their width- and depth-equivalent ensembles over a (width, depth) grid; "
        "map which wins per (params, epochs) and the Ensemble Switchover Threshold")


add_arguments, settings, run = experiment_command(DesignSpaceConfig, "designspace", run_designspace, "designspace-out")


def render(result: dict[str, Any]) -> str:
    lines = [f"{'class':17} {'w':>5} {'d':>3} {'K':>3} {'params':>9} {'acc':>7} {'s/ep':>8} {'s/ep bat':>8} "
             f"{'t→single':>8} {'ms b=1':>8} {'MiB':>7}"]
    for r in result["records"]:
        def fmt(value: Any, spec: str) -> str:  # `spec` holds the column width: "-" is right-aligned to it
            width = int(spec.split(".")[0])
            return f"{'-':>{width}}" if value is None else format(value, spec)

        mem = None if r["peak_memory_bytes"] is None else r["peak_memory_bytes"] / 2**20
        lines.append(f"{r['class']:17} {r['width']:>5} {r['depth']:>3} {r['members']:>3} {r['params']:>9} "
                     f"{r['accuracy_by_epoch'][-1]:>7.4f} {fmt(r['seconds_per_epoch'], '8.3g')} "
                     f"{fmt(r['seconds_per_epoch_batched'], '8.3g')} {fmt(r['time_to_single_accuracy'], '8.3g')} "
                     f"{fmt(r['inference_ms_batch1'], '8.3g')} {fmt(mem, '7.2f')}")
    for k, t in result["est"].items():
        count = f"{t['epochs']} epoch{'' if t['epochs'] == 1 else 's'}"
        where = f"{t['params']:,} params, {count}" if t["params"] is not None else "not reached"
        lines.append(f"EST for K={k}: {where}")
    if result["report"]:
        lines.append(f"Report: {result['report']}")
    return "\n".join(lines)
