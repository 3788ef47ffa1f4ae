"""The settings machinery (`ensplit.settings`): the class factory and its field groups, help text, and each
shared bound declared once and enforced the same way by every config and function that takes it."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Annotated

import pytest
from pydantic import Field

from ensplit.commands._options import add_settings_arguments
from ensplit.errors import EnsplitError
from ensplit.experiments.collegial_config import CollegialConfig
from ensplit.experiments.compare_config import CompareConfig
from ensplit.experiments.designspace_config import DesignSpaceConfig
from ensplit.experiments.landscape_config import LandscapeConfig
from ensplit.experiments.predictions import analyze, evaluate
from ensplit.experiments.recommend_plan import RecommendConfig
from ensplit.experiments.study_config import StudyConfig
from ensplit.models import count_params, get_family
from ensplit.parsing import typed_options
from ensplit.recipe import Recipe
from ensplit.settings import (
    AnalysisFields,
    DeviceFields,
    FieldGroup,
    RunnerFields,
    build,
    check_choice,
    check_int,
    config_class,
    field_annotations,
    field_groups,
    field_help,
    option_help,
)
from ensplit.settings.options import CnllSplits, Seed, Threads, Workers, bounds
from ensplit.train.config import TrainConfig


class Pair(FieldGroup):
    """A test group: two bounded fields and a check across them."""

    title = "pair"
    low: Annotated[int, Field(ge=0, le=10, description="the low end")] = 1
    high: Annotated[int, Field(ge=0, le=10, description="the high end")] = 5

    @staticmethod
    def check(config) -> None:
        if config.high < config.low:
            raise EnsplitError(f"high = {config.high}: must be >= low ({config.low})")


@config_class(groups=(Pair, RunnerFields))
class Toy:
    """A config with its own fields, a test group and the runner group."""

    name: Annotated[str, Field(min_length=1, description="what it is called")] = "toy"
    size: Annotated[int, Field(ge=1, le=100, description="how big")] | None = None
    high = 7  # the group's field, with this config's default

    def __post_init__(self) -> None:
        if self.name == "late":
            raise EnsplitError("name = 'late': the class's own check")


# -- the factory ---------------------------------------------------------------------------------------------
def test_groups_come_after_the_own_fields_in_order_with_the_config_defaults():
    assert [f.name for f in dataclasses.fields(Toy)] == ["name", "size", "low", "high", "executor", "workers",
                                                         "address", "gpus_per_job"]
    toy = Toy()
    assert (toy.low, toy.high, toy.executor, toy.workers, toy.gpus_per_job) == (1, 7, "local", 2, 0.25)
    assert field_groups(Toy) == (Pair, RunnerFields) and field_groups(TrainConfig) == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.low = 3


def test_bad_values_are_one_line_errors_naming_field_value_and_what_is_allowed():
    for kwargs, message in [({"low": 11}, "low = 11: must be <= 10"), ({"size": 0}, "size = 0: must be >= 1"),
                            ({"workers": True}, "workers = True: input should be a valid integer"),
                            ({"executor": "slurm"}, "executor = 'slurm': must be 'local', 'process' or 'ray'"),
                            ({"bogus": 1}, "unknown field 'bogus'")]:
        with pytest.raises(EnsplitError) as error:
            Toy(**kwargs)
        assert str(error.value) == message


def test_group_checks_run_first_then_the_class_check():
    with pytest.raises(EnsplitError, match=r"high = 0: must be >= low \(1\)"):
        Toy(high=0, name="late")
    with pytest.raises(EnsplitError, match="applies to executor ray only"):
        Toy(address="ray://head:10001")
    with pytest.raises(EnsplitError, match="the class's own check"):
        Toy(name="late")
    assert Toy(executor="ray", address="ray://head:10001").address == "ray://head:10001"


def test_a_group_field_is_declared_once_and_needs_a_default():
    with pytest.raises(TypeError, match="is declared by RunnerFields"):
        @config_class(groups=(RunnerFields,))
        class Twice:
            workers: int = 3

    with pytest.raises(TypeError, match="temperature_grid has no default"):
        @config_class(groups=(AnalysisFields,))
        class NoGrid:
            pass

    @config_class(groups=(AnalysisFields,))
    class WithGrid:
        temperature_grid = (0.5, 1.0)

    assert WithGrid().temperature_grid == (0.5, 1.0) and WithGrid().bootstrap == 40


def test_build_converts_text_and_names_the_closest_field():
    toy = build(Toy, {"size": "12", "workers": "8", "executor": "process"})
    assert (toy.size, toy.workers, toy.executor) == (12, 8, "process")
    assert build(Toy, {"size": "none"}).size is None
    with pytest.raises(EnsplitError, match=r"unknown field 'wokers' \(did you mean 'workers'\?\); known: name, size"):
        build(Toy, {"wokers": 3})
    with pytest.raises(EnsplitError, match="size = 'big': not an integer"):
        build(Toy, {"size": "big"})


# -- help text -------------------------------------------------------------------------------------------------
def test_help_comes_from_the_declaration_with_default_and_range():
    helps = field_help(Toy)
    assert helps["size"] == "how big" and helps["workers"] == "process-pool or Ray workers"
    text = option_help(Toy)
    assert text["low"] == "the low end; default 1; 0 to 10"
    assert text["high"] == "the high end; default 7; 0 to 10"
    assert text["gpus_per_job"].endswith("; default 0.25; > 0, <= 1")
    assert text["size"] == "how big"  # no default, and the bounds of an `X | None` are left to the error
    assert option_help(Recipe, ["threads"])["threads"] == Threads.__metadata__[0].description


def test_each_group_gets_its_own_heading_in_the_options():
    parser = argparse.ArgumentParser(prog="toy")
    add_settings_arguments(parser, Toy, "toy")
    titles = {g.title: [a.option_strings[0] for a in g._group_actions] for g in parser._action_groups}
    assert titles["toy"] == ["--name", "--size"]
    assert titles["pair"] == ["--low", "--high"]
    assert titles[RunnerFields.title] == ["--executor", "--workers", "--address", "--gpus-per-job"]
    assert "; default 7; 0 to 10" in parser.format_help()


# -- each bound declared once ----------------------------------------------------------------------------------
RUNNER_CONFIGS = [StudyConfig, CompareConfig, DesignSpaceConfig, LandscapeConfig, CollegialConfig, RecommendConfig,
                  Toy]


@pytest.mark.parametrize("cls", RUNNER_CONFIGS, ids=lambda c: c.__name__)
def test_every_config_with_workers_enforces_the_runner_groups_bound(cls):
    declared = bounds(Workers)
    assert declared == {"ge": 1, "le": 4096}
    assert bounds(field_annotations(cls)["workers"][1]) == declared
    for value, message in [(declared["ge"] - 1, "workers = 0: must be >= 1"),
                           (declared["le"] + 1, "workers = 4097: must be <= 4096")]:
        with pytest.raises(EnsplitError) as error:
            build(cls, {"workers": value}) if cls is Toy else cls.from_mapping({"workers": value})
        assert str(error.value) == message


def test_the_analysis_and_device_groups_bounds_hold_for_configs_and_plain_functions(tmp_path):
    assert bounds(field_annotations(StudyConfig)["cnll_splits"][1]) == bounds(CnllSplits) == {"ge": 1, "le": 1000}
    assert bounds(field_annotations(RecommendConfig)["cnll_splits"][1]) == bounds(CnllSplits)
    for call in (lambda: StudyConfig.from_mapping({"cnll_splits": 1001}),
                 lambda: RecommendConfig.from_mapping({"cnll_splits": 1001})):
        with pytest.raises(EnsplitError, match="cnll_splits = 1001: must be <= 1000"):
            call()
    for call in (lambda: evaluate(tmp_path / "x.npz", cnll_splits=1001),
                 lambda: analyze([tmp_path / "x.npz"], tmp_path / "out", cnll_splits=1001)):
        with pytest.raises(EnsplitError, match=r"cnll_splits = 1001: must be an integer in \[1, 1000\]"):
            call()
    with pytest.raises(EnsplitError, match=r"seed = -1: must be an integer in \[0, 2147483647\]"):
        evaluate(tmp_path / "x.npz", seed=-1)
    recipe = field_annotations(Recipe)
    assert bounds(recipe["seed"][1]) == bounds(recipe["data_seed"][1]) == bounds(Seed) == {"ge": 0, "le": 2**31 - 1}
    assert field_groups(Recipe) == (DeviceFields,)
    with pytest.raises(EnsplitError, match="device = 'tpu': must be auto, cpu, cuda or cuda:N"):
        Recipe(device="tpu")
    with pytest.raises(EnsplitError, match="threads = 0: must be >= 1"):
        Recipe(threads=0)


def test_the_study_takes_the_analysis_groups_bounds_help_and_defaults():
    study, helps = field_annotations(StudyConfig), field_help(StudyConfig)
    for name, (annotation, default) in AnalysisFields.declared().items():
        assert bounds(study[name][1]) == bounds(annotation), name
        assert helps[name] == annotation.__metadata__[-1].description, name
        if default is not dataclasses.MISSING:
            assert getattr(StudyConfig(), name) == default, name


# -- plain checks against typed options --------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: check_int("cnll_splits", 0, CnllSplits), "cnll_splits = 0: must be an integer in [1, 1000]"),
    (lambda: check_int("cnll_splits", 2.0, CnllSplits), "cnll_splits = 2.0: must be an integer in [1, 1000]"),
    (lambda: check_int("cnll_splits", True, CnllSplits), "cnll_splits = True: must be an integer in [1, 1000]"),
    (lambda: check_int("predict_max_n", 2, AnalysisFields.declared()["predict_max_n"][0], upper=False),
     "predict_max_n = 2: must be an integer >= 3"),
    (lambda: check_int("width", 0, Annotated[int, Field(ge=1, le=10**9)]), "width = 0: must be an integer in [1, 1e9]"),
    (lambda: check_choice("temperature", "during", AnalysisFields.declared()["temperature"][0]),
     "temperature = 'during': must be before or after"),
    (lambda: check_choice("executor", "slurm", RunnerFields.declared()["executor"][0]),
     "executor = 'slurm': must be local, process or ray"),
])
def test_plain_arguments_are_refused_in_one_line(call, message):
    with pytest.raises(EnsplitError) as error:
        call()
    assert str(error.value) == message and "\n" not in message


def test_plain_checks_pass_good_values():
    assert check_int("cnll_splits", 1000, CnllSplits) == 1000
    assert check_int("predict_pool", 10**6, AnalysisFields.declared()["predict_pool"][0], upper=False) == 10**6
    assert check_choice("temperature", "after", AnalysisFields.declared()["temperature"][0]) == "after"


def test_family_options_are_checked_one_way_from_a_config_and_from_python():
    for given, message in [({"norm": 1}, "option norm of family 'mlp' needs a bool, got 1"),
                           ({"dropout": 1.5}, "option dropout of family 'mlp' must lie in [0, 1), got 1.5"),
                           ({"dropout": "nan"}, "option dropout of family 'mlp' needs a float, got nan")]:
        with pytest.raises(EnsplitError) as from_config:
            typed_options(get_family("mlp").options, given, "family 'mlp'")
        value = {k: float(v) if isinstance(v, str) else v for k, v in given.items()}
        with pytest.raises(EnsplitError) as from_python:
            count_params("mlp", 8, **value)
        assert str(from_config.value) == str(from_python.value) == message
    assert typed_options({"norm": False, "dropout": 0.0}, {"norm": "on", "dropout": "0.25"}, "x") == {
        "norm": True, "dropout": 0.25}
