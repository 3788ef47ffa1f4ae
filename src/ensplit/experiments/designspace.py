"""The design-space study of Wasay & Idreos: single networks vs width- and depth-equivalent ensembles.

For every single network S(w, d) of the grid and every ensemble size K, the budget planner gives the
width-equivalent ensemble (K members of width w, depth d') and the depth-equivalent one (K members of
width w', depth d). Each distinct network configuration is trained once (member-batched), with the
ensemble's test accuracy recorded after every epoch, so one run fills the whole epochs axis. Timing,
inference and memory are measured separately on fresh copies (see `ensplit.train.measure`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from ensplit import metrics
from ensplit._version import provenance
from ensplit.analysis.design_space import (
    DEPTH_EQUIVALENT,
    SINGLE,
    WIDTH_EQUIVALENT,
    DesignRecord,
    SwitchoverThreshold,
    thresholds,
    time_to_accuracy,
)
from ensplit.data.dataset import Dataset
from ensplit.ensembles import build_member, deep_ensemble
from ensplit.errors import EnsplitError
from ensplit.jsonable import to_jsonable
from ensplit.models import get_family
from ensplit.models.scaling import equivalents
from ensplit.parsing import require_distinct
from ensplit.recipe import Recipe, build_settings
from ensplit.runs.resources import check_training
from ensplit.train import measure, predict_log_probs, train
from ensplit.train.config import config_class

Size = Annotated[int, Field(ge=1, le=1_000_000)]
# planner(family, width, depth, members, in_shape, num_classes) -> (weq depth or None, deq width or None)
Planner = Callable[[str, int, int, int, tuple[int, ...], int], tuple[int | None, int | None]]


def plan_equivalents(family: str, width: int, depth: int, members: int, in_shape: tuple[int, ...],
                     num_classes: int, **options: Any) -> tuple[int | None, int | None]:
    """The budget planner's width-equivalent depth d' and depth-equivalent width w' (None: does not fit)."""
    plan = equivalents(family, depth=depth, width=width, members=members, in_shape=in_shape,
                       num_classes=num_classes, **options)
    return plan.width_equivalent.depth, plan.depth_equivalent.width


@config_class
class DesignSpaceConfig:
    """The grid and how to measure it; the recipe says how every network is trained.

    timing_steps: optimiser steps per timed run (None = a whole epoch), scaled to one epoch.
    large_batch: the batch size of the large-batch inference timing.
    est_fraction: share of the cells beyond the EST that ensembles must win (1.0 = all, Wasay & Idreos's reading).
    """

    recipe: Recipe = field(default_factory=Recipe)
    widths: Annotated[tuple[Size, ...], Field(min_length=1, max_length=64, description="widths of the single "
                                              "networks, comma-separated")] = (32, 64, 128, 256)
    depths: Annotated[tuple[Size, ...], Field(min_length=1, max_length=64, description="depths of the single "
                                              "networks, comma-separated")] = (2, 4)
    members: Annotated[tuple[Annotated[int, Field(ge=2, le=1024)], ...], Field(
        min_length=1, max_length=64, description="ensemble sizes K (>= 2), comma-separated")] = (2, 4)
    timing_steps: Annotated[int, Field(ge=1, le=10**7, description="optimiser steps per timed run, scaled to an "
                                                                   "epoch (default: a whole epoch)")] | None = None
    timing_warmup: Annotated[int, Field(ge=0, le=1000, description="untimed warm-up runs")] = 1
    timing_repeats: Annotated[int, Field(ge=1, le=1000, description="timed runs (median)")] = 3
    inference_repeats: Annotated[int, Field(ge=1, le=1000, description="timed inference runs (median)")] = 5
    large_batch: Annotated[int, Field(ge=1, le=1 << 20, description="batch size of the large-batch "
                                                                    "inference")] = 1024
    measure_memory: Annotated[bool, Field(description="measure peak training memory")] = True
    memory_steps: Annotated[int, Field(ge=1, le=1000, description="training steps of a memory "
                                                                  "measurement")] = 3
    est_fraction: Annotated[float, Field(gt=0, le=1, description="share of the cells beyond the EST that "
                                                                 "ensembles must win")] = 1.0

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "members"):  # a repeated value would train and report the same rows twice
            require_distinct(name, getattr(self, name))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> DesignSpaceConfig:
        return build_settings(cls, "designspace", values)


