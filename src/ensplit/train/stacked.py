"""Several independent runs of one ensemble method, trained as one model (torch.func's stacked weights + vmap).

A sharing method's ladder rung trains the same architecture from k seeds. On a CPU at small sizes a training
step costs mostly per-operation overhead, so k runs one after another cost k times one run. Stacking the k
models' weights (`torch.func.stack_module_state`) and vmapping one functional forward over them runs all k
with the operations of one. Every seed's weights, data order and gradient are those of its own run: the
optimiser updates element-wise and the loss is a sum over members (`ensplit.train.train`), so the stack trains
each seed exactly as it would train alone, up to floating-point rounding (tested against the plain loop).

Limits (`stackable`): models without buffers (no batch norm running statistics, which vmap cannot update in
place) and data without augmentation (whose random draws are made per batch row, not per run).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ensplit.ensembles.methods import MethodModel
from ensplit.train.loop import epoch_indices


def stackable(model: nn.Module) -> bool:
    """Whether `model` can be stacked: it has parameters and no buffers."""
    return next(model.buffers(), None) is None and next(model.parameters(), None) is not None


class StackedMethod(nn.Module):
    """k independently seeded `MethodModel`s of one architecture as one module.

    Training input `[k·M, B, ...]` (each run's M member rows; a run with one shared batch order repeats it on
    its M rows and reads the first); eval input `[B, ...]` for every run. Output `[k·M, B, C]`: run after run,
    members within each run, as k separate models' outputs concatenated.
    """

    def __init__(self, models: Sequence[MethodModel]) -> None:
        super().__init__()
        first = models[0]
        self.runs, self.members, self.batching = len(models), first.members, first.batching
        self._samplers = [m.index_sampler for m in models]
        params, _ = stack_module_state(list(models))
        self._names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[name]) for name in self._names])
        base = copy.deepcopy(first).to("meta")
        self._exempt = set(first.no_weight_decay())
        self._call: Callable = vmap(lambda p, x: functional_call(base, p, (x,)), in_dims=(0, 0))
        self._call_shared_input: Callable = vmap(lambda p, x: functional_call(base, p, (x,)), in_dims=(0, None))

    def _params(self) -> dict[str, torch.Tensor]:
        return dict(zip(self._names, self.stacked, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self._params()
        if not self.training:
            out = self._call_shared_input(params, x)
        else:
            rows = x.view(self.runs, self.members, *x.shape[1:])
            out = self._call(params, rows if self.batching == "independent" else rows[:, 0])
        return out.reshape(self.runs * out.shape[1], *out.shape[2:])

    def no_weight_decay(self) -> set[str]:
        """The stacked parameters whose base parameter skips weight decay (see MethodModel.no_weight_decay)."""
        return {f"stacked.{i}" for i, name in enumerate(self._names) if name in self._exempt}

    def index_sampler(self, n: int, batch_size: int, generators: Sequence[torch.Generator]) -> list[torch.Tensor]:
        """Each run's batches from its own M generators, as its own training would draw them: `[k·M, B']`."""
        per_run = []
        for j, sampler in enumerate(self._samplers):
            own = generators[j * self.members : (j + 1) * self.members]
            batches = sampler(n, batch_size, own) if sampler is not None else _default_batches(
                n, batch_size, own, self.batching)
            per_run.append([b.expand(self.members, -1) if b.shape[0] == 1 else b for b in batches])
        return [torch.cat(step) for step in zip(*per_run, strict=True)]

    def unstack(self, index: int, into: MethodModel) -> MethodModel:
        """Copy run `index`'s weights into `into` (a model of the same architecture)."""
        own = dict(zip(self._names, self.stacked, strict=True))
        with torch.no_grad():
            for name, parameter in into.named_parameters():  # tied weights (mixture banks) appear once
                parameter.copy_(own[name][index])
        return into


def _default_batches(n: int, batch_size: int, generators: Sequence[torch.Generator],
                     batching: str) -> list[torch.Tensor]:
    return epoch_indices(n, batch_size, generators, batching)
