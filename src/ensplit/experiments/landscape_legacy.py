"""Landscape folders from before landscape stored its runs: `DIR/summary.json` and `DIR/checkpoints/` (a
trajectories manifest and `init{k}/epoch{e:04d}.safetensors`, every init trained in one member-batched run).

Such a folder stays a landscape folder. Rerun on it, each planned init whose checkpoints are there, made with
the same recipe and schedule (the data settings from the old `summary.json`, the rest from the manifest), is
taken from them (checksums checked, nothing pickled) and stored as its job, instead of being trained again.
Damaged checkpoints, or ones of other settings, are not used: those inits are trained.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.experiments.landscape_jobs import TrajectoryResult, job_trajectory, trajectory_result
from ensplit.recipe import Recipe
from ensplit.runs.folder import legacy_run_folder, note
from ensplit.runs.plan import TrainJob
from ensplit.store.ownership import json_with, report_and
from ensplit.store.trajectories import Trajectories, load_trajectories
from ensplit.train.config import TrainConfig

OLD_CHECKPOINTS = "checkpoints"
DATA_FIELDS = ("dataset", "num_samples", "data_seed", "train_subset", "test_subset", "validation_fraction")
_OLD_LAYOUT = report_and({"summary.json": json_with("recipe"), OLD_CHECKPOINTS: Path.is_dir})


def landscape_folder(directory: Path, names: set[str]) -> bool:
    """A landscape folder without the ownership marker: the old layout, or a run folder of landscape's."""
    return _OLD_LAYOUT(directory, names) or legacy_run_folder("landscape")(directory, names)


def _plain(value: Any) -> Any:
    """As JSON holds it (tuples become lists), so stored and planned values compare equal when they are."""
    return json.loads(json.dumps(value, default=list))


def _same_data(summary: Path, recipe: Recipe) -> bool:
    """Whether the old run's summary records the data settings of `recipe`."""
    try:
        old = json.loads(summary.read_text(encoding="utf-8"))["recipe"]
        return all(_plain(old[k]) == _plain(getattr(recipe, k)) for k in DATA_FIELDS)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return False


def _same_training(planned: dict[str, Any], stored: dict[str, Any]) -> bool:
    """The planned trajectory's training record against a manifest's: a training field the older release did
    not have counts as its default; the schedule and the data set's name must be there and equal."""
    defaults = dataclasses.asdict(TrainConfig())
    for key, value in planned.items():
        if key not in stored and key not in defaults:
            return False
        if _plain(stored.get(key, defaults.get(key))) != _plain(value):
            return False
    return True


def _matches(planned: Trajectories, stored: Trajectories) -> bool:
    architecture = ("family", "width", "depth", "in_shape", "num_classes", "options")
    return (all(_plain(getattr(planned, n)) == _plain(getattr(stored, n)) for n in architecture)
            and planned.seeds[0] in stored.seeds and _same_training(planned.config, stored.config))


def legacy_results(directory: Path, recipe: Recipe, jobs: Sequence[TrainJob],
                   dataset: Dataset) -> dict[str, TrajectoryResult]:
    """Job id -> the result of each planned job an old folder's checkpoints hold (see the module docstring);
    empty when the folder has none, or none of these settings."""
    checkpoints, summary = directory / OLD_CHECKPOINTS, directory / "summary.json"
    if not (checkpoints / "manifest.json").is_file() or not _same_data(summary, recipe):
        return {}
    try:
        stored = load_trajectories(checkpoints)
    except EnsplitError as error:
        note(f"the checkpoints of an earlier run in {checkpoints} are not used: {error}")
        return {}
    results = {}
    for job in jobs:
        planned = job_trajectory(job, dataset, [], [], [])
        if _matches(planned, stored):
            k = stored.seeds.index(job.seeds[0])
            trajectory = job_trajectory(job, dataset, stored.epochs, stored.phases, stored.states[k])
            results[job.job_id] = trajectory_result(job, trajectory, dataset, None)
    return results
