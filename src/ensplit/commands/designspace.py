"""`ensplit designspace`: single network vs width-/depth-equivalent ensembles over a grid (seed 001's EST)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "designspace"
HELP = ("train single networks and their width- and depth-equivalent ensembles over a (width, depth) grid; "
        "map which wins per (params, epochs) and the Ensemble Switchover Threshold")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", default="mlp", help="model family (default mlp; see docs/budget.md)")
    parser.add_argument("--members", type=int, nargs="+", required=True, metavar="K", help="ensemble sizes (>= 2)")
    parser.add_argument("--widths", type=int, nargs="+", required=True, help="widths of the single networks")
    parser.add_argument("--depths", type=int, nargs="+", required=True, help="depths of the single networks")
    parser.add_argument("--epochs", type=int, required=True, help="training epochs (the heat maps' y axis)")
    parser.add_argument("--dataset", default="mnist1d", help="'mnist1d' (default) or a path to image data")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--out", default="designspace-out", help="folder for report.html and results.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first member (default 0)")
    parser.add_argument("--optimizer", default="sgd", choices=("sgd", "adam", "adamw"))
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: TrainConfig's)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--schedule", default="cosine", choices=("cosine", "step", "constant"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                        help="bf16: autocast in training and evaluation")
    parser.add_argument("--train-subset", type=int, default=None, help="use N training examples (quick runs)")
    parser.add_argument("--test-subset", type=int, default=None, help="use N test examples (quick runs)")
    parser.add_argument("--timing-steps", type=int, default=None,
                        help="optimiser steps per timed run, scaled to an epoch (default: a whole epoch)")
    parser.add_argument("--timing-repeats", type=int, default=3, help="timed runs after one warm-up (median)")
    parser.add_argument("--large-batch", type=int, default=1024, help="batch size of the large-batch inference")
    parser.add_argument("--est-fraction", type=float, default=1.0,
                        help="share of the cells beyond the EST that ensembles must win (default 1.0: all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _dataset(args: argparse.Namespace):
    import torch

    from ensplit.data import load_dataset
    from ensplit.errors import EnsplitError

    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise EnsplitError(f"invalid --device {args.device!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EnsplitError(f"--device {args.device} requested but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise EnsplitError(f"--device must be cpu or cuda[:N], got {args.device!r}")
    for name in ("train_subset", "test_subset"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise EnsplitError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    data = load_dataset(args.dataset)
    if args.train_subset or args.test_subset:
        data = data.subset(train=args.train_subset, test=args.test_subset, seed=args.seed)
    return data.to(device)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import json

    import torch

    from ensplit import __version__
    from ensplit.report.design_space_figures import report_sections
    from ensplit.report.html import write_report
    from ensplit.study.designspace import DesignSpaceConfig, run_design_space
    from ensplit.train import TrainConfig

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    train_options = dict(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         schedule=args.schedule, precision=args.precision)
    if args.lr is not None:
        train_options["lr"] = args.lr
    config = DesignSpaceConfig(
        family=args.family, widths=tuple(args.widths), depths=tuple(args.depths), members=tuple(args.members),
        train=TrainConfig(**train_options), seed=args.seed, timing_steps=args.timing_steps,
        timing_repeats=args.timing_repeats, large_batch=args.large_batch, measure_memory=not args.no_memory,
        est_fraction=args.est_fraction)
    dataset = _dataset(args)
    result = run_design_space(config, dataset, progress=not args.quiet)
    out = Path(args.out)
    if not args.quiet:
        import sys

        for k, t in sorted(result.est.items()):
            where = f"{t.params:,} params, {t.epochs} epochs" if t.params is not None else "not reached in this grid"
            print(f"EST for K={k}: {where}", file=sys.stderr)
    rows = [r.to_json() for r in result.records]
    notes = [f"Data: {result.dataset} ({dataset.x_train.shape[0]} train / {dataset.x_test.shape[0]} test), "
             f"device {result.device}, {torch.get_num_threads()} CPU thread(s), ensplit {__version__}.",
             f"Training: {config.train}.", *(f"Not formable: {u}." for u in result.unformable)]
    write_report(out / "report.html", f"Design space: {args.family}, K = {', '.join(map(str, args.members))}",
                 report_sections(result.records, result.est, result.memory_method, notes),
                 subtitle=" ".join(notes[:1]))
    import dataclasses

    from ensplit.cli import to_jsonable
    from ensplit.store import git_commit

    summary = {"ensplit": __version__, "git_commit": git_commit(), "config": dataclasses.asdict(config),
               "dataset": result.dataset, "device": result.device, "threads": torch.get_num_threads(),
               "est": {k: vars(v) for k, v in result.est.items()}, "memory_method": result.memory_method,
               "unformable": result.unformable, "notes": notes, "records": rows,
               "full_records": [dataclasses.asdict(r) for r in result.records]}
    (out / "results.json").write_text(json.dumps(to_jsonable(summary), indent=1))
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'class':17} {'w':>5} {'d':>3} {'K':>3} {'params':>9} {'acc':>7} {'s/ep':>8} {'s/ep bat':>8} "
             f"{'t→single':>8} {'ms b=1':>8} {'MiB':>7}"]
    for r in rows:
        def fmt(value: Any, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        mem = None if r["peak_memory_bytes"] is None else r["peak_memory_bytes"] / 2**20
        lines.append(f"{r['class']:17} {r['width']:>5} {r['depth']:>3} {r['members']:>3} {r['params']:>9} "
                     f"{r['accuracy_by_epoch'][-1]:>7.4f} {fmt(r['seconds_per_epoch'], '8.3g')} "
                     f"{fmt(r['seconds_per_epoch_batched'], '8.3g')} {fmt(r['time_to_single_accuracy'], '8.3g')} "
                     f"{fmt(r['inference_ms_batch1'], '8.3g')} {fmt(mem, '7.2f')}")
    return "\n".join(lines)
