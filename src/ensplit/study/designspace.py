"""The design-space study of seed 001: single networks vs width- and depth-equivalent ensembles.

For every single network S(w, d) of the grid and every ensemble size K, the budget planner gives the
width-equivalent ensemble (K members of width w, depth d') and the depth-equivalent one (K members of
width w', depth d). Each distinct network configuration is trained once (member-batched), with the
ensemble's test accuracy recorded after every epoch, so one run fills the whole epochs axis. Timing,
inference and memory are measured separately on fresh copies (see `ensplit.study.measure`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import torch
from torch import nn

from ensplit import metrics
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
from ensplit.ensembles import MemberBatchedEnsemble, build_member, stack_members
from ensplit.errors import EnsplitError
from ensplit.models import count_params, get_family
from ensplit.study import measure
from ensplit.train import TrainConfig, predict_log_probs, train

# planner(family, width, depth, members, in_shape, num_classes) -> (weq depth or None, deq width or None)
Planner = Callable[[str, int, int, int, tuple[int, ...], int], tuple[int | None, int | None]]


def plan_equivalents(family: str, width: int, depth: int, members: int, in_shape: tuple[int, ...],
                     num_classes: int) -> tuple[int | None, int | None]:
    """The budget planner's width-equivalent depth d' and depth-equivalent width w' (None: does not fit)."""
    from ensplit.models.scaling import equivalents

    plan = equivalents(family, depth=depth, width=width, members=members, in_shape=in_shape,
                       num_classes=num_classes)
    return plan.width_equivalent.depth, plan.depth_equivalent.width


@dataclass(frozen=True)
class DesignSpaceConfig:
    """The grid and how to measure it.

    timing_steps: optimiser steps per timed run (None = a whole epoch), scaled to one epoch.
    large_batch: the batch size of the large-batch inference timing.
    est_fraction: share of the cells beyond the EST that ensembles must win (1.0 = all, seed 001's reading).
    """

    family: str
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    members: tuple[int, ...]
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    timing_steps: int | None = None
    timing_warmup: int = 1
    timing_repeats: int = 3
    inference_repeats: int = 5
    large_batch: int = 1024
    measure_memory: bool = True
    memory_steps: int = 3
    est_fraction: float = 1.0

    def __post_init__(self) -> None:
        for name in ("widths", "depths", "members"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise EnsplitError(f"{name} must be positive integers, got {list(values)}")
        if 1 in self.members:
            raise EnsplitError("--members are ensemble sizes and must be >= 2 (the single network is always trained)")
        if self.timing_steps is not None and self.timing_steps < 1:
            raise EnsplitError(f"timing steps must be >= 1, got {self.timing_steps}")
        if self.large_batch < 1 or self.timing_repeats < 1:
            raise EnsplitError("large batch and timing repeats must be >= 1")
        if not 0.0 < self.est_fraction <= 1.0:
            raise EnsplitError(f"the EST fraction must be in (0, 1], got {self.est_fraction}")


@dataclass
class DesignSpaceResult:
    """Every record (triples single, weq, deq per (w, d, K), in grid order), the EST per K, and notes."""

    config: DesignSpaceConfig
    dataset: str
    device: str
    records: list[DesignRecord]
    est: dict[int, SwitchoverThreshold]
    memory_method: str
    unformable: list[str] = field(default_factory=list)


@dataclass
class _Trained:
    accuracy_by_epoch: list[float]
    member_accuracy: float
    nll: float
    cnll: float


def build_network(family: str, seeds: Sequence[int], batched: bool, device: str, **kwargs: object) -> nn.Module:
    """One plain network (seeds of length 1, not batched) or a member-batched ensemble, on `device`.
    A module-level function so spawned memory workers can unpickle a `partial` of it."""
    plains = [build_member(family, s, **kwargs) for s in seeds]
    if not batched:
        return plains[0].to(device)
    in_dims = len(kwargs.get("in_shape") or get_family(family).default_in_shape)
    return MemberBatchedEnsemble(stack_members(plains), len(seeds), in_dims).to(device)


def _log(message: str, progress: bool) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)




def _train_config(family: str, width: int, depth: int, seeds: Sequence[int], dataset: Dataset,
                  config: TrainConfig, progress: bool, label: str) -> _Trained:
    device = dataset.x_train.device
    model = build_network(family, seeds, True, str(device), width=width, depth=depth, in_shape=dataset.in_shape,
                          num_classes=dataset.num_classes)
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


def _measure(family: str, width: int, depth: int, seeds: Sequence[int], dataset: Dataset,
             config: DesignSpaceConfig, memory_cache: dict[tuple[int, int, int], int | None]) -> dict[str, object]:
    """Per-epoch time (one after another and member-batched), inference ms, peak memory, layer count."""
    device = str(dataset.x_train.device)
    kwargs = dict(width=width, depth=depth, in_shape=dataset.in_shape, num_classes=dataset.num_classes)
    train_cfg = config.train
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
                     planner: Planner = plan_equivalents) -> DesignSpaceResult:
    """Train and measure every class at every grid point; `dataset` must already sit on the device."""
    family = get_family(config.family).name
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
    configs = sorted({(mw, md, 1 if c == SINGLE else k) for _, _, k, c, mw, md in plans},
                     key=lambda t: (t[2], count_params(family, t[0], t[1], in_shape, classes)))
    trained: dict[tuple[int, int, int], _Trained] = {}
    measured: dict[tuple[int, int, int], dict[str, object]] = {}
    memory_cache: dict[tuple[int, int, int], int | None] = {}
    for i, (mw, md, k) in enumerate(configs, 1):
        seeds = list(range(config.seed, config.seed + k))
        label = f"[{i}/{len(configs)}] {family} width {mw} depth {md} × {k}"
        trained[(mw, md, k)] = _train_config(family, mw, md, seeds, dataset, config.train, progress, label)
        measured[(mw, md, k)] = _measure(family, mw, md, seeds, dataset, config, memory_cache)
        t, m = trained[(mw, md, k)], measured[(mw, md, k)]
        _log(f"{label}: accuracy {t.accuracy_by_epoch[-1]:.4f}, {m['seconds_per_epoch']:.3g} s/epoch "
             f"({m['seconds_per_epoch_batched']:.3g} batched)", progress)
    records = []
    for w, d, k, name, mw, md in plans:
        members = 1 if name == SINGLE else k
        t, m = trained[(mw, md, members)], measured[(mw, md, members)]
        records.append(DesignRecord(
            design_class=name, budget_width=w, budget_depth=d, group_members=k, width=mw, depth=md,
            members=members, params=members * count_params(family, mw, md, in_shape, classes),
            accuracy_by_epoch=list(t.accuracy_by_epoch), member_accuracy=t.member_accuracy, nll=t.nll,
            cnll=t.cnll, **m))
    _fill_time_to_accuracy(records)
    est = thresholds(records, min_fraction=config.est_fraction)
    return DesignSpaceResult(config, dataset.name, str(dataset.x_train.device), records, est,
                             measure.memory_method(dataset.x_train.device), unformable)


def _fill_time_to_accuracy(records: list[DesignRecord]) -> None:
    """Seconds (paper protocol: members one after another) to reach the single network's best accuracy."""
    best = {(r.budget_width, r.budget_depth): max(r.accuracy_by_epoch) for r in records if r.design_class == SINGLE}
    for i, r in enumerate(records):
        target = best[(r.budget_width, r.budget_depth)]
        seconds = time_to_accuracy(r.accuracy_by_epoch, target, r.seconds_per_epoch)
        records[i] = replace(r, time_to_single_accuracy=seconds)