@dataclass
class DesignSpaceResult:
    """Every record (triples single, weq, deq per (w, d, K), in grid order), the EST per K, and notes.
    `to_json()` is what `ensplit designspace --json` prints."""

    config: DesignSpaceConfig
    dataset: str
    device: str
    records: list[DesignRecord]
    est: dict[int, SwitchoverThreshold]
    memory_method: str
    unformable: list[str] = field(default_factory=list)
    report: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({"recipe": self.config.recipe.to_json(), "dataset": self.dataset, "device": self.device,
                            "est": {str(k): vars(v) for k, v in sorted(self.est.items())},
                            "memory_method": self.memory_method, "unformable": self.unformable,
                            "records": [r.to_json() for r in self.records],
                            "report": None if self.report is None else str(self.report), **provenance()})


@dataclass
class _Trained:
    accuracy_by_epoch: list[float]
    member_accuracy: float
    nll: float
    cnll: float


def build_network(family: str, seeds: Sequence[int], batched: bool, device: str, **kwargs: Any) -> nn.Module:
    """One plain network (seeds of length 1, not batched) or a member-batched ensemble, on `device`.
    A module-level function so spawned memory workers can unpickle a `partial` of it."""
    if not batched:
        return build_member(family, seeds[0], **kwargs).to(device)
    return deep_ensemble(family, list(seeds), **kwargs).to(device)


