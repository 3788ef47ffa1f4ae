"""`ensplit landscape` and `ensplit designspace` refuse what they cannot do before training, name damaged
checkpoints, never record settings that contradict the checkpoints they analysed, and write their reports
whatever part of the grid formed an ensemble."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file
from tests.test_reliability_inputs import refused

import ensplit
from ensplit.analysis.design_space import DEPTH_EQUIVALENT, SINGLE, DesignRecord, thresholds
from ensplit.cli import main
from ensplit.data import load_dataset
from ensplit.errors import EnsplitError
from ensplit.experiments.landscape import LandscapeConfig
from ensplit.experiments.landscape_stored import stored_recipe
from ensplit.reports.design_space_figures import report_sections
from ensplit.reports.html import write_report
from ensplit.store.trajectories import load_trajectories
from ensplit.train import TrainConfig
from ensplit.train.trajectories import train_trajectories

DATA = ["--train-subset", "200", "--test-subset", "100", "--quiet"]
ANALYSIS = ["--samples", "2", "--rank", "1", "--bezier-epochs", "0", *DATA]
TINY_DESIGN = ["--epochs", "1", "--train-subset", "128", "--test-subset", "64", "--timing-repeats", "1",
               "--timing-warmup", "0", "--inference-repeats", "1", "--timing-steps", "1", "--large-batch", "16",
               "--measure-memory", "false", "--quiet"]


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist1d").subset(train=200, test=100, seed=0)


def _checkpoints(folder: Path, data, epochs: int = 2, every: int = 1, tail_epochs: int = 1, **options) -> Path:
    """Trajectories of two mlp inits of width 8 (3 checkpoints each by default), saved in `folder` as
    `ensplit landscape` saves them."""
    train_trajectories(data, "mlp", 8, [0, 1], TrainConfig(epochs=epochs), every=every, tail_epochs=tail_epochs,
                       out=folder, **options)
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data) -> Path:
    """One intact checkpoints folder for every test that only reads it (copy it to damage it)."""
    return _checkpoints(tmp_path_factory.mktemp("saved") / "checkpoints", data)


# -- landscape: too few checkpoints -------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, needle", [
    (["--epochs", "1", "--every", "1", "--tail-epochs", "0"], "epochs = 1, every = 1, tail_epochs = 0: 1 checkpoint"),
    (["--epochs", "2", "--every", "5", "--tail-epochs", "0"], "epochs = 2, every = 5, tail_epochs = 0: 1 checkpoint"),
])
def test_landscape_refuses_too_few_checkpoints_before_training(capsys, tmp_path, schedule, needle):
    out = tmp_path / "ls"
    err = refused(capsys, ["landscape", "--out", str(out), "--width", "8", "--inits", "2", *schedule, *ANALYSIS],
                  needle)
    assert "need >= 2" in err and "raise --epochs or --tail-epochs, or lower --every" in err
    assert not out.exists()  # refused by the settings, before the folder or any training
    with pytest.raises(EnsplitError, match="1 checkpoint per init"):  # the Python front door too
        ensplit.landscape(out=out, width=8, inits=2, epochs=1, every=1, tail_epochs=0)


@pytest.mark.parametrize("epochs, every, tail_epochs", [(2, 5, 1), (5, 2, 1), (4, 2, 0), (3, 2, 0), (1, 1, 1)])
def test_the_checkpoint_count_is_what_the_trainer_keeps(data, epochs, every, tail_epochs):
    config = LandscapeConfig(recipe=ensplit.Recipe(train=TrainConfig(epochs=epochs)), every=every,
                             tail_epochs=tail_epochs)
    trajectories = train_trajectories(data, "mlp", 4, [0, 1], config.recipe.train, every=config.every,
                                      tail_epochs=config.tail_epochs)
    assert len(trajectories.epochs) == config.checkpoints_per_init


def test_loaded_trajectories_with_one_checkpoint_per_init_are_refused(capsys, tmp_path, data):
    folder = _checkpoints(tmp_path / "checkpoints", data, epochs=1, every=1, tail_epochs=0)
    refused(capsys, ["landscape", "--out", str(tmp_path / "ls"), "--trajectories", str(folder), *ANALYSIS],
            f"trajectories = '{folder}' hold 1 checkpoint(s) per init; the within-trajectory similarity and the "
            "t-SNE need >= 2")


# -- landscape: damaged checkpoints -------------------------------------------------------------------------

def _damage_truncated(folder: Path) -> tuple[Path, str]:
    path = folder / "init1" / "epoch0002.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    return path, "is damaged: not a readable safetensors file"


def _damage_deleted(folder: Path) -> tuple[Path, str]:
    path = folder / "init0" / "epoch0003.safetensors"
    path.unlink()
    return path, "is missing (listed in"


def _damage_flipped(folder: Path) -> tuple[Path, str]:
    path = folder / "init0" / "epoch0001.safetensors"
    content = bytearray(path.read_bytes())
    content[-3] ^= 0x10  # one bit of a weight: still a valid safetensors file
    path.write_bytes(bytes(content))
    return path, "SHA-256 differs from the one in"


def _damage_replaced_without_checksums(folder: Path) -> tuple[Path, str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("checksums", None)  # a folder written before checksums were recorded
    (folder / "manifest.json").write_text(json.dumps(manifest))
    path = folder / "init1" / "epoch0003.safetensors"
    save_file({"body.0.weight": torch.zeros(3, 3)}, str(path))
    return path, "its tensors (names, shapes or dtypes) differ from those of"


def _damage_manifest(folder: Path) -> tuple[Path, str]:
    path = folder / "manifest.json"
    path.write_text(path.read_text()[:40])
    return path, "is damaged or unreadable"


def _damage_manifest_field(folder: Path) -> tuple[Path, str]:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["phases"] = ["tail"] * len(manifest["epochs"])
    path.write_text(json.dumps(manifest))
    return path, "is damaged: phases = ['tail', 'tail', 'tail']"


def _damage_manifest_architecture(folder: Path) -> tuple[Path, str]:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["width"] = 16  # the checkpoints hold width 8
    path.write_text(json.dumps(manifest))
    return folder, "the checkpoints' tensors do not fit the manifest's architecture (mlp width 16"


@pytest.mark.parametrize("damage", [_damage_truncated, _damage_deleted, _damage_flipped,
                                    _damage_replaced_without_checksums, _damage_manifest, _damage_manifest_field,
                                    _damage_manifest_architecture])
def test_damaged_checkpoints_are_named_not_used(capsys, tmp_path, saved, damage):
    folder = Path(shutil.copytree(saved, tmp_path / "checkpoints"))
    path, needle = damage(folder)
    err = refused(capsys, ["landscape", "--out", str(tmp_path / "ls"), "--trajectories", str(folder), *ANALYSIS],
                  needle)
    assert str(path) in err
    assert not (tmp_path / "ls" / "summary.json").exists()


# -- landscape: settings that contradict the loaded checkpoints ---------------------------------------------

@pytest.mark.parametrize("given, needle", [
    (["--family", "cnn1d"], "family = 'cnn1d': contradicts the trajectories in {}, trained with family = 'mlp'"),
    (["--width", "64"], "width = 64: contradicts the trajectories in {}, trained with width = 8; give 8 or leave"),
    (["--inits", "3"], "inits = 3: contradicts the trajectories in {}, trained with inits = 2"),
    (["--depth", "3"], "depth = 3: contradicts the trajectories in {}, trained with depth = 2"),
    (["--family-option", "norm=true"], "family option norm = True: contradicts the trajectories in {}, trained "
                                       "with family option norm = False"),
    (["--dropout", "0.1"], "family option dropout = 0.1: contradicts"),
])
def test_settings_contradicting_loaded_checkpoints_are_refused(capsys, tmp_path, saved, given, needle):
    refused(capsys, ["landscape", "--out", str(tmp_path / "ls"), "--trajectories", str(saved), *given, *ANALYSIS],
            needle.format(saved))


def test_data_of_another_shape_than_the_checkpoints_is_refused(saved):
    config = LandscapeConfig(trajectories=str(saved))
    for in_shape, classes in (((20,), 10), ((40,), 5)):
        with pytest.raises(EnsplitError, match=r"trained on inputs \(40,\) with 10 classes"):
            stored_recipe(config, load_trajectories(saved), SimpleNamespace(in_shape=in_shape, num_classes=classes),
                          print)


def test_the_summary_records_what_the_loaded_checkpoints_were_trained_with(capsys, tmp_path, data):
    """Left at their defaults (family mlp, width 256, 5 inits, 40 epochs, no family options), the settings
    are not what the checkpoints hold: the summary records the checkpoints' values and says so."""
    folder = _checkpoints(tmp_path / "checkpoints", data, norm=True)
    out = tmp_path / "ls"
    assert main(["landscape", "--out", str(out), "--trajectories", str(folder), "--width", "8", "--samples", "2",
                 "--rank", "1", "--bezier-epochs", "0", "--train-subset", "200", "--test-subset", "100"]) == 0
    assert "the summary records what the trajectories in" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["family"], summary["width"], summary["inits"]) == ("mlp", 8, 2)
    recipe = summary["recipe"]
    assert recipe["family"] == "mlp" and recipe["family_options"] == {"norm": True}
    assert recipe["train"]["epochs"] == summary["epochs"] == 2
    assert recipe["train_subset"] == 200  # the data the analyses used is the given one


