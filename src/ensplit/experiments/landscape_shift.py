"""Weight averaging against ensembles under dataset shift (Fort et al. 2019; issue 17).

The independent solutions and the SWA solutions predict every corrupted test set that `ensplit compare`
uses (`corrupted_test_sets`: noise and shift for MNIST-1D, images get noise, blur, JPEG and contrast,
each at severities 1–5); `shift_curves` turns them into accuracy, NLL and CNLL against ensemble size,
per set and averaged per corruption, per severity and over all sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ensplit.analysis.landscape import shift_curves
from ensplit.data.corruptions import corrupted_test_sets
from ensplit.data.dataset import Dataset
from ensplit.ensembles.states import State
from ensplit.train.evaluation import evaluate_states


def corrupted_log_probs(template: nn.Module, pools: Mapping[str, Sequence[State]], dataset: Dataset,
                        seed: int = 0) -> dict[tuple[str, int], dict[str, torch.Tensor]]:
    """(corruption, severity) -> pool name -> member log-probabilities `[K, N, C]` on that corrupted test set
    (each state with its own batch-norm statistics, as on the clean test set)."""
    return {(name, severity): {pool: evaluate_states(template, states, x, dataset) for pool, states in pools.items()}
            for name, severity, x in corrupted_test_sets(dataset, seed=seed)}


def shift_analysis(template: nn.Module, pools: Mapping[str, Sequence[State]], dataset: Dataset,
                   seed: int = 0) -> dict[str, Any]:
    """The `shift` summary of `ensplit landscape` (see `shift_curves`; `seed` picks the ensembles' member
    subsets); empty when the data has no corruptions."""
    per_set = corrupted_log_probs(template, pools, dataset)  # corruption seed 0: compare's test sets
    return shift_curves(per_set, dataset.y_test, seed=seed)
