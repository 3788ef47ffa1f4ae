"""`ensplit study`: the main job — pools at each width, CNLL power laws, the optimal memory split."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from ensplit.study.config import StudyConfig, build_config, load_toml
from ensplit.train.config import TrainConfig

NAME = "study"
HELP = "train pools of networks at several widths and find the optimal memory split (seed 000)"
DEFAULT_OUT = "ensplit-study"
_SKIP = {"train"}

FIELD_HELP = {
    "dataset": "mnist1d or a data folder/file (Parquet, image folders, CIFAR binary, IDX)",
    "num_samples": "MNIST-1D samples generated", "data_seed": "seed of the generated data set",
    "train_subset": "train on the first N training examples only", "test_subset": "evaluate on N test examples",
    "validation_fraction": "training fraction held out for validation predictions (and --tune)",
    "family": "model family (see `ensplit budget`)", "depth": "family depth (family default if unset)",
    "family_options": "family options (a table in --config)", "widths": "member widths, comma-separated",
    "pool_factor": "pool size rule ℓ = ⌈pool_factor · s_max / s⌉", "pool_min": "smallest pool per width",
    "pool_max": "largest pool per width", "members_per_run": "members trained together in one model",
    "seed": "base seed of all member seeds", "tune": "choose weight decay and dropout per width on validation",
    "tune_weight_decays": "weight decays tried by --tune", "tune_dropouts": "dropouts tried by --tune",
    "tune_networks": "networks per grid cell when tuning", "temperature": "calibrate before or after averaging",
    "cnll_splits": "test-time cross-validation splits", "predict_max_n": "prediction fits on n ≤ this",
    "predict_pool": "networks the prediction starts from", "bootstrap": "resamples for prediction bands",
    "device": "cpu, cuda or cuda:N", "executor": "local, process or ray", "workers": "process-pool workers",
    "address": "Ray cluster address (default: a local instance)",
    "gpus_per_job": "fraction of a GPU per Ray task (with --device cuda)",
    "threads": "torch CPU threads of this process (1 avoids oversubscription on a busy machine)",
    "epochs": "training epochs",
    "batch_size": "examples per member and step", "optimizer": "sgd, adam or adamw", "lr": "learning rate",
    "momentum": "SGD momentum", "nesterov": "Nesterov momentum", "weight_decay": "weight decay",
    "dropout": "dropout rate of the family's dropout layers", "schedule": "cosine, step or constant",
    "step_milestones": "epoch fractions of the step schedule", "step_gamma": "factor at each milestone",
    "label_smoothing": "label smoothing of the loss", "augment": "random crop and flip for images",
    "batching": "independent (own data order per member) or shared", "track_test_accuracy":
    "record test accuracy after every epoch", "precision": "fp32 or bf16 (autocast)",
    "compile": "torch.compile the training forward", "channels_last": "channels-last memory for image models",
}


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return None
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def add_config_overrides(parser: argparse.ArgumentParser) -> None:
    """One `--field` option per StudyConfig and TrainConfig field (lists as comma-separated values; a
    boolean flag alone means true, so `--compile` and `--compile true` are the same)."""
    group = parser.add_argument_group("config overrides (each beats --config)")
    for f in [*fields(StudyConfig), *fields(TrainConfig)]:
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = _default(f)
        text = f"{FIELD_HELP.get(f.name, f.name.replace('_', ' '))} ({f.type}".replace("'", "")
        text += "" if default in (None, {}) else f", default {default}"
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=f"override_{f.name}", default=None, nargs="?", const="true",
                               metavar="VALUE", help=text + "; alone: true)")
        else:
            group.add_argument(flag, dest=f"override_{f.name}", default=None, metavar="VALUE", help=text + ")")


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    values: dict[str, Any] = load_toml(args.config) if getattr(args, "config", None) else {}
    train_table = dict(values.pop("train", {}) or {})
    train_names = {f.name for f in fields(TrainConfig)}
    for key, value in vars(args).items():
        if key.startswith("override_") and value is not None:
            name = key.removeprefix("override_")
            if name in train_names:
                train_table[name] = value
            else:
                values[name] = value
    if train_table:
        values["train"] = train_table
    return build_config(values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file with study fields and a [train] table")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"study folder (default: ./{DEFAULT_OUT})")
    parser.add_argument("--no-report", action="store_true", help="skip writing report.html")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_overrides(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ensplit.study.analysis import analyze_store, summary_dict
    from ensplit.study.runner import run_study

    config = config_from_args(args)
    out = Path(args.out)
    store = run_study(config, out, progress=not args.quiet)
    analysis = analyze_store(store, config)
    if not args.no_report:
        from ensplit.report.study_report import write_study_report

        path = write_study_report(analysis, out / "report.html", config)
        print(f"ensplit study: report written to {path}", file=sys.stderr)
    return summary_dict(analysis, out)


def render(result: dict[str, Any]) -> str:
    from ensplit.study.analysis import render_summary

    return render_summary(result)
