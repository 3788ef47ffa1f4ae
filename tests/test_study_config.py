"""Study config: TOML round trip, CLI overrides, validation with one-line errors."""

import argparse

import pytest
import tomllib

from ensplit.cli import main
from ensplit.errors import EnsplitError
from ensplit.study.config import StudyConfig, build_config, to_toml
from ensplit.study.plan import network_seed, plan_pool_jobs, pool_sizes


def test_toml_round_trip_and_overrides():
    config = build_config({"widths": "8,16", "train.epochs": "3", "lr": "0.01", "family_options": '{"norm": true}'})
    assert config.widths == (8, 16) and config.train.epochs == 3 and config.train.lr == 0.01
    assert config.family_options == {"norm": True}
    assert build_config(tomllib.loads(to_toml(config))) == config


@pytest.mark.parametrize("values,needle", [
    ({"widths": "0,8"}, "width must be a positive integer"),
    ({"widths": "-4"}, "width must be a positive integer"),
    ({"epochs": "0"}, "epochs must be >= 1"),
    ({"bogus": 1}, "unknown study option"),
    ({"optimizer": "lbfgs"}, "optimizer must be one of"),
    ({"pool_min": "x"}, "invalid value"),
])
def test_bad_values_are_one_line_errors(values, needle):
    with pytest.raises(EnsplitError, match=needle):
        build_config(values)


def test_pool_sizes_follow_the_rule():
    config = StudyConfig(widths=(16, 64, 256), pool_factor=4, pool_min=2, pool_max=40)
    sizes = pool_sizes(config)
    from ensplit.models import count_params

    ref = count_params("mlp", 256)
    for w, size in sizes.items():
        assert size == min(40, max(2, -(-4 * ref // count_params("mlp", w))))


def test_network_seeds_do_not_depend_on_packing():
    a = plan_pool_jobs(StudyConfig(widths=(8,), pool_min=6, pool_max=6, members_per_run=6))
    b = plan_pool_jobs(StudyConfig(widths=(8,), pool_min=6, pool_max=6, members_per_run=4))
    assert [s for j in a for s in j.seeds] == [s for j in b for s in j.seeds]
    assert len({network_seed(0, "pool", 8, i) for i in range(100)}) == 100


@pytest.mark.parametrize("argv,needle", [
    (["study", "--family", "nope"], "unknown family"),
    (["study", "--widths", "0"], "positive integer"),
    (["study", "--frobnicate"], "unrecognized arguments"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, needle, capsys, tmp_path):
    code = main([*argv, "--out", str(tmp_path / "s"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 or code is None
    assert needle in err and len(err.strip().splitlines()) == 1


# Job ids and the fingerprint of this config, computed before TrainConfig had precision, compile and
# channels_last (commit 16162fa): a folder made then must resume with the same ids.
OLD_CONFIG = {"widths": "4,8", "epochs": 2, "pool_min": 2, "pool_max": 2, "train_subset": 100}
OLD_POOL_IDS = ["8e0b1b060be672fac43b", "c825588e0d582c7e8ec8"]
OLD_TUNE_IDS = ["95a34bf57ee26bbd2069", "25f3bb3d0d436002faed"]
OLD_FINGERPRINT = "9cfed981395cd8ea"


def test_later_training_fields_at_their_default_keep_old_job_ids():
    from ensplit.study.plan import plan_tune_jobs

    config = build_config(OLD_CONFIG)
    assert config.train.precision == "fp32" and not config.train.compile and not config.train.channels_last
    assert [j.job_id for j in plan_pool_jobs(config)] == OLD_POOL_IDS
    assert config.fingerprint() == OLD_FINGERPRINT
    tuned = build_config({**OLD_CONFIG, "train_subset": None, "tune": True})
    assert [j.job_id for j in plan_tune_jobs(tuned)][:2] == OLD_TUNE_IDS
    explicit = build_config({**OLD_CONFIG, "precision": "fp32", "compile": "false", "channels_last": False})
    assert [j.job_id for j in plan_pool_jobs(explicit)] == OLD_POOL_IDS


def test_later_training_fields_away_from_their_default_are_new_jobs():
    from ensplit.train import TrainConfig

    ids = {tuple(j.job_id for j in plan_pool_jobs(build_config(OLD_CONFIG)))}
    prints = {build_config(OLD_CONFIG).fingerprint()}
    for change in ({"precision": "bf16"}, {"compile": True}, {"channels_last": True},
                   {"precision": "bf16", "compile": True}):
        config = build_config({**OLD_CONFIG, **change})
        jobs = plan_pool_jobs(config)
        ids.add(tuple(j.job_id for j in jobs))
        prints.add(config.fingerprint())
        carried = TrainConfig(**{**jobs[0].train_dict, "step_milestones": tuple(jobs[0].train_dict["step_milestones"])})
        assert carried == config.train  # what a worker rebuilds (run_job) is the study's training config
    assert len(ids) == len(prints) == 5


def test_gpu_path_options_from_toml_and_cli():
    from ensplit.commands import study as study_command

    toml = 'widths = [4, 8]\n[train]\nprecision = "bf16"\ncompile = true\nchannels_last = true\n'
    config = build_config(tomllib.loads(toml))
    assert (config.train.precision, config.train.compile, config.train.channels_last) == ("bf16", True, True)
    assert build_config(tomllib.loads(to_toml(config))) == config
    parser = argparse.ArgumentParser()
    study_command.add_arguments(parser)
    args = parser.parse_args(["--precision", "bf16", "--compile", "--channels-last", "--augment", "false"])
    train = study_command.config_from_args(args).train
    assert (train.precision, train.compile, train.channels_last, train.augment) == ("bf16", True, True, False)
    train = study_command.config_from_args(parser.parse_args(["--compile", "false"])).train
    assert (train.precision, train.compile, train.channels_last, train.augment) == ("fp32", False, False, True)
    with pytest.raises(EnsplitError, match="precision must be one of fp32, bf16"):
        study_command.config_from_args(parser.parse_args(["--precision", "fp16"]))


def test_every_config_field_has_a_help_line():
    from dataclasses import fields

    from ensplit.commands.study import _SKIP, FIELD_HELP
    from ensplit.study.config import StudyConfig
    from ensplit.train.config import TrainConfig

    names = {f.name for f in (*fields(StudyConfig), *fields(TrainConfig))} - _SKIP
    assert names == set(FIELD_HELP)
