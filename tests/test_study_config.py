"""Study config: TOML round trip, CLI overrides, validation with one-line errors."""

import pytest
import tomllib

from ensplit.cli import main
from ensplit.errors import EnsplitError
from ensplit.experiments.study_config import StudyConfig, plan_pool_jobs, pool_sizes
from ensplit.runs.plan import network_seed
from ensplit.settings import settings_to_toml


def test_toml_round_trip_and_overrides():
    config = StudyConfig.from_mapping({"widths": "8,16", "train.epochs": "3", "lr": "0.01",
                                       "family_options": '{"norm": true}'})
    assert config.widths == (8, 16) and config.recipe.train.epochs == 3 and config.recipe.train.lr == 0.01
    assert config.recipe.family_options == {"norm": True}
    assert StudyConfig.from_mapping(tomllib.loads(settings_to_toml(config, "study"))) == config


@pytest.mark.parametrize("values,needle", [
    ({"widths": "0,8"}, "widths = 0: must be >= 1"),
    ({"widths": "-4"}, "widths = -4: must be >= 1"),
    ({"epochs": "0"}, "epochs = 0: must be >= 1"),
    ({"bogus": 1}, "unknown field 'bogus'"),
    ({"optimizer": "lbfgs"}, "optimizer = 'lbfgs': must be 'sgd', 'adam' or 'adamw'"),
    ({"pool_min": "x"}, "pool_min = 'x': not an integer"),
    ({"pool_min": True}, "pool_min = True: input should be a valid integer"),
    ({"pool_min": 9, "pool_max": 8}, "pool_max = 8: must be >= pool_min"),
    ({"widths": "8,8"}, "must be distinct"),
])
def test_bad_values_are_one_line_errors(values, needle):
    with pytest.raises(EnsplitError, match=needle):
        StudyConfig.from_mapping(values)


