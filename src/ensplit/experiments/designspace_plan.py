"""`designspace`'s plan: the records of the grid, refusals made before anything trains, and two jobs per
distinct network configuration (member width, member depth, members K).

For every single network S(w, d) of the grid and every ensemble size K, the budget planner gives the
width-equivalent ensemble (K members of width w, depth d') and the depth-equivalent one (K members of width w',
depth d). Each configuration is one "designspace" `TrainJob` (K member-batched networks with member seeds
seed, seed + 1, ..., exactly what designspace trained before it stored its runs) and one "designspace-cost" job
that measures its cost on fresh copies (`designspace_jobs`); a configuration shared by several records is
trained and measured once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ensplit.analysis.design_space import DEPTH_EQUIVALENT, SINGLE, WIDTH_EQUIVALENT
from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.experiments.designspace_config import DesignSpaceConfig
from ensplit.models import get_family
from ensplit.models.scaling import equivalents
from ensplit.runs.plan import TrainJob
from ensplit.runs.resources import check_training

KIND = "designspace"
COST_KIND = "designspace-cost"
# planner(family, width, depth, members, in_shape, num_classes) -> (weq depth or None, deq width or None)
Planner = Callable[[str, int, int, int, tuple[int, ...], int], tuple[int | None, int | None]]


def plan_equivalents(family: str, width: int, depth: int, members: int, in_shape: tuple[int, ...],
                     num_classes: int, **options: Any) -> tuple[int | None, int | None]:
    """The budget planner's width-equivalent depth d' and depth-equivalent width w' (None: does not fit)."""
    plan = equivalents(family, depth=depth, width=width, members=members, in_shape=in_shape,
                       num_classes=num_classes, **options)
    return plan.width_equivalent.depth, plan.depth_equivalent.width


@dataclass(frozen=True)
class PlannedRecord:
    """One record: `design_class` at the grid point (budget_width, budget_depth, K = group_members), made of
    `members` networks of `width` and `depth` (members = 1 for the single network)."""

    budget_width: int
    budget_depth: int
    group_members: int
    design_class: str
    width: int
    depth: int

    @property
    def members(self) -> int:
        return 1 if self.design_class == SINGLE else self.group_members

    @property
    def network(self) -> tuple[int, int, int]:
        """The configuration it is trained and measured as: (member width, member depth, members)."""
        return self.width, self.depth, self.members


def plan_records(config: DesignSpaceConfig, dataset: Dataset, planner: Planner) -> tuple[list[PlannedRecord],
                                                                                            list[str]]:
    """Every formable record in grid order (single, weq, deq per (w, d, K)) and a line per one that is not."""
    family = get_family(config.recipe.family)
    grid = [(w, d) for d in config.depths for w in config.widths]
    for _, d in grid:
        if not family.valid_depth(d):
            raise EnsplitError(f"invalid depth {d} for family {family.name!r}: valid depths are "
                               f"{family.depth_rule}")
    records: list[PlannedRecord] = []
    unformable: list[str] = []
    for w, d in grid:
        for k in config.members:
            weq_depth, deq_width = planner(family.name, w, d, k, dataset.in_shape, dataset.num_classes)
            records.append(PlannedRecord(w, d, k, SINGLE, w, d))
            for name, member_w, member_d in ((WIDTH_EQUIVALENT, w, weq_depth), (DEPTH_EQUIVALENT, deq_width, d)):
                if member_w is None or member_d is None:
                    unformable.append(f"{name} of K={k} for width {w}, depth {d}: no member fits the budget")
                else:
                    records.append(PlannedRecord(w, d, k, name, member_w, member_d))
    require_an_ensemble(config, records)
    return records, unformable


def require_an_ensemble(config: DesignSpaceConfig, records: Sequence[PlannedRecord]) -> None:
    """Refuse, before any training, a grid where no ensemble of any K fits any single network's budget: it
    would train only single networks and have nothing to compare them with."""
    if any(r.design_class != SINGLE for r in records):
        return
    raise EnsplitError(f"members = {list(config.members)}: no width- or depth-equivalent ensemble fits the "
                       f"budget of any single network (widths {list(config.widths)}, depths {list(config.depths)}): "
                       "lower --members or raise --widths or --depths")


def plan_networks(config: DesignSpaceConfig, records: Sequence[PlannedRecord],
                  dataset: Dataset) -> list[tuple[int, int, int]]:
    """The distinct configurations, smallest ensembles and networks first; refused up front when one cannot fit
    the device's memory."""
    recipe = config.recipe
    networks = sorted({r.network for r in records}, key=lambda t: (t[2], recipe.params(t[0], dataset, t[1])))
    for mw, md, k in networks:  # refuse a grid that cannot fit before anything is allocated
        check_training(k * recipe.params(mw, dataset, md), recipe.train.optimizer, dataset.x_train.device,
                       f"training {k} member(s) of width {mw}, depth {md}", "lower --widths or --depths")
    return networks


def network_jobs(config: DesignSpaceConfig, network: tuple[int, int, int]) -> tuple[TrainJob, TrainJob]:
    """The training job and the cost job of one configuration (member seeds seed, seed + 1, ...)."""
    recipe = config.recipe
    width, depth, members = network
    seeds = tuple(range(recipe.seed, recipe.seed + members))
    options = tuple(sorted(recipe.family_options.items()))
    train = tuple(sorted(dataclasses.asdict(recipe.train).items()))
    job = TrainJob(KIND, recipe.family, width, depth, options, recipe.data, train, seeds, 0)
    return job, dataclasses.replace(job, kind=COST_KIND, method_options=config.cost_settings())
