"""The pool size rules: the paper's ℓ = max{N, 8·s_standard/s} at its own VGG and WideResNet sizes, the clamped
default, and what they do to the study's identity."""

import math
from fractions import Fraction
from types import SimpleNamespace

import pytest

from ensplit.experiments.study_config import StudyConfig, describe_pool_rule, plan_pool_jobs, pool_sizes
from ensplit.models import count_params
from ensplit.recipe import Recipe

CIFAR100 = SimpleNamespace(in_shape=(3, 32, 32), num_classes=100)  # all `pool_sizes` reads of a data set


def paper_rule(networks: int, standard: int, size: int) -> int:
    """Seed 000 §3: at least ℓ = max{N, 8·s_standard/s} networks, in exact arithmetic."""
    return max(networks, math.ceil(Fraction(8 * standard, size)))


@pytest.mark.parametrize("family,widths,standard_width,networks,standard", [
    # VGG16, 2 <= w <= 181, w = 64 the standard network (15.3M on CIFAR-100), N = 64
    ("vgg16", (2, 4, 8, 16, 23, 32, 45, 64, 91, 128, 181), 64, 64, 15_291_300),
    # WideResNet-28 in the paper's convention, 5 <= w <= 453, w = 160 = WRN-28-10 (36.8M), N = 12
    ("wrn-pl", (5, 10, 20, 40, 80, 113, 160, 226, 320, 453), 160, 12, 36_755_940),
])
def test_the_paper_rule_at_the_papers_own_sizes(family, widths, standard_width, networks, standard):
    assert count_params(family, standard_width, num_classes=100) == standard
    config = StudyConfig(recipe=Recipe(family=family), widths=widths, pool_rule="paper", pool_networks=networks,
                         pool_standard=standard)
    sizes = pool_sizes(config, CIFAR100)
    for width in widths:
        size = count_params(family, width, num_classes=100)
        assert sizes[width] == paper_rule(networks, standard, size), width
    assert sizes[standard_width] == networks  # 8 standard-size networks are fewer than N
    assert sizes[widths[0]] > networks  # the smallest networks are many more
    assert sum(len(j.seeds) for j in plan_pool_jobs(config, data=CIFAR100) if j.width == widths[0]) == sizes[widths[0]]


def test_the_default_standard_is_the_largest_width_and_the_clamped_rule_stays_the_default():
    config = StudyConfig(widths=(16, 64, 256), pool_rule="paper", pool_networks=5)
    largest = count_params("mlp", 256)
    assert pool_sizes(config) == {w: paper_rule(5, largest, count_params("mlp", w)) for w in (16, 64, 256)}
    default = StudyConfig(widths=(16, 64, 256))
    assert default.pool_rule == "clamped"
    assert pool_sizes(default) == {w: min(32, max(8, math.ceil(Fraction(8 * largest, count_params("mlp", w)))))
                                   for w in (16, 64, 256)}
    described = describe_pool_rule(config, {w: count_params("mlp", w) for w in (16, 64, 256)})
    assert described["rule"] == "paper" and described["standard_params"] == largest
    assert described["formula"].startswith("ℓ = max(5, ⌈8·s_standard/s⌉)")
    assert [row["networks"] for row in described["planned"]] == [pool_sizes(config)[w] for w in (16, 64, 256)]
    assert describe_pool_rule(default, {16: 1, 64: 2})["formula"].startswith("ℓ = clamp(⌈8·s_ref/s⌉, 8, 32)")


def test_pool_rule_fields_join_the_identity_only_away_from_their_default():
    base = StudyConfig.from_mapping({"widths": "4,8"})
    same = [StudyConfig.from_mapping({"widths": "4,8", **change}) for change in (
        {"pool_rule": "clamped"}, {"pool_networks": 40},  # N does nothing under the clamped rule
        {"fit_objective": "log2", "predict_resample": "subsets", "temperature_grid": "0.5,1,2"})]  # analysis only
    assert {c.fingerprint() for c in same} == {base.fingerprint()}
    assert all("pool_rule" not in c.identity() for c in same)
    changed = [StudyConfig.from_mapping({"widths": "4,8", **change}) for change in (
        {"pool_rule": "paper"}, {"pool_rule": "paper", "pool_networks": 40}, {"pool_standard": 5000})]
    prints = {c.fingerprint() for c in changed}
    assert len(prints) == 3 and base.fingerprint() not in prints
    assert changed[0].differences(base) == ["pool_rule (folder unset, given 'paper')",
                                            "pool_networks (folder unset, given 12)"]
    assert base.differences(changed[2]) == ["pool_standard (folder 5000, given unset)"]


def test_pool_rule_options_from_the_cli():
    from ensplit.cli import OneLineParser
    from ensplit.commands import study as study_command

    parser = OneLineParser()
    study_command.add_arguments(parser)
    config = study_command.settings(parser.parse_args([
        "--pool-rule", "paper", "--pool-networks", "64", "--pool-standard", "15291300", "--fit-objective", "log2",
        "--predict-resample", "subsets", "--temperature-grid", "0.5,1,2"]))
    assert (config.pool_rule, config.pool_networks, config.pool_standard) == ("paper", 64, 15_291_300)
    assert (config.fit_objective, config.predict_resample, config.temperature_grid) == ("log2", "subsets",
                                                                                       (0.5, 1.0, 2.0))
    from ensplit.errors import EnsplitError

    with pytest.raises(EnsplitError, match="pool_rule = 'exact'"):
        study_command.settings(parser.parse_args(["--pool-rule", "exact"]))