def _log(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _kwargs(recipe: Recipe, width: int, depth: int, dataset: Dataset) -> dict[str, Any]:
    return dict(width=width, depth=depth, in_shape=dataset.in_shape, num_classes=dataset.num_classes,
                **recipe.options)


def _train_config(recipe: Recipe, width: int, depth: int, seeds: Sequence[int], dataset: Dataset,
                  progress: bool, label: str) -> _Trained:
    device, config = dataset.x_train.device, recipe.train
    model = build_network(recipe.family, seeds, True, str(device), **_kwargs(recipe, width, depth, dataset))
    accuracy: list[float] = []
    last: dict[str, torch.Tensor] = {}

    def on_epoch(epoch: int, trained: nn.Module) -> None:
        lp = predict_log_probs(trained, dataset.x_test, dataset, precision=config.precision)  # [M, N, C]
        accuracy.append(float(metrics.accuracy(metrics.ensemble_log_probs(lp), dataset.y_test)))
        last["lp"] = lp

    result = train(model, dataset, config, list(seeds), progress=progress, on_epoch=on_epoch, description=label)
    if any(result.failed):
        _log(f"  warning: {label}: {sum(result.failed)} member(s) diverged", progress)
    lp, labels = last["lp"].double().cpu(), dataset.y_test.cpu()
    member_accuracy = float(metrics.accuracy(lp, labels).mean())
    nll = float(metrics.nll(metrics.ensemble_log_probs(lp), labels))
    return _Trained(accuracy, member_accuracy, nll, float(metrics.cnll_ttcv(lp, labels)))


def _measure(width: int, depth: int, seeds: Sequence[int], dataset: Dataset,
             config: DesignSpaceConfig, memory_cache: dict[tuple[int, int, int], int | None]) -> dict[str, object]:
    """Per-epoch time (one after another and member-batched), inference ms, peak memory, layer count."""
    device = str(dataset.x_train.device)
    family, kwargs = config.recipe.family, _kwargs(config.recipe, width, depth, dataset)
    train_cfg = config.recipe.train
    k = len(seeds)
    steps_per_epoch = measure.steps_in_epoch(dataset.x_train.shape[0], train_cfg.batch_size)
    steps = min(steps_per_epoch, config.timing_steps or steps_per_epoch)
    x = dataset.prepare(dataset.x_train[: max(4 * train_cfg.batch_size, 1)]).float()
    y = dataset.y_train[: x.shape[0]]
    plains = [build_network(family, [s], False, device, **kwargs) for s in seeds]
    timing = dict(steps=steps, steps_per_epoch=steps_per_epoch, warmup=config.timing_warmup,
                  repeats=config.timing_repeats)
    sequential = measure.epoch_seconds(plains, x, y, train_cfg, [None] * k, **timing)
    batched_model = build_network(family, seeds, True, device, **kwargs)
    batched = measure.epoch_seconds([batched_model], x, y, train_cfg, [k], **timing)
    x_test = dataset.prepare(dataset.x_test[: config.large_batch]).float()
    infer = dict(warmup=config.timing_warmup, repeats=config.inference_repeats)
    batch1 = measure.inference_ms_per_example(plains, x_test, 1, calls=20, **infer)
    large = measure.inference_ms_per_example(plains, x_test, config.large_batch, **infer)
    out: dict[str, object] = dict(seconds_per_epoch=sequential.median, seconds_per_epoch_batched=batched.median,
                                  inference_ms_batch1=batch1, inference_ms_large_batch=large,
                                  layers=k * measure.parameterised_layers(plains[0]))
    del plains, batched_model
    if config.measure_memory:
        mem_x, mem_y = x[: 2 * train_cfg.batch_size], y[: 2 * train_cfg.batch_size]
        for members, key in ((1, "peak_memory_bytes"), (k, "peak_memory_bytes_batched")):
            cache_key = (width, depth, members)
            if cache_key not in memory_cache:
                factory = partial(build_network, family, list(seeds[:members]), members > 1, device, **kwargs)
                memory_cache[cache_key] = measure.peak_training_memory(
                    factory, mem_x, mem_y, members if members > 1 else None, train_cfg, steps=config.memory_steps)
            out[key] = memory_cache[cache_key]
    return out


def run_design_space(config: DesignSpaceConfig, dataset: Dataset, progress: bool = True,
                     planner: Planner | None = None) -> DesignSpaceResult:
    """Train and measure every class at every grid point; `dataset` must already sit on the device."""
    recipe = config.recipe
    family = get_family(recipe.family).name
    planner = planner or partial(plan_equivalents, **recipe.options)
    in_shape, classes = dataset.in_shape, dataset.num_classes
    grid = [(w, d) for d in config.depths for w in config.widths]
    for _, d in grid:
        if not get_family(family).valid_depth(d):
            raise EnsplitError(f"invalid depth {d} for family {family!r}: valid depths are "
                               f"{get_family(family).depth_rule}")
    # What to build: (width, depth, members) -> the records that use it.
    plans: list[tuple[int, int, int, str, int, int]] = []  # (w, d, K, class, member width, member depth)
    unformable: list[str] = []
    for w, d in grid:
        for k in config.members:
            weq_depth, deq_width = planner(family, w, d, k, in_shape, classes)
            plans.append((w, d, k, SINGLE, w, d))
            for name, member_w, member_d in ((WIDTH_EQUIVALENT, w, weq_depth), (DEPTH_EQUIVALENT, deq_width, d)):
                if member_w is None or member_d is None:
                    unformable.append(f"{name} of K={k} for width {w}, depth {d}: no member fits the budget")
                else:
                    plans.append((w, d, k, name, member_w, member_d))
    _require_an_ensemble(config, plans)
    configs = sorted({(mw, md, 1 if c == SINGLE else k) for _, _, k, c, mw, md in plans},
                     key=lambda t: (t[2], recipe.params(t[0], dataset, t[1])))
    for mw, md, k in configs:  # refuse a grid that cannot fit before anything is allocated
        check_training(k * recipe.params(mw, dataset, md), recipe.train.optimizer, dataset.x_train.device,
                       f"training {k} member(s) of width {mw}, depth {md}", "lower --widths or --depths")
    trained: dict[tuple[int, int, int], _Trained] = {}
    measured: dict[tuple[int, int, int], dict[str, object]] = {}
    memory_cache: dict[tuple[int, int, int], int | None] = {}
    for i, (mw, md, k) in enumerate(configs, 1):
        seeds = list(range(recipe.seed, recipe.seed + k))
        label = f"[{i}/{len(configs)}] {family} width {mw} depth {md} × {k}"
        trained[(mw, md, k)] = _train_config(recipe, mw, md, seeds, dataset, progress, label)
        measured[(mw, md, k)] = _measure(mw, md, seeds, dataset, config, memory_cache)
        t, m = trained[(mw, md, k)], measured[(mw, md, k)]
        _log(f"{label}: accuracy {t.accuracy_by_epoch[-1]:.4f}, {m['seconds_per_epoch']:.3g} s/epoch "
             f"({m['seconds_per_epoch_batched']:.3g} batched)", progress)
    records = []
    for w, d, k, name, mw, md in plans:
        members = 1 if name == SINGLE else k
        t, m = trained[(mw, md, members)], measured[(mw, md, members)]
        records.append(DesignRecord(
            design_class=name, budget_width=w, budget_depth=d, group_members=k, width=mw, depth=md,
            members=members, params=members * recipe.params(mw, dataset, md),
            accuracy_by_epoch=list(t.accuracy_by_epoch), member_accuracy=t.member_accuracy, nll=t.nll,
            cnll=t.cnll, **m))
    _fill_time_to_accuracy(records)
    est = thresholds(records, min_fraction=config.est_fraction)
    return DesignSpaceResult(config, dataset.name, str(dataset.x_train.device), records, est,
                             measure.memory_method(dataset.x_train.device), unformable)


def _require_an_ensemble(config: DesignSpaceConfig, plans: Sequence[tuple[int, int, int, str, int, int]]) -> None:
    """Refuse, before any training, a grid where no ensemble of any K fits any single network's budget: it
    would train only single networks and have nothing to compare them with."""
    if any(name != SINGLE for _, _, _, name, _, _ in plans):
        return
    raise EnsplitError(f"members = {list(config.members)}: no width- or depth-equivalent ensemble fits the "
                       f"budget of any single network (widths {list(config.widths)}, depths {list(config.depths)}): "
                       "lower --members or raise --widths or --depths")


def _fill_time_to_accuracy(records: list[DesignRecord]) -> None:
    """Seconds (paper protocol: members one after another) to reach the single network's best accuracy."""
    best = {(r.budget_width, r.budget_depth): max(r.accuracy_by_epoch) for r in records if r.design_class == SINGLE}
    for i, r in enumerate(records):
        target = best[(r.budget_width, r.budget_depth)]
        seconds = time_to_accuracy(r.accuracy_by_epoch, target, r.seconds_per_epoch)
        records[i] = replace(r, time_to_single_accuracy=seconds)


def run_designspace(config: DesignSpaceConfig | None = None, out: str | Path = "designspace-out",
                    progress: bool = True) -> DesignSpaceResult:
    """The whole experiment: load the recipe's data on its device, train and measure the grid, write
    `out/report.html` and `out/results.json` (every record, with the recipe, version and commit)."""
    from ensplit.store import folder_lock
    from ensplit.store.ownership import claim_folder, json_with, report_and

    config = config or DesignSpaceConfig()
    out = Path(out)
    with folder_lock(out, "designspace"):  # an unusable --out is refused before any training
        results = json_with(("ensplit_version", "ensplit"), "records")  # "ensplit": a folder of an older release
        claim_folder(out, "designspace", report_and({"results.json": results}))
        dataset = config.recipe.load_data()
        result = run_design_space(config, dataset, progress)
        _write_designspace(config, result, dataset, out, progress)
    return result


def _write_designspace(config: DesignSpaceConfig, result: DesignSpaceResult, dataset: Any, out: Path,
                       progress: bool) -> None:
    """Log the EST per K and write `out/report.html` and `out/results.json`."""
    from ensplit._version import __version__
    from ensplit.reports.design_space_figures import report_sections
    from ensplit.reports.html import write_report
    from ensplit.store import atomic_write_text

    for k, t in sorted(result.est.items()):
        where = f"{t.params:,} params, {t.epochs} epochs" if t.params is not None else "not reached in this grid"
        _log(f"EST for K={k}: {where}", progress)
    notes = [f"Data: {result.dataset} ({dataset.x_train.shape[0]} train / {dataset.x_test.shape[0]} test), "
             f"device {result.device}, {torch.get_num_threads()} CPU thread(s), ensplit {__version__}.",
             f"Training: {config.recipe.train}.", *(f"Not formable: {u}." for u in result.unformable)]
    result.report = write_report(out / "report.html", f"Design space: {config.recipe.family}, K = "
                                 f"{', '.join(map(str, config.members))}",
                                 report_sections(result.records, result.est, result.memory_method, notes),
                                 subtitle=" ".join(notes[:1]))
    summary = {**result.to_json(), "notes": notes,
               "threads": torch.get_num_threads(), "full_records": [vars(r) for r in result.records]}
    atomic_write_text(out / "results.json", json.dumps(to_jsonable(summary), indent=1))
