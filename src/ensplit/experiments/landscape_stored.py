"""The recipe that loaded landscape trajectories were trained with (`ensplit landscape --trajectories`): the
settings that contradict the stored manifest are refused, and the summary records what was really trained."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.models import get_family
from ensplit.recipe import Recipe
from ensplit.settings import field_default
from ensplit.store.trajectories import Trajectories
from ensplit.train.config import TrainConfig

if TYPE_CHECKING:
    from ensplit.experiments.landscape_config import LandscapeConfig


def _plain(value: Any) -> Any:
    """As JSON holds it (tuples become lists), so given and stored values compare equal when they are."""
    return json.loads(json.dumps(value, default=list))


def stored_recipe(config: LandscapeConfig, trajectories: Trajectories, dataset: Dataset,
                  log: Callable[[str], None]) -> Recipe:
    """The recipe loaded trajectories were trained with, for the summary to record: their family, depth,
    family options and training settings, with the data and seed of `config`'s recipe (the analyses use those).

    A setting away from its default that contradicts the manifest (family, width, depth, family options,
    inits) is refused. A setting left at its default cannot be told from one given equal to it, so there the
    stored value wins, with a log line. Data of another input shape or class count is refused."""
    recipe, source = config.recipe, f"the trajectories in {config.trajectories}"
    if tuple(trajectories.in_shape) != tuple(dataset.in_shape) or trajectories.num_classes != dataset.num_classes:
        raise EnsplitError(f"dataset = {recipe.dataset!r}: inputs {tuple(dataset.in_shape)} with "
                           f"{dataset.num_classes} classes, but {source} were trained on inputs "
                           f"{tuple(trajectories.in_shape)} with {trajectories.num_classes} classes")
    family = get_family(trajectories.family)
    stored_depth = family.default_depth if trajectories.depth is None else trajectories.depth
    stored_options = {**family.options, **trajectories.options}
    checks = [("family", recipe.family, field_default(Recipe, "family"), trajectories.family),
              ("width", config.width, field_default(type(config), "width"), trajectories.width),
              ("inits", config.inits, field_default(type(config), "inits"), trajectories.inits),
              ("depth", recipe.depth, None, stored_depth)]
    checks += [(f"family option {key}", value, None, stored_options.get(key)) for key, value in recipe.options.items()]
    for name, given, default, stored in checks:
        if _plain(given) != _plain(default) and _plain(given) != _plain(stored):
            raise EnsplitError(f"{name} = {given!r}: contradicts {source}, trained with {name} = {stored!r}; give "
                               f"{stored!r} or leave it unset")
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    stored_train = {k: tuple(v) if isinstance(v, list) else v for k, v in trajectories.config.items()
                    if k in train_names}
    try:
        train = dataclasses.replace(recipe.train, **stored_train)
        stored = dataclasses.replace(recipe, family=trajectories.family, depth=trajectories.depth,
                                     family_options=dict(trajectories.options), train=train)
    except EnsplitError as error:
        raise EnsplitError(f"trajectories manifest in {config.trajectories} is damaged: {error}") from None
    changed = [n for n in ("family", "depth", "family_options", "train") if getattr(stored, n) != getattr(recipe, n)]
    if changed or (config.width, config.inits) != (trajectories.width, trajectories.inits):
        log(f"the summary records what {source} were trained with ({trajectories.family} width "
            f"{trajectories.width}, {trajectories.inits} inits, their training settings), not the recipe's defaults")
    return stored
