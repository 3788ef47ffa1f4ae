"""The MixtureEnsembles budget plan (its paper, §3.1, §5.1; science.md §4): how a total-parameter knob
becomes parameter groups, template banks, per-layer template assignments and fallback layers.

Costs, with M members: a templated layer costs M·c coefficients (α) and M·out biases; a fallback layer is
one ordinary layer shared by all members; each norm costs M·2C; a bank costs templates × template size.

A layer whose shape occurs once is, by the paper's default construction (§3.1), one ordinary layer shared by
all members ("plain"); "templates" gives it a bank of its own like any group, as the paper's Thin
MixtureEnsembles do (appendix A.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ensplit.ensembles.inventory import Inventory, WeightLayer
from ensplit.errors import EnsplitError

GROUPINGS = ("auto", "shape", "single")
ASSIGNMENTS = ("round_robin", "disjoint")
SINGLETONS = ("plain", "templates")


@dataclass(frozen=True)
class GroupPlan:
    """A parameter group: its layers, template count (0: fallback to shared ordinary layers) and the
    number of templates c each layer combines. For the single group, `templates` is the bank's size."""

    key: str
    layers: tuple[str, ...]
    templates: int
    per_layer: int


@dataclass(frozen=True)
class MixturePlan:
    members: int
    budget: int
    grouping: str  # "shape" | "single"
    groups: tuple[GroupPlan, ...]
    total_params: int

    @property
    def fallback_layers(self) -> tuple[str, ...]:
        return tuple(name for g in self.groups if g.templates == 0 for name in g.layers)


def _per_layer(templates: int, layers: int, k: int) -> int:
    """c: at least k templates per layer (when the bank has them), and enough to use every template."""
    return min(templates, max(k, math.ceil(templates / layers)))


def _fixed(inv: Inventory, members: int, templated: list[WeightLayer], fallback: list[WeightLayer]) -> int:
    norms = sum(members * 2 * c for _, c in inv.norms)
    biases = sum(members * layer.out_features for layer in templated if layer.bias)
    return inv.other + norms + biases + sum(layer.numel for layer in fallback)


def _shape_plan(inv: Inventory, members: int, budget: int, k: int, min_templates: int,
                singletons: str = "plain") -> MixturePlan | None:
    groups: dict[str, list[WeightLayer]] = {}
    for layer in inv.layers:
        groups.setdefault(f"{layer.kind}{list(layer.weight_shape)}", []).append(layer)
    size = {key: layers[0].weight_numel for key, layers in groups.items()}
    weight = {key: sum(layer.weight_numel for layer in layers) for key, layers in groups.items()}
    # MixtureEnsembles §3.1: a shape that occurs once is one ordinary layer, never templated (nor revived below)
    plain = {key for key, layers in groups.items() if len(layers) == 1} if singletons == "plain" else set()
    fallback: set[str] = set(plain)

    def total(t: dict[str, int]) -> int:  # groups missing from t are fallback layers
        templated = [x for key in t for x in groups[key]]
        fixed = _fixed(inv, members, templated, [x for key in groups if key not in t for x in groups[key]])
        return fixed + sum(t[key] * size[key] + members * len(groups[key]) * _per_layer(t[key], len(groups[key]), k)
                           for key in t)

    while True:  # proportional shares (MixtureEnsembles: fraction f of the bank per group); starved groups fall back
        sharing = [key for key in groups if key not in fallback]
        if not sharing:
            break
        alpha = sum(members * len(groups[key]) * k for key in sharing)
        avail = budget - total({key: 0 for key in sharing}) - alpha
        share = sum(weight[key] for key in sharing)
        t = {key: math.floor(weight[key] / share * avail / size[key]) for key in sharing}
        low = [key for key in sharing if t[key] < min_templates]
        if not low:
            break
        fallback.add(min(low, key=lambda key: (t[key] * size[key] / weight[key], weight[key])))
    t = {key: max(t[key], min_templates) for key in groups if key not in fallback} if sharing else {}
    while t and total(t) > budget:  # repair the floor estimate of α
        key = max((key for key in t if t[key] > min_templates), key=lambda key: t[key] * size[key] / weight[key],
                  default=None)
        if key is None:
            return None
        t[key] -= 1
    if total(t) > budget:
        return None
    def fill(t: dict[str, int]) -> None:  # what is left, one template at a time, to the group furthest below its share
        while True:
            fits = [key for key in t if total({**t, key: t[key] + 1}) <= budget]
            if not fits:
                return
            key = min(fits, key=lambda key: t[key] * size[key] / weight[key])
            t[key] += 1

    fill(t)
    for key in sorted(fallback - plain, key=lambda key: -weight[key]):  # revive groups the rest can now afford
        if total({**t, key: min_templates}) <= budget:
            t[key] = min_templates
            fill(t)
    plans = tuple(GroupPlan(key, tuple(x.name for x in layers), t.get(key, 0),
                            _per_layer(t[key], len(layers), k) if key in t else 0) for key, layers in groups.items())
    return MixturePlan(members, budget, "shape", plans, total(t))


