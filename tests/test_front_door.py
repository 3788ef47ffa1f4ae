"""The front door and the one dialect: every command prints exactly its Python result's JSON, the CLI and the
API build the same settings, and every training command accepts the same recipe options."""

from __future__ import annotations

import argparse
import json
import pydoc

import numpy as np
import pytest

import ensplit
from ensplit._version import provenance
from ensplit.cli import OneLineParser, build_parser, main
from ensplit.jsonable import to_jsonable

TRAINING_COMMANDS = ("study", "compare", "designspace", "landscape", "collegial", "recommend")
RECIPE_FLAGS = {"--dataset", "--num-samples", "--data-seed", "--train-subset", "--test-subset",
                "--validation-fraction", "--family", "--depth", "--family-option", "--epochs", "--batch-size",
                "--optimizer", "--lr", "--momentum", "--nesterov", "--weight-decay", "--dropout", "--schedule",
                "--step-milestones", "--step-gamma", "--label-smoothing", "--augment", "--batching",
                "--track-test-accuracy", "--precision", "--compile", "--channels-last", "--seed", "--device",
                "--threads", "--config", "--quiet", "--out", "--json"}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}


def test_every_training_command_accepts_the_same_recipe_options():
    _, commands = build_parser()
    sets = {}
    for name in TRAINING_COMMANDS:
        parser = OneLineParser(prog=name)
        commands[name].add_arguments(parser)
        parser.add_argument("--json", action="store_true")
        sets[name] = _options(parser)
    for name, options in sets.items():
        assert RECIPE_FLAGS <= options, f"{name} lacks {sorted(RECIPE_FLAGS - options)}"
    # and none of them spells a recipe setting its own way
    for old in ("--data", "--subset", "--no-progress", "--option", "--report", "--no-memory", "--no-bias"):
        assert all(old not in options for options in sets.values()), old


def test_help_shows_the_front_door():
    text = pydoc.render_doc(ensplit, renderer=pydoc.plaintext)
    for name in ("study", "compare", "designspace", "landscape", "collegial", "analyze", "evaluate", "report",
                 "count_params", "solve_width", "memory_splits", "equivalents", "Recipe", "TrainConfig"):
        assert name in ensplit.__all__ and name in text


def _spy(monkeypatch, module, name: str) -> list:
    """Record what the command's pipeline returned."""
    seen = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        seen.append(result)
        return result

    monkeypatch.setattr(module, name, spy)
    return seen


def _cli_json(capsys, argv: list[str]) -> dict:
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


CASES = {
    "study": (["--widths", "4,8", "--epochs", "1", "--pool-min", "3", "--pool-max", "3", "--train-subset", "200",
               "--test-subset", "100", "--bootstrap", "0", "--cnll-splits", "1", "--no-report"],
              dict(widths="4,8", epochs=1, pool_min=3, pool_max=3, train_subset=200, test_subset=100, bootstrap=0,
                   cnll_splits=1)),
    "compare": (["--methods", "single,deep", "--members", "2", "--width", "8", "--epochs", "1", "--train-subset",
                 "200", "--test-subset", "100"],
                dict(methods="single,deep", members=2, width=8, epochs=1, train_subset=200, test_subset=100)),
    "designspace": (["--widths", "8", "--depths", "2", "--members", "2", "--epochs", "1", "--train-subset", "128",
                     "--test-subset", "64", "--timing-repeats", "1", "--timing-steps", "1", "--large-batch", "16",
                     "--measure-memory", "false"],
                    dict(widths="8", depths="2", members="2", epochs=1, train_subset=128, test_subset=64,
                         timing_repeats=1, timing_steps=1, large_batch=16, measure_memory=False)),
    "landscape": (["--width", "8", "--inits", "2", "--epochs", "1", "--every", "1", "--tail-epochs", "1",
                   "--samples", "2", "--bezier-epochs", "0", "--train-subset", "100", "--test-subset", "50"],
                  dict(width=8, inits=2, epochs=1, every=1, tail_epochs=1, samples=2, bezier_epochs=0,
                       train_subset=100, test_subset=50)),
    "recommend": (["--budget", "4k", "--epochs", "1", "--members-max", "2", "--methods", "multihead", "--bootstrap",
                   "10", "--train-subset", "200", "--test-subset", "100", "--no-verify", "--no-report"],
                  dict(budget="4k", epochs=1, members_max=2, methods="multihead", bootstrap=10, train_subset=200,
                       test_subset=100, verify=False)),
    "collegial": (["--baseline", "mlp", "--input-dim", "748", "--width", "500", "--hidden-layers", "5",
                   "--bias", "false", "--alpha", "3.64"],
                  dict(baseline="mlp", input_dim=748, width=500, hidden_layers=5, bias=False, alpha=3.64)),
}
PIPELINES = {"study": ("ensplit.commands.study", "run", ensplit.StudyConfig),
             "compare": ("ensplit.commands.compare", "run", ensplit.CompareConfig),
             "designspace": ("ensplit.commands.designspace", "run", ensplit.DesignSpaceConfig),
             "landscape": ("ensplit.commands.landscape", "run", ensplit.LandscapeConfig),
             "collegial": ("ensplit.commands.collegial", "run", ensplit.CollegialConfig),
             "recommend": ("ensplit.commands.recommend", "run", ensplit.RecommendConfig)}


