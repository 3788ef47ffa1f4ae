"""One identity for every run folder (`ensplit.runs.identity`): the experiments that identify a folder by their
recipe alone keep the fingerprints their folders were marked with, and name the fields a refused config changed."""

from __future__ import annotations

from typing import Any

import pytest

from ensplit.experiments.collegial_config import CollegialConfig
from ensplit.experiments.compare_config import CompareConfig
from ensplit.experiments.designspace_config import DesignSpaceConfig
from ensplit.experiments.landscape_config import LandscapeConfig
from ensplit.runs.identity import RecipeIdentified, identity_fingerprint

# Each experiment's default settings, fingerprinted before the identity was written once: a folder made then
# must still open.
PINNED = [(CompareConfig, {}, "a616f1520d4a9901"), (DesignSpaceConfig, {}, "6662d0c6c093dba8"),
          (LandscapeConfig, {}, "3984b4c3aa2947bd"), (CollegialConfig, {"alpha": 3.0}, "32a25a4383179615"),
          (CompareConfig, {"epochs": 7, "seed": 3}, "cdd80eb6e64aecce")]


@pytest.mark.parametrize("cls, values, fingerprint", PINNED)
def test_recipe_identified_fingerprints_are_pinned(cls: type, values: dict[str, Any], fingerprint: str) -> None:
    config = cls.from_mapping(values)
    assert isinstance(config, RecipeIdentified)
    assert config.fingerprint() == fingerprint == identity_fingerprint(config.identity())
    assert config.identity()["experiment"] == cls.EXPERIMENT


@pytest.mark.parametrize("cls, values", [(cls, values) for cls, values, _ in PINNED])
def test_the_recipe_alone_identifies_the_folder(cls: type, values: dict[str, Any]) -> None:
    config = cls.from_mapping(values)
    assert config.differences(cls.from_mapping({**values, "executor": "process", "threads": 1})) == []
    changed = cls.from_mapping({**values, "lr": 0.3, "family_options": {"norm": True}})
    assert config.fingerprint() != changed.fingerprint()
    assert sorted(config.differences(changed)) == ["family_options.norm (folder True, given unset)",
                                                  "train.lr (folder 0.3, given 0.1)"]
