"""Study config: TOML round trip, CLI overrides, validation with one-line errors."""

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
