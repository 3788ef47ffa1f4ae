"""`mixture`: convert any family to a MixtureEnsemble (the MixtureEnsembles paper) at a total-parameter budget.

Weight layers become `MixtureLayer`s that mix templates from their group's bank (or stay one ordinary
layer shared by all members when the plan says fallback: starved groups and, by default, layers whose
shape occurs once); norms become per member. Templates start at
the layer's own init scale and α ~ N(0, 1/c), so every member's θ starts at the family's init variance.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ensplit.ensembles.convert import modules_with_own_parameters, replace_layers
from ensplit.ensembles.inventory import NORM_TYPES, inventory_of, is_weight_layer
from ensplit.ensembles.mixture_plan import MixturePlan, layer_assignment, mixture_plan
from ensplit.layers import member, plain
from ensplit.layers.mixture import FlatBank, MixtureLayer, TemplateBank


def _rms_std(modules: list[nn.Module]) -> float:
    weights = [m.weight.detach().double() for m in modules]
    return float(torch.sqrt(sum((w**2).sum() for w in weights) / sum(w.numel() for w in weights)))


def to_mixture(model: nn.Module, members: int, budget: int, templates_per_layer: int = 4,
               grouping: str = "auto", assignment: str = "round_robin", seed: int = 0,
               plan: MixturePlan | None = None, singletons: str = "plain") -> tuple[nn.Module, MixturePlan, list[str]]:
    """A member-batched MixtureEnsemble copy of plain `model` with `budget` parameters in all.

    singletons: "plain" (the MixtureEnsembles paper, §3.1) or "templates" (Thin variant), see `mixture_plan`.
    Returns the network (input `[M, B, ...]`), its plan, and the qualified names replaced.
    """
    converted = copy.deepcopy(model)
    inv = inventory_of(converted)
    plan = plan or mixture_plan(inv, members, budget, templates_per_layer, grouping, singletons=singletons)
    generator = torch.Generator().manual_seed(seed)
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    modules = dict(converted.named_modules())
    banks: dict[str, nn.Module] = {}
    layer_std: dict[str, float] = {}
    for group in plan.groups:
        if group.templates == 0:
            continue
        group_modules = [modules[name] for name in group.layers]
        std = _rms_std(group_modules)
        for name in group.layers:
            layer_std[name] = _rms_std([modules[name]]) if plan.grouping == "single" else std
        if plan.grouping == "single":
            banks[group.key] = FlatBank(group.templates, std, generator)
        else:
            banks[group.key] = TemplateBank(group.templates, group_modules[0].weight.shape, std, generator)
    group_of = {name: g for g in plan.groups for name in g.layers}

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        if is_weight_layer(module):
            group = group_of[name]
            if group.templates == 0:
                return module  # fallback: one ordinary layer shared by every member
            bank = banks[group.key]
            # a one-value bank has no spread (std would be nan, and so every weight): leave its scale alone
            bank_std = float(bank.bank.detach().std()) if isinstance(bank, FlatBank) and bank.bank.numel() > 1 \
                else 1.0
            scale = layer_std[name] / bank_std if isinstance(bank, FlatBank) else 1.0
            conv = isinstance(module, plain.Conv)
            layer = MixtureLayer(bank, members, module.weight.shape, layer_assignment(plan, inv, name, assignment),
                                 module.bias is not None, module.dim if conv else 0,
                                 module.stride if conv else 1, module.padding if conv else 0,
                                 module.groups if conv else 1, scale / group.per_layer**0.5, generator)
            if module.bias is not None:
                with torch.no_grad():
                    layer.bias.copy_(module.bias.detach().expand(members, -1))
            return layer
        if isinstance(module, NORM_TYPES):
            return member.MemberNorm.from_modules([module] * members)
        return None

    replaced = replace_layers(converted, swap)
    replaced = [name for name in replaced if not is_weight_layer(modules[name]) or group_of[name].templates]
    leftover = modules_with_own_parameters(converted, (MixtureLayer, TemplateBank, FlatBank, member.MemberNorm,
                                                       nn.Linear, plain.Conv))
    if leftover:
        raise TypeError(f"cannot convert layers {leftover} to a MixtureEnsemble: use ensplit's layer set")
    return converted.to(device, dtype), plan, replaced