def test_pool_sizes_follow_the_rule():
    config = StudyConfig(widths=(16, 64, 256), pool_factor=4.0, pool_min=2, pool_max=40)
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
    (["study", "--widths", "0"], "widths = 0: must be >= 1"),
    (["study", "--frobnicate"], "unrecognized arguments"),
])
def test_cli_bad_input_exits_2_with_one_line(argv, needle, capsys, tmp_path):
    code = main([*argv, "--out", str(tmp_path / "s"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 or code is None
    assert needle in err and len(err.strip().splitlines()) == 1


# Job ids and the fingerprint of this config, computed before TrainConfig had precision, compile and
# channels_last (commit 16162fa): a folder made then must resume with the same ids. Such a folder was trained
# at the default of the day, lr 0.05 (the default is 0.2 since the recipe was re-derived on validation), so it
# resumes given that lr.
OLD_CONFIG = {"widths": "4,8", "epochs": 2, "pool_min": 2, "pool_max": 2, "train_subset": 100, "lr": 0.05}
OLD_POOL_IDS = ["8e0b1b060be672fac43b", "c825588e0d582c7e8ec8"]
OLD_TUNE_IDS = ["95a34bf57ee26bbd2069", "25f3bb3d0d436002faed"]
OLD_FINGERPRINT = "9cfed981395cd8ea"


def test_later_training_fields_at_their_default_keep_old_job_ids():
    from ensplit.experiments.study_config import plan_tune_jobs

    config = StudyConfig.from_mapping(OLD_CONFIG)
    train = config.recipe.train
    assert train.precision == "fp32" and not train.compile and not train.channels_last
    assert [j.job_id for j in plan_pool_jobs(config)] == OLD_POOL_IDS
    assert config.fingerprint() == OLD_FINGERPRINT
    tuned = StudyConfig.from_mapping({**OLD_CONFIG, "train_subset": None, "tune": True})
    assert [j.job_id for j in plan_tune_jobs(tuned)][:2] == OLD_TUNE_IDS
    explicit = StudyConfig.from_mapping({**OLD_CONFIG, "precision": "fp32", "compile": "false", "channels_last": False})
    assert [j.job_id for j in plan_pool_jobs(explicit)] == OLD_POOL_IDS


def test_later_training_fields_away_from_their_default_are_new_jobs():
    ids = {tuple(j.job_id for j in plan_pool_jobs(StudyConfig.from_mapping(OLD_CONFIG)))}
    prints = {StudyConfig.from_mapping(OLD_CONFIG).fingerprint()}
    for change in ({"precision": "bf16"}, {"compile": True}, {"channels_last": True},
                   {"precision": "bf16", "compile": True}):
        config = StudyConfig.from_mapping({**OLD_CONFIG, **change})
        jobs = plan_pool_jobs(config)
        ids.add(tuple(j.job_id for j in jobs))
        prints.add(config.fingerprint())
        assert jobs[0].train_config() == config.recipe.train  # what a worker rebuilds is the study's recipe
    assert len(ids) == len(prints) == 5


def test_gpu_path_options_from_toml_and_cli():
    from ensplit.cli import OneLineParser
    from ensplit.commands import study as study_command

    toml = 'widths = [4, 8]\n[train]\nprecision = "bf16"\ncompile = true\nchannels_last = true\n'
    config = StudyConfig.from_mapping(tomllib.loads(toml))
    train = config.recipe.train
    assert (train.precision, train.compile, train.channels_last) == ("bf16", True, True)
    assert StudyConfig.from_mapping(tomllib.loads(settings_to_toml(config, "study"))) == config
    parser = OneLineParser()
    study_command.add_arguments(parser)
    args = parser.parse_args(["--precision", "bf16", "--compile", "--channels-last", "--augment", "off"])
    train = study_command.settings(args).recipe.train
    assert (train.precision, train.compile, train.channels_last, train.augment) == ("bf16", True, True, False)
    train = study_command.settings(parser.parse_args(["--compile", "false"])).recipe.train
    assert (train.precision, train.compile, train.channels_last, train.augment) == ("fp32", False, False, True)
    with pytest.raises(EnsplitError, match="precision = 'fp16': must be 'fp32' or 'bf16'"):
        study_command.settings(parser.parse_args(["--precision", "fp16"]))


def test_every_option_says_what_it_does_and_its_default(capsys):
    assert main(["study", "--help"]) == 0
    text = capsys.readouterr().out
    for flag, words in (("--widths", "default 16,32,64,128,256"), ("--epochs", "default 40"),
                        ("--lr", "default 0.1"), ("--device", "default auto"), ("--temperature", "default before")):
        assert flag in text and words in " ".join(text.split())


# A study folder written before the recipe existed (the flat config.toml of commit f2db3c6, verbatim): the
# new code must read it, give it the same fingerprint and the same job ids, and so train nothing again.
PINNED_CONFIG_TOML = """dataset = "mnist1d"
num_samples = 5000
data_seed = 42
train_subset = 400
test_subset = 200
validation_fraction = 0.0
family = "mlp"
family_options = {}
widths = [4, 8, 16]
pool_factor = 8.0
pool_min = 4
pool_max = 8
members_per_run = 32
seed = 0
tune = false
tune_weight_decays = [0.0, 0.0001, 0.001]
tune_dropouts = [0.0, 0.1]
tune_networks = 2
temperature = "before"
cnll_splits = 2
predict_max_n = 4
predict_pool = 6
bootstrap = 3
device = "cpu"
executor = "local"
workers = 2
gpus_per_job = 0.25

[train]
epochs = 2
batch_size = 128
optimizer = "sgd"
lr = 0.05
momentum = 0.9
nesterov = false
weight_decay = 0.0005
dropout = 0.0
schedule = "cosine"
step_milestones = [0.5, 0.75]
step_gamma = 0.1
label_smoothing = 0.0
augment = true
batching = "independent"
track_test_accuracy = false
precision = "fp32"
compile = false
channels_last = false
"""
PINNED_FINGERPRINT = "c70ead479c871813"
PINNED_POOL_IDS = ["9093a8c664c384de40d6", "07225617015f1f1bfb86", "5f13eff3203f703365db"]
DEFAULT_FINGERPRINT = "45bf08fd3014b0a3"  # `ensplit study` with no arguments, before the recipe
DEFAULT_FIRST_IDS = ["509918d7031921c01aab", "334d0d4c64c2c4bb8f7c", "db98a849335f46b04b77"]


def test_a_folder_from_before_the_recipe_keeps_its_identity():
    config = StudyConfig.from_mapping(tomllib.loads(PINNED_CONFIG_TOML))
    assert config.fingerprint() == PINNED_FINGERPRINT
    assert [j.job_id for j in plan_pool_jobs(config)] == PINNED_POOL_IDS
    old_default = StudyConfig.from_mapping({"lr": 0.05})  # `ensplit study` with no arguments, before lr 0.1
    assert old_default.fingerprint() == DEFAULT_FINGERPRINT
    assert [j.job_id for j in plan_pool_jobs(old_default)][:3] == DEFAULT_FIRST_IDS
    assert StudyConfig().fingerprint() != DEFAULT_FINGERPRINT  # the new default recipe is a new fingerprint


def test_a_folder_from_before_the_recipe_resumes_without_training(tmp_path, capsys):
    from ensplit.store import ResultStore

    folder = tmp_path / "old"
    args = ["--widths", "4,8,16", "--epochs", "2", "--pool-min", "4", "--pool-max", "8", "--train-subset", "400",
            "--test-subset", "200", "--bootstrap", "3", "--cnll-splits", "2", "--no-report", "--quiet", "--json",
            "--lr", "0.05"]  # the old folder's recipe (the default lr of the day)
    assert main(["study", "--out", str(folder), *args]) == 0
    first = capsys.readouterr().out
    store = ResultStore(folder)
    finished = {row[0]: row[1] for row in store._conn.execute("SELECT job_id, finished_at FROM jobs")}
    store.close()
    assert sorted(finished) == sorted(PINNED_POOL_IDS)
    (folder / "config.toml").write_text(PINNED_CONFIG_TOML)  # the folder as the old code left it
    assert main(["study", "--out", str(folder), *args]) == 0
    assert capsys.readouterr().out == first
    store = ResultStore(folder)
    again = {row[0]: row[1] for row in store._conn.execute("SELECT job_id, finished_at FROM jobs")}
    assert again == finished  # no job was trained (or rewritten) again


def test_seed000_fields_at_their_defaults_keep_the_pinned_identity_and_round_trip():
    """The pool rule, fit objective, prediction resampling and temperature grid (issue 17): a folder written
    before them (PINNED_CONFIG_TOML, no such keys) and one that spells their defaults out are the same study."""
    explicit = PINNED_CONFIG_TOML.replace('temperature = "before"\n', 'temperature = "before"\npool_rule = "clamped"\n'
                                          'pool_networks = 12\nfit_objective = "nll"\npredict_resample = "bootstrap"\n')
    config = StudyConfig.from_mapping(tomllib.loads(explicit))
    assert config.fingerprint() == PINNED_FINGERPRINT
    assert [j.job_id for j in plan_pool_jobs(config)] == PINNED_POOL_IDS
    changed = StudyConfig.from_mapping({**tomllib.loads(explicit), "fit_objective": "log2", "temperature_grid": "1,2",
                                        "pool_rule": "paper", "pool_standard": 1000})
    assert StudyConfig.from_mapping(tomllib.loads(settings_to_toml(changed, "study"))) == changed
    assert changed.fingerprint() != PINNED_FINGERPRINT
    assert StudyConfig.from_mapping({**tomllib.loads(explicit), "fit_objective": "log2"}).fingerprint() == (
        PINNED_FINGERPRINT)
    with pytest.raises(EnsplitError, match="fit_objective = 'l2'"):
        StudyConfig.from_mapping({"fit_objective": "l2"})
    with pytest.raises(EnsplitError, match="must be distinct"):
        StudyConfig.from_mapping({"temperature_grid": "1,1"})
