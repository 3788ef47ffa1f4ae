"""Config files through `ensplit.settings.toml`: what is written reads back equal, and a file that cannot be
read is one line saying why."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pytest
from pydantic import Field

from ensplit.errors import EnsplitError
from ensplit.experiments.study_config import StudyConfig
from ensplit.recipe import Recipe, build_settings
from ensplit.settings import RunnerFields, build, config_class, load_toml, loads_toml, settings_to_toml, toml_value
from ensplit.train.config import TrainConfig


@config_class(groups=(RunnerFields,))
class Sweep:
    """An experiment's settings as every experiment holds them: the recipe, its own fields, a group."""

    recipe: Recipe = dataclasses.field(default_factory=Recipe)
    widths: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1)] = (4, 8)
    label: Annotated[str, Field(description="a name")] | None = None
    options: dict[str, float] = dataclasses.field(default_factory=dict)


def test_values_are_written_as_toml():
    assert [toml_value(v) for v in (True, 3, 0.5, (1, 2), "a\"b", {"k": [1.5]})] == [
        "true", "3", "0.5", "[1, 2]", '"a\\"b"', '{"k" = [1.5]}']


def test_settings_round_trip_through_their_file():
    recipe = Recipe(family="cnn1d", family_options={"norm": True}, threads=2, train=TrainConfig(epochs=3, lr=0.05))
    sweep = Sweep(recipe=recipe, widths=(2, 16), workers=3, executor="process", options={"a": 0.5})
    text = settings_to_toml(sweep, "sweep")
    tables = loads_toml(text)
    assert list(tables)[-2:] == ["train", "sweep"] and tables["threads"] == 2
    assert tables["sweep"] == {"widths": [2, 16], "options": {"a": 0.5}, "executor": "process", "workers": 3,
                               "gpus_per_job": 0.25}  # None (label, address) left out
    values = dict(tables)
    own = values.pop("sweep")
    values.pop("train")
    again = build(Sweep, {**own, "recipe": Recipe.from_mapping({**values, "train": tables["train"]})})
    assert again == sweep
    assert Recipe.from_mapping(loads_toml(settings_to_toml(recipe, ""))) == recipe


def test_a_real_experiments_file_round_trips_with_its_fingerprint():
    config = StudyConfig.from_mapping({"widths": "8,16", "epochs": "3", "bootstrap": 7, "workers": 4,
                                       "temperature_grid": "0.5,1,2", "device": "cpu"})
    again = build_settings(StudyConfig, "study", loads_toml(settings_to_toml(config, "study")))
    assert again == config and again.fingerprint() == config.fingerprint()


@pytest.mark.parametrize("make, needle", [
    (lambda p: p / "missing.toml", "config file not found"),
    (lambda p: p, "is a folder, not a TOML file"),
    (lambda p: _write(p / "bad.toml", b"widths = [4, 8\n"), "is not valid TOML"),
    (lambda p: _write(p / "latin.toml", "x = 1 # caf\xe9\n".encode("latin-1")), "is not UTF-8 text"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, make, needle):
    with pytest.raises(EnsplitError) as error:
        load_toml(make(tmp_path))
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_text_is_read_or_refused_naming_what_it_is():
    assert loads_toml("a = 1\n[t]\nb = [1, 2]\n") == {"a": 1, "t": {"b": [1, 2]}}
    with pytest.raises(EnsplitError, match="^stored settings is not valid TOML"):
        loads_toml("a = ", "stored settings")


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
