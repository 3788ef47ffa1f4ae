"""`deep`: independent members, trained together as one member-batched model.

Each member is first built as a plain network under its own seed, then the members are stacked into
member-batched layers. So member i starts exactly where a separately built network with seed i starts,
and nothing about member i depends on which members share its batch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ensplit.ensembles.convert import modules_with_own_parameters, replace_layers
from ensplit.layers import member, plain
from ensplit.layers.conv_strategy import EXECUTIONS, choose_execution
from ensplit.models import create, get_family

_MEMBER_LAYERS = (member.MemberLinear, member.MemberConv, member.MemberNorm, member.MemberDropout)


def build_member(family: str, seed: int, **kwargs: Any) -> nn.Module:
    """A plain network of `family` initialised from `seed`; its dropout layers get their own generator."""
    torch.manual_seed(seed)
    model = create(family, **kwargs)
    for index, module in enumerate(m for m in model.modules() if isinstance(m, plain.Dropout)):
        module.generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return model


def stack_members(models: Sequence[nn.Module], conv_strategy: str = "auto") -> nn.Module:
    """Stack plain networks of one architecture into one member-batched network (a converter)."""
    stacked = copy.deepcopy(models[0])

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        group = [m.get_submodule(name) for m in models]
        if isinstance(module, nn.Linear):
            return member.MemberLinear.from_modules(group)
        if isinstance(module, plain.Conv):
            return member.MemberConv.from_modules(group, strategy=conv_strategy)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return member.MemberNorm.from_modules(group)
        if isinstance(module, plain.Dropout):
            return member.MemberDropout.from_modules(group)
        return None

    replace_layers(stacked, swap)
    leftover = modules_with_own_parameters(stacked, _MEMBER_LAYERS)
    if leftover:
        raise TypeError(f"cannot member-batch layers {leftover}: use ensplit's layer set")
    return stacked


class MemberBatchedEnsemble(nn.Module):
    """Wraps a member-batched network: input `[batch, ...]` (shared) or `[members, batch, ...]`,
    output logits `[members, batch, classes]`.

    execution (for a stack of plain members, `template` being one of them): "batched" runs the member-batched
    layers (grouped convolutions, packed norms); "loop" runs the members one by one through `template`, each
    with its own views of the stacked parameters and running statistics (dense per-member convolutions); "auto"
    picks per device and mode (training or eval) from the measured rule `conv_strategy.choose_execution`.
    Both compute the same function of the same parameters and state dict; only their speed differs. Without a
    template (sharing methods), or with dropout (whose per-member generators the template does not carry), it is
    always "batched".
    """

    def __init__(self, network: nn.Module, members: int, input_dims: int, template: nn.Module | None = None,
                 execution: str = "auto") -> None:
        super().__init__()
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
        self.network, self.members, self.input_dims = network, members, input_dims
        loopable = template is not None and not any(isinstance(m, member.MemberDropout) and m.p > 0
                                                    for m in network.modules())
        if execution == "loop" and not loopable:
            raise ValueError("execution 'loop' needs the plain template of a stack of members without dropout")
        self.execution = execution
        self._template = (template,) if loopable else ()  # a tuple: not a submodule, not in the state dict
        # what the member loop feeds the template: every layer with per-member tensors, and the batch norms
        self._layers = [(name, m) for name, m in network.named_modules()
                        if isinstance(m, _MEMBER_LAYERS) and not isinstance(m, member.MemberDropout)]
        self._norms = [(name, m) for name, m in self._layers if isinstance(m, member.MemberNorm)]
        self._auto_choices: dict[tuple[str, bool], str] = {}  # (device type, training) -> choice

    def resolved_execution(self, x: torch.Tensor) -> str:
        """"batched" or "loop" for inputs on `x`'s device, in the current (training or eval) mode."""
        if not self._template:
            return "batched"
        if self.execution != "auto":
            return self.execution
        key = (x.device.type, self.training)
        choice = self._auto_choices.get(key)
        if choice is None:
            first = next(m for _, m in self._layers if isinstance(m, (member.MemberConv, member.MemberLinear)))
            dim = first.dim if isinstance(first, member.MemberConv) else 0
            choice = choose_execution(x.device.type, dim, self.members, first.out_channels if dim else 0,
                                      self.training)
            self._auto_choices[key] = choice
        return choice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = x.dim() == self.input_dims + 1
        if self.resolved_execution(x) == "loop":
            return self._member_loop(x, shared)
        if shared:
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        return self.network(x)

    def _member_loop(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """The members one by one through the plain template, each with its views of the stacked tensors."""
        (template,) = self._template
        template.train(self.training)
        counter = torch.zeros((), dtype=torch.long, device=x.device)  # scratch: the shared counts step once below
        tensors: list[dict[str, torch.Tensor]] = [
            {f"{name}.num_batches_tracked": counter for name, _ in self._norms} for _ in range(self.members)]
        for name, module in self._layers:
            for key, views in member.member_views(module).items():
                for i, view in enumerate(views):
                    tensors[i][f"{name}.{key}"] = view
        channels_last = any(isinstance(m, member.MemberConv) and member.is_channels_last(m.weight)
                            for _, m in self._layers)
        outputs = []
        for i in range(self.members):
            xi = x if shared else x[i]
            if channels_last and xi.dim() == 4:
                xi = xi.contiguous(memory_format=torch.channels_last)
            outputs.append(functional_call(template, tensors[i], (xi,)))
        if self.training:
            for _, norm in self._norms:
                norm.num_batches_tracked.add_(1)
        return torch.stack(outputs)

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """The state dict member `index` would have as a plain network (for checkpoints and analyses)."""
        state: dict[str, torch.Tensor] = {}
        for name, module in self.network.named_modules():
            if isinstance(module, _MEMBER_LAYERS):
                for key, value in member.member_slice(module, index).items():
                    state[f"{name}.{key}"] = value.detach().clone()
        return state


def ensemble_of(plains: Sequence[nn.Module], input_dims: int, conv_strategy: str = "auto",
                execution: str = "auto") -> MemberBatchedEnsemble:
    """Plain networks of one architecture (trained or fresh) as one member-batched ensemble whose inputs
    have `input_dims` dimensions per example (`execution`: see MemberBatchedEnsemble)."""
    # the loop swaps every parameter and buffer for a member's view, so the template holds none of its own
    template = copy.deepcopy(plains[0]).to("meta").requires_grad_(False)
    return MemberBatchedEnsemble(stack_members(plains, conv_strategy), len(plains), input_dims, template, execution)


def deep_ensemble(family: str, seeds: Sequence[int], conv_strategy: str = "auto", execution: str = "auto",
                  **kwargs: Any) -> MemberBatchedEnsemble:
    """Independent members of `family` (one per seed), member-batched."""
    plains = [build_member(family, seed, **kwargs) for seed in seeds]
    in_shape = kwargs.get("in_shape") or get_family(family).default_in_shape
    return ensemble_of(plains, len(in_shape), conv_strategy, execution)
