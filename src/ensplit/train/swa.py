"""Weight averaging within a mode (SWA, Izmailov et al. 2018).

SWA here averages the checkpoints of one trajectory's tail (constant learning rate, see
`ensplit.train.trajectories`) with `torch.optim.swa_utils.AveragedModel`, then recomputes batch-norm
statistics on the training inputs (what `update_bn` does; ours also handles member-batched norms).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.optim.swa_utils import AveragedModel

from ensplit.data.dataset import Dataset
from ensplit.ensembles.states import State
from ensplit.train.evaluation import load_plain, recompute_bn_statistics


def swa_state(template: nn.Module, states: Sequence[State], dataset: Dataset | None = None) -> State:
    """The equal-weight average of `states` (parameters), with batch-norm statistics recomputed on
    `dataset.x_train` when a dataset is given and the network has batch norm."""
    if not states:
        raise ValueError("SWA needs at least one state to average")
    averaged = AveragedModel(load_plain(template, states[0]))
    for state in states:
        averaged.update_parameters(load_plain(template, state))
    model = averaged.module
    if dataset is not None:
        recompute_bn_statistics(model, dataset.x_train, dataset)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
