"""`ensplit study`: the main job — pools at each width, CNLL power laws, the optimal memory split."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ensplit.study.config import StudyConfig, build_config, load_toml
from ensplit.train.config import TrainConfig

NAME = "study"
HELP = "train pools of networks at several widths and find the optimal memory split (seed 000)"
DEFAULT_OUT = "ensplit-study"
_SKIP = {"train"}


def add_config_overrides(parser: argparse.ArgumentParser) -> None:
    """One `--field` option per StudyConfig and TrainConfig field (lists as comma-separated values; a
    boolean flag alone means true, so `--compile` and `--compile true` are the same)."""
    group = parser.add_argument_group("config overrides (each beats --config)")
    for f in [*fields(StudyConfig), *fields(TrainConfig)]:
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = f"({f.type})".replace("'", "")
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=f"override_{f.name}", default=None, nargs="?", const="true",
                               metavar="VALUE", help=f"{kind} alone: true")
        else:
            group.add_argument(flag, dest=f"override_{f.name}", default=None, metavar="VALUE", help=kind)


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