# -- designspace ---------------------------------------------------------------------------------------------

def test_designspace_refuses_a_grid_without_any_ensemble_before_training(capsys, tmp_path, monkeypatch):
    import ensplit.experiments.designspace as designspace

    def no_training(*args, **kwargs):
        raise AssertionError("trained although no ensemble can be formed")

    monkeypatch.setattr(designspace, "_train_config", no_training)
    refused(capsys, ["designspace", "--out", str(tmp_path / "d"), "--widths", "1", "--depths", "1", "--members", "8",
                     *TINY_DESIGN],
            "members = [8]: no width- or depth-equivalent ensemble fits the budget of any single network (widths [1], "
            "depths [1]): lower --members or raise --widths or --depths")


def _record(k: int, name: str, width: int, accuracy: list[float]) -> DesignRecord:
    members = 1 if name == SINGLE else k
    return DesignRecord(design_class=name, budget_width=width, budget_depth=1, group_members=k, width=width,
                        depth=1, members=members, params=100 * width, accuracy_by_epoch=accuracy,
                        seconds_per_epoch=0.1, seconds_per_epoch_batched=0.05, layers=members)


@pytest.mark.parametrize("records", [
    [_record(8, SINGLE, 4, [0.3, 0.4]), _record(8, SINGLE, 8, [0.4, 0.5])],  # no K formed an ensemble
    [_record(2, SINGLE, 4, [0.3, 0.4]), _record(2, DEPTH_EQUIVALENT, 4, [0.35, 0.45]),  # K = 4 never formed
     _record(4, SINGLE, 4, [0.3, 0.4])],
])
def test_the_design_report_is_written_whatever_formed(tmp_path, records):
    est = thresholds(records)
    page = write_report(tmp_path / "report.html", "design space", report_sections(records, est, "none"))
    assert page.read_text().count("<img") >= 8


@pytest.mark.parametrize("setting, value, needle", [
    ("--widths", "8,8", "widths = [8, 8]: must be distinct"),
    ("--depths", "2,2", "depths = [2, 2]: must be distinct"),
    ("--members", "2,2", "members = [2, 2]: must be distinct"),
])
def test_designspace_refuses_repeated_grid_values(capsys, tmp_path, setting, value, needle):
    out = tmp_path / "d"
    refused(capsys, ["designspace", "--out", str(out), "--widths", "8", "--depths", "2", "--members", "2",
                     *TINY_DESIGN, setting, value], needle)
    assert not out.exists()