def _single_plan(inv: Inventory, members: int, budget: int, k: int) -> MixturePlan | None:
    layers = list(inv.layers)
    fixed = _fixed(inv, members, layers, [])
    weights = sum(layer.weight_numel for layer in layers)
    c = k
    for _ in range(64):  # c and the bank size depend on each other; a few rounds settle them
        bank = budget - fixed - members * c * len(layers)
        wanted = max(k, math.ceil(bank / weights))
        if wanted <= c:
            break
        c = wanted
    if bank < 1:
        return None
    group = GroupPlan("single", tuple(x.name for x in layers), bank, c)
    return MixturePlan(members, budget, "single", (group,), fixed + members * c * len(layers) + bank)


def minimum_budget(inv: Inventory, members: int, templates_per_layer: int = 4) -> int:
    """The smallest budget any grouping can meet (a one-parameter flat bank)."""
    return _fixed(inv, members, list(inv.layers), []) + members * templates_per_layer * len(inv.layers) + 1


def mixture_plan(inv: Inventory, members: int, budget: int, templates_per_layer: int = 4,
                 grouping: str = "auto", min_templates: int = 2, singletons: str = "plain") -> MixturePlan:
    """Plan a MixtureEnsemble of `members` at `budget` total parameters (lands within one template).

    grouping: "shape" (groups of equal-shaped layers, starved groups fall back to one shared ordinary
    layer), "single" (one flat bank for every layer) or "auto" (shape, unless it fails or leaves more than
    half of the layer weights as fallback layers: then single, the low-budget regime of MixtureEnsembles §5.1).
    singletons (shape grouping): "plain" (the paper's default: a one-layer group is one ordinary shared
    layer) or "templates" (it gets templates too, as in the paper's Thin variant). Plain singletons count
    as fallback layers for "auto".
    """
    if grouping not in GROUPINGS:
        raise EnsplitError(f"mixture grouping must be one of {', '.join(GROUPINGS)}, got {grouping!r}")
    if singletons not in SINGLETONS:
        raise EnsplitError(f"mixture singletons must be one of {', '.join(SINGLETONS)}, got {singletons!r}")
    if templates_per_layer < 1:
        raise EnsplitError(f"templates per layer must be >= 1, got {templates_per_layer}")
    plan = None
    if grouping in ("auto", "shape"):
        plan = _shape_plan(inv, members, budget, templates_per_layer, min_templates, singletons)
        if grouping == "auto" and plan is not None:
            by_name = {layer.name: layer for layer in inv.layers}
            fallen = sum(by_name[name].weight_numel for name in plan.fallback_layers)
            if fallen > 0.5 * sum(layer.weight_numel for layer in inv.layers):
                plan = None
    if plan is None and grouping in ("auto", "single"):
        plan = _single_plan(inv, members, budget, templates_per_layer)
    if plan is None:
        raise EnsplitError(f"mixture budget {budget} is too small for {members} members with grouping "
                           f"{grouping!r} (the least any grouping needs: {minimum_budget(inv, members)})")
    return plan


def layer_assignment(plan: MixturePlan, inv: Inventory, name: str, assignment: str = "round_robin") -> list[list[int]]:
    """Template ids (shape groups) or bank starts (single group) for layer `name`: one row shared by every
    member ("round_robin"), or one row per member with disjoint templates while the bank has them
    ("disjoint", greedy; then templates are reused)."""
    if assignment not in ASSIGNMENTS:
        raise EnsplitError(f"mixture assignment must be one of {', '.join(ASSIGNMENTS)}, got {assignment!r}")
    group = next(g for g in plan.groups if name in g.layers)
    rows = plan.members if assignment == "disjoint" else 1
    c, r = group.per_layer, group.layers.index(name)
    if plan.grouping == "shape":
        per_member = c * len(group.layers)
        return [[(i * per_member + r * c + l) % group.templates for l in range(c)] for i in range(rows)]
    numel = {layer.name: layer.weight_numel for layer in inv.layers}
    before = sum(c * numel[other] for other in group.layers[:r])
    per_member = c * sum(numel[other] for other in group.layers)
    return [[(i * per_member + before + l * numel[name]) % group.templates for l in range(c)] for i in range(rows)]
