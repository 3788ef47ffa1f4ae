"""Field groups shared by the configs: each field's type, bounds, help and default written once.

- `RunnerFields`: where an experiment's training jobs run (executor, workers, Ray address, GPU share);
  every experiment that trains takes them.
- `DeviceFields`: where this process computes (device, CPU threads); the recipe takes them.
- `AnalysisFields`: how pools of networks are analysed (calibration, CNLL splits, the prediction and its
  bands, the power-law fit, the temperature grid); the study takes them, and `analyze` of `.npz` pools
  checks its arguments against the same options.

Use: `@config_class(groups=(AnalysisFields, RunnerFields))`; the groups' fields come after the class's own.
"""

from __future__ import annotations

from typing import Any

from ensplit.settings.factory import FieldGroup
from ensplit.settings.options import (
    Address,
    Bootstrap,
    CnllSplits,
    Device,
    ExecutorName,
    FitObjective,
    GpusPerJob,
    PredictMaxN,
    PredictPool,
    PredictResample,
    Temperature,
    TemperatureGrid,
    Threads,
    Workers,
    check_address,
    check_device_name,
)


class RunnerFields(FieldGroup):
    """Where the training jobs run: in this process, a process pool, or Ray."""

    title = "runner: where the training jobs run"
    executor: ExecutorName = "local"
    workers: Workers = 2
    address: Address | None = None
    gpus_per_job: GpusPerJob = 0.25

    @staticmethod
    def check(config: Any) -> None:
        check_address(config.executor, config.address)


class DeviceFields(FieldGroup):
    """Where this process computes: the torch device and its CPU threads."""

    title = "device"
    device: Device = "auto"
    threads: Threads | None = None

    @staticmethod
    def check(config: Any) -> None:
        check_device_name(config.device)


class AnalysisFields(FieldGroup):
    """How pools of networks are analysed. `temperature_grid` has no default here (the analysis owns its
    grid): a config taking the group assigns one (`temperature_grid = DEFAULT_TAUS`)."""

    title = "analysis"
    temperature: Temperature = "before"
    cnll_splits: CnllSplits = 5
    predict_max_n: PredictMaxN = 4
    predict_pool: PredictPool = 6
    bootstrap: Bootstrap = 40
    predict_resample: PredictResample = "bootstrap"
    fit_objective: FitObjective = "nll"
    temperature_grid: TemperatureGrid


__all__ = ["AnalysisFields", "DeviceFields", "FieldGroup", "RunnerFields"]