@pytest.mark.parametrize("command", list(CASES))
def test_the_cli_prints_the_api_result_and_builds_the_api_settings(command, tmp_path, capsys, monkeypatch):
    import importlib

    argv, settings = CASES[command]
    module_name, pipeline, config_class = PIPELINES[command]
    module = importlib.import_module(module_name)
    seen = _spy(monkeypatch, module, pipeline)
    out = [] if command == "collegial" else ["--out", str(tmp_path / command)]
    printed = _cli_json(capsys, [command, *argv, *out, "--quiet"])
    assert len(seen) == 1
    # to_json() is plain JSON already (no arrays, numpy scalars or NaN), equal to what was printed
    assert printed == json.loads(json.dumps(seen[0].to_json(), allow_nan=False))
    # the front door's keyword settings build the very settings the command line built
    front = ensplit._settings(config_class, command, None, settings)
    assert front == seen[0].config
    if command == "collegial":  # cheap: run the front door too and compare the whole JSON
        assert to_jsonable(ensplit.collegial(**settings, progress=False)) == printed


def test_analyze_evaluate_and_report_print_what_the_api_returns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    for members, params in ((6, 100), (4, 400)):
        logits = rng.normal(size=(members, 60, 3)) + 2.0 * np.eye(3)[labels]
        np.savez(tmp_path / f"p{params}.npz", logits=logits, labels=labels, params_per_member=params)
    options = dict(cnll_splits=2, bootstrap=0, report=False)
    printed = _cli_json(capsys, ["analyze", str(tmp_path), "--out", str(tmp_path / "a"), "--cnll-splits", "2",
                                 "--bootstrap", "0", "--no-report"])
    result = ensplit.analyze([tmp_path], tmp_path / "a", **options)
    assert printed == json.loads(json.dumps(result.to_json(), allow_nan=False)) == to_jsonable(result)
    assert printed["folder"] is None and printed["report"] is None  # analyze makes no study folder
    printed = _cli_json(capsys, ["evaluate", str(tmp_path / "p100.npz"), "--cnll-splits", "2"])
    result = ensplit.evaluate(tmp_path / "p100.npz", cnll_splits=2)
    assert printed == json.loads(json.dumps(result.to_json(), allow_nan=False))


def test_budget_prints_what_the_planner_returns(capsys):
    printed = _cli_json(capsys, ["budget", "splits", "--family", "mlp", "--budget", "23050", "--members-max", "4"])
    assert printed["splits"] == to_jsonable(ensplit.memory_splits("mlp", 23050, members_max=4))
    printed = _cli_json(capsys, ["budget", "count", "--family", "mlp", "--width", "128"])
    assert printed == {"params": ensplit.count_params("mlp", 128),
                       "flops_per_example": ensplit.flops_per_example("mlp", 128), **provenance()}


def test_keyword_settings_and_a_config_object_do_not_mix():
    with pytest.raises(ensplit.EnsplitError, match="not both"):
        ensplit.compare(ensplit.CompareConfig(), members=2)
    recipe = ensplit.Recipe(train=ensplit.TrainConfig(epochs=3))
    config = ensplit._settings(ensplit.CompareConfig, "compare", None, {"recipe": recipe, "members": 2})
    assert config.recipe.train.epochs == 3 and config.members == 2


def test_every_generated_option_says_what_it_does():
    """Each option generated from a typed setting carries its description, optional settings included."""
    _, commands = build_parser()
    for name in TRAINING_COMMANDS:
        parser = OneLineParser(prog=name)
        commands[name].add_arguments(parser)
        for action in parser._actions:
            if action.dest.startswith("setting__"):
                field = action.dest.rpartition(".")[2]
                assert action.help and not action.help.startswith(field.replace("_", " ") + ";"), (name, field)
                assert action.help.split(";")[0] != field.replace("_", " "), (name, field)


def test_an_experiments_own_train_switch_is_not_the_train_table():
    config = ensplit._settings(ensplit.CollegialConfig, "collegial", None,
                               {"train": True, "baseline": "mlp", "input_dim": 40, "outputs": 10, "width": 16,
                                "alpha": 3.0, "epochs": 2})
    assert config.train is True and config.recipe.train.epochs == 2
    with pytest.raises(ensplit.EnsplitError, match="train = 5: must be a table"):
        ensplit._settings(ensplit.StudyConfig, "study", None, {"train": 5})
