"""Each candidate's measured costs, kept in the recommend folder so a rerun that trains nothing prints the stored
answer without measuring again (on CIFAR-10 the measuring was most of such a rerun: 54 of 77 s).

The costs (inference FLOPs per example, training seconds per epoch, inference ms per example) are keyed by the
candidate and by what a timing depends on beyond the folder's settings: the device, the torch threads, the
machine and the torch version. Other conditions measure anew and keep both. A record that does not parse, or
holds anything but three numbers for a key, is ignored, never trusted.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path

import torch

from ensplit.experiments.recommend_plan import Candidate, RecommendConfig
from ensplit.runs.folder import index_meta
from ensplit.store import ResultStore

COSTS_KEY = "candidate_costs"  # the index metadata holding them, by `cost_key`

Measured = tuple[Candidate, int, float, float]  # candidate, FLOPs per example, s per epoch, inference ms


def cost_key(candidate: Candidate, config: RecommendConfig) -> str:
    """The candidate, and the device, threads, machine and torch its costs were measured with."""
    return json.dumps({"candidate": [candidate.method, candidate.members, candidate.width, candidate.params,
                                     repr(candidate.options)],
                       "device": str(config.recipe.torch_device()), "threads": torch.get_num_threads(),
                       "host": platform.node(), "torch": torch.__version__}, sort_keys=True)


def stored_costs(out: Path) -> dict[str, list[float]]:
    """The costs an earlier run measured in `out`, by key (read-only; {} when none or unreadable)."""
    try:
        stored = json.loads(index_meta(Path(out), COSTS_KEY) or "{}")
    except ValueError:
        return {}
    if not isinstance(stored, dict):
        return {}
    return {k: v for k, v in stored.items() if isinstance(v, list) and len(v) == 3
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)}


def keep_costs(store: ResultStore, config: RecommendConfig, measured: Sequence[Measured],
               known: dict[str, list[float]]) -> None:
    """Store `measured` beside what the folder already `known` (no write when nothing is new)."""
    new = {cost_key(c, config): [flops, seconds, inference] for c, flops, seconds, inference in measured}
    if new.keys() <= known.keys():
        return
    store.set_meta(COSTS_KEY, json.dumps({**known, **new}, sort_keys=True))
