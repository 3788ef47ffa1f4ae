"""A run folder's identity, written once: what decides every stored run of an experiment (`identity()`), the
16 hex digits the folder is marked with (`fingerprint()`), and the fields a refused config changed
(`differences()`). `open_folder` uses the three to refuse a folder made by other settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any, ClassVar

from ensplit.runs.plan import identifying_train_options, identity_differences

if TYPE_CHECKING:
    from ensplit.recipe import Recipe


def recipe_identity(recipe: Recipe, experiment: str) -> dict[str, Any]:
    """What decides every stored run of `experiment` made with `recipe`: data, model, base seed and the
    identifying training options; never the device, the threads or the question asked."""
    return {"experiment": experiment, "dataset": recipe.dataset, "num_samples": recipe.num_samples,
            "data_seed": recipe.data_seed, "train_subset": recipe.train_subset, "test_subset": recipe.test_subset,
            "validation_fraction": recipe.validation_fraction, "family": recipe.family, "depth": recipe.depth,
            "family_options": dict(recipe.family_options), "seed": recipe.seed,
            "train": identifying_train_options(dataclasses.asdict(recipe.train))}


def identity_fingerprint(identity: dict[str, Any]) -> str:
    """A settings identity as the 16 hex digits a run folder is marked with."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=list).encode()).hexdigest()[:16]


class Identified:
    """`fingerprint()` and `differences()` of a settings class from its own `identity()`."""

    def identity(self) -> dict[str, Any]:
        """What decides every stored run (a JSON-able mapping)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Hash of `identity()`: a run folder holds the results of one fingerprint only."""
        return identity_fingerprint(self.identity())

    def differences(self, other: Identified) -> list[str]:
        """Each identifying field that differs from `other`'s (the folder's), with both values."""
        return identity_differences(self.identity(), other.identity())


class RecipeIdentified(Identified):
    """Settings whose folder identity is their recipe alone (compare, designspace, landscape, collegial): what
    else they hold only chooses which jobs are planned, each job's id says the rest. `EXPERIMENT` names them."""

    EXPERIMENT: ClassVar[str]
    if TYPE_CHECKING:
        recipe: Recipe

    def identity(self) -> dict[str, Any]:
        """What decides every stored run: the recipe, and which experiment stored it."""
        return recipe_identity(self.recipe, self.EXPERIMENT)
