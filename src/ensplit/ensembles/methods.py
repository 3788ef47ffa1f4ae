"""The method registry: every ensemble method on every family, behind one front door.

`build_method(name, family, members, width, ...)` returns a `MethodModel` whose forward maps input
`[B, ...]` (or `[members, B, ...]`, one batch per member) to logits `[members, B, classes]`;
`method_param_count` gives its exact parameter count in closed form (no weights are allocated), and
`solve_method_width` the widest network of a method within a parameter budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ensplit.ensembles.batchensemble import batchensemble_param_count, to_batchensemble
from ensplit.ensembles.grouped import GroupedEnsemble
from ensplit.ensembles.independent import MemberBatchedEnsemble, build_member, ensemble_of
from ensplit.ensembles.inventory import NORM_TYPES, Inventory, example_input, family_inventory, inventory_of
from ensplit.ensembles.mimo import mimo_index_sampler, mimo_param_count, stem_and_head, to_mimo
from ensplit.ensembles.mixture import to_mixture
from ensplit.ensembles.mixture_plan import mixture_plan
from ensplit.ensembles.multihead import multihead_param_count, split_layers, to_multihead
from ensplit.errors import EnsplitError
from ensplit.layers import member
from ensplit.layers.mixture import MixtureLayer
from ensplit.models import count_params, create, get_family

# weight_decay_norms / weight_decay_alpha: whether the optimiser decays norm parameters / mixture coefficients
# (False puts them in a weight_decay = 0 parameter group, see MethodModel.no_weight_decay). The mixture's
# defaults are the paper's recipe (MixtureEnsembles, appendix A); every other method keeps decaying everything.
METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "single": {"weight_decay_norms": True},
    "deep": {"conv_strategy": "auto", "weight_decay_norms": True},
    "batchensemble": {"fast_init": "random_sign", "split_batch": False, "member_norms": True,
                      "weight_decay_norms": True},
    "mimo": {"input_repetition": 0.5, "batch_repetitions": 4, "weight_decay_norms": True},
    "mixture": {"budget": None, "templates_per_layer": 4, "grouping": "auto", "assignment": "round_robin",
                "singletons": "plain", "weight_decay_alpha": False, "weight_decay_norms": False},
    "grouped": {"aggregation": "collegial", "weight_decay_norms": True},
    "multihead": {"split_at": None, "weight_decay_norms": True},
}
NORM_MODULES = (*NORM_TYPES, member.MemberNorm, nn.LayerNorm, nn.GroupNorm)


class MethodModel(nn.Module):
    """An ensemble method's network plus how to train it.

    members: members in the output (1 for the collegial read-out); batching: "independent" or "shared"
    (see TrainConfig); index_sampler: a custom batch sampler for `ensplit.train.train`, or None;
    decay_norms / decay_alpha: whether weight decay reaches norm parameters / mixture coefficients α.
    """

    def __init__(self, method: str, network: nn.Module, members: int, batching: str,
                 index_sampler: Callable | None = None, info: dict[str, Any] | None = None,
                 decay_norms: bool = True, decay_alpha: bool = True) -> None:
        super().__init__()
        self.method, self.network, self.members, self.batching = method, network, members, batching
        self.index_sampler, self.info = index_sampler, dict(info or {})
        self.decay_norms, self.decay_alpha = decay_norms, decay_alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def no_weight_decay(self) -> set[str]:
        """Qualified names of the parameters weight decay must skip (`make_optimizer` gives them a
        weight_decay = 0 group): norm weights and biases unless decay_norms, mixture α unless decay_alpha."""
        names: set[str] = set()
        for prefix, module in self.named_modules():
            own = [f"{prefix}.{name}" for name, _ in module.named_parameters(recurse=False)]
            if not self.decay_norms and isinstance(module, NORM_MODULES):
                names.update(own)
            if not self.decay_alpha and isinstance(module, MixtureLayer):
                names.add(f"{prefix}.alpha")
        return names


def method_names() -> list[str]:
    return list(METHOD_OPTIONS)


def _options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    if name not in METHOD_OPTIONS:
        raise EnsplitError(f"unknown method {name!r}; known methods: {', '.join(method_names())}")
    unknown = set(options) - set(METHOD_OPTIONS[name])
    if unknown:
        known = ", ".join(sorted(METHOD_OPTIONS[name])) or "none"
        raise EnsplitError(f"unknown option(s) {', '.join(sorted(unknown))} for method {name!r} (known: {known})")
    return {**METHOD_OPTIONS[name], **options}


def _split_sampler(members: int) -> Callable:
    """BatchEnsemble's batch split: one shared order per epoch, each step's batch divided among members."""

    def sampler(n: int, batch_size: int, generators) -> list[torch.Tensor]:
        order = torch.randperm(n, generator=generators[0])
        per = max(1, batch_size // members)
        steps = n // (per * members)
        return [order[s * per * members : (s + 1) * per * members].view(members, per) for s in range(steps)]

    return sampler


def build_method(name: str, family: str, members: int, width: int, depth: int | None = None,
                 in_shape: tuple[int, ...] | None = None, num_classes: int | None = None, seed: int = 0,
                 family_options: dict[str, Any] | None = None, **options: Any) -> MethodModel:
    """Method `name` on `family` with `members` members of `width` (see METHOD_OPTIONS for `options`)."""
    opts = _options(name, options)
    if members < 1:
        raise EnsplitError(f"members must be >= 1, got {members}")
    kw = dict(width=width, depth=depth, in_shape=in_shape, num_classes=num_classes, **(family_options or {}))
    in_shape = tuple(in_shape or get_family(family).default_in_shape)
    dims = len(in_shape)
    decay = {"decay_norms": opts["weight_decay_norms"], "decay_alpha": opts.get("weight_decay_alpha", True)}
    if name in ("single", "deep", "grouped"):
        m = 1 if name == "single" else members
        plains = [build_member(family, seed + i, **kw) for i in range(m)]
        net = ensemble_of(plains, dims, opts.get("conv_strategy", "auto"))
        if name == "grouped":
            grouped = GroupedEnsemble(net, opts["aggregation"])
            return MethodModel(name, grouped, grouped.output_members, "shared", info={"paths": m, **opts}, **decay)
        return MethodModel(name, net, m, "independent", **decay)
    if name == "multihead":
        network, heads = to_multihead([build_member(family, seed + i, **kw) for i in range(members)], in_shape,
                                      opts["split_at"])
        return MethodModel(name, network, members, "shared", info={"per_member_layers": heads}, **decay)
    base = build_member(family, seed, **kw)
    if name == "batchensemble":
        network, _ = to_batchensemble(base, members, opts["fast_init"], seed, opts["member_norms"])
        sampler = _split_sampler(members) if opts["split_batch"] else None
        return MethodModel(name, MemberBatchedEnsemble(network, members, dims), members, "shared", sampler, opts,
                           **decay)
    if name == "mimo":
        torch.manual_seed(seed + 1)  # the widened stem and head
        network, _ = to_mimo(base, members, in_shape)
        sampler = mimo_index_sampler(members, opts["input_repetition"], opts["batch_repetitions"])
        return MethodModel(name, network, members, "independent", sampler, opts, **decay)
    budget = opts["budget"] or count_params(family, **kw)
    network, plan, _ = to_mixture(base, members, int(budget), opts["templates_per_layer"], opts["grouping"],
                                  opts["assignment"], seed, singletons=opts["singletons"])
    info = {**opts, "budget": int(budget), "grouping_used": plan.grouping,
            "templates": {g.key: g.templates for g in plan.groups}, "fallback_layers": list(plan.fallback_layers)}
    return MethodModel(name, MemberBatchedEnsemble(network, members, dims), members, "shared", info=info, **decay)


def _traced(family: str, kw: dict[str, Any], in_shape: tuple[int, ...]) -> tuple[nn.Module, Inventory]:
    """A meta-device model (no memory) for tracing stem, head and split points."""
    with torch.device("meta"):
        model = create(family, **kw)
    return model, inventory_of(model)


def method_param_count(name: str, family: str, members: int, width: int, depth: int | None = None,
                       in_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                       family_options: dict[str, Any] | None = None, **options: Any) -> int:
    """Exact parameter count of `build_method(...)` from closed forms over the family's layers."""
    opts = _options(name, options)
    kw = dict(width=width, depth=depth, in_shape=in_shape, num_classes=num_classes, **(family_options or {}))
    shape = tuple(in_shape or get_family(family).default_in_shape)
    if name == "single":
        return count_params(family, **kw)
    if name in ("deep", "grouped"):
        return members * count_params(family, **kw)
    if name == "batchensemble":
        return batchensemble_param_count(family_inventory(family, **kw), members, opts["member_norms"])
    if name == "mixture":
        budget = opts["budget"] or count_params(family, **kw)
        plan = mixture_plan(family_inventory(family, **kw), members, int(budget), opts["templates_per_layer"],
                            opts["grouping"], singletons=opts["singletons"])
        return plan.total_params
    model, inv = _traced(family, kw, shape)
    with torch.device("meta"):
        if name == "mimo":
            stem, head = stem_and_head(model, shape)
            return mimo_param_count(inv, members, stem, head)
        heads = [layer for layer, _ in split_layers(model, shape, opts["split_at"])]
    return multihead_param_count(inv, members, heads)


def solve_method_width(name: str, budget: int, family: str, members: int, depth: int | None = None,
                       in_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                       family_options: dict[str, Any] | None = None, max_width: int = 1 << 14,
                       **options: Any) -> int:
    """The largest width whose method parameter count is <= `budget` (counts grow with width)."""

    def count(w: int) -> int:
        return method_param_count(name, family, members, w, depth, in_shape, num_classes, family_options,
                                  **options)

    if count(1) > budget:
        raise EnsplitError(f"method {name!r} with {members} members does not fit {budget} parameters at width 1")
    low, high = 1, 2
    while high <= max_width and count(high) <= budget:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) <= budget else (low, mid)
    return low


__all__ = ["METHOD_OPTIONS", "MethodModel", "build_method", "example_input", "method_names",
           "method_param_count", "solve_method_width"]
