"""`ensplit landscape`: trajectories, weight/function-space similarity, t-SNE, interpolation, subspace
sampling and SWA (Fort et al. 2019) on one family, written as a report page with a JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ensplit.cli_types import family_options, key_value
from ensplit.errors import EnsplitError

NAME = "landscape"
HELP = "diversity and loss-landscape analysis of independent inits vs subspace samples and SWA (Fort et al.)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (report.html, summary.json, checkpoints/)")
    parser.add_argument("--family", default="mlp", help="model family (default mlp)")
    parser.add_argument("--width", type=_positive, default=256, help="the family's width knob (default 256)")
    parser.add_argument("--depth", type=int, help="depth (default: the family's)")
    parser.add_argument("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="family option, e.g. norm=true for batch norm (repeatable)")
    parser.add_argument("--inits", type=_positive, default=5, help="independent random inits (default 5, >= 2)")
    parser.add_argument("--epochs", type=_positive, default=30, help="training epochs per init (default 30)")
    parser.add_argument("--every", type=_positive, default=5, help="checkpoint every N epochs (default 5)")
    parser.add_argument("--tail-epochs", type=int, default=10,
                        help="constant-rate epochs after training, checkpointed each epoch, for SWA and the tail "
                             "Gaussians (default 10; 0 skips them)")
    parser.add_argument("--tail-lr", type=float, help="learning rate of the tail (default lr / 2)")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate, cosine schedule (default 0.05)")
    parser.add_argument("--samples", type=_positive, default=8, help="networks per sampler scale (default 8)")
    parser.add_argument("--rank", type=_positive, default=5, help="rank of the low-rank samplers (default 5)")
    parser.add_argument("--bezier-epochs", type=int, default=10, help="epochs to fit the Bezier curve (0: skip)")
    parser.add_argument("--data", default="mnist1d", help="data set: mnist1d or a path (default mnist1d)")
    parser.add_argument("--subset", type=int, nargs=2, metavar=("TRAIN", "TEST"),
                        help="use a seeded random subset of the data (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of init 0; init k uses seed + k (default 0)")
    parser.add_argument("--threads", type=_positive, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--trajectories", help="reuse checkpoints saved by an earlier run (a checkpoints/ dir)")


def _log(message: str) -> None:
    print(f"[landscape] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ensplit.analysis.landscape_run import analyse_trajectories
    from ensplit.data import load_dataset
    from ensplit.report import write_report
    from ensplit.report.landscape_figures import landscape_sections
    from ensplit.study.trajectories import load_trajectories, train_trajectories
    from ensplit.train import TrainConfig

    if args.inits < 2:
        raise EnsplitError("--inits must be at least 2 (the analysis compares independent inits)")
    if args.tail_epochs < 0 or args.bezier_epochs < 0:
        raise EnsplitError("--tail-epochs and --bezier-epochs must be >= 0")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    start = time.perf_counter()
    dataset = load_dataset(args.data)
    if args.subset:
        dataset = dataset.subset(train=args.subset[0], test=args.subset[1], seed=args.seed)
    if args.trajectories:
        trajectories = load_trajectories(args.trajectories)
        _log(f"loaded {trajectories.inits} trajectories from {args.trajectories}")
    else:
        options = family_options(args.family, args.option)
        config = TrainConfig(epochs=args.epochs, lr=args.lr)
        seeds = [args.seed + k for k in range(args.inits)]
        _log(f"training {args.inits} inits of {args.family} width {args.width} for {args.epochs}+{args.tail_epochs}"
             " epochs")
        trajectories = train_trajectories(dataset, args.family, args.width, seeds, config, depth=args.depth,
                                          every=args.every, tail_epochs=args.tail_epochs, tail_lr=args.tail_lr,
                                          out=out / "checkpoints", progress=True, **options)
    train_seconds = time.perf_counter() - start
    result = analyse_trajectories(trajectories, dataset, samples=args.samples, rank=args.rank,
                                  bezier_epochs=args.bezier_epochs, seed=args.seed, log=_log)
    summary = {**result.summary, "out": str(out)}
    summary["seconds"] = {"training": round(train_seconds, 2), **summary["seconds"]}
    _log("writing the report")
    write_report(out / "report.html", "Loss landscape: independent inits vs subspace samples",
                 landscape_sections(result), subtitle=f"ensplit landscape, {summary['family']} width "
                 f"{summary['width']}")
    summary["seconds"]["total"] = round(time.perf_counter() - start, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def render(result: dict[str, Any]) -> str:
    cos, dis = result["cosine"], result["disagreement"]
    lines = [
        f"{result['family']} width {result['width']}, {result['inits']} inits: report {result['out']}/report.html",
        f"cosine        within {cos['within']:.3f}  across {cos['across']:.3f}  final solutions "
        f"{cos['across_final']:.3f}",
        f"disagreement  within {dis['within']:.3f}  across {dis['across']:.3f}  final solutions "
        f"{dis['across_final']:.3f}",
        f"{'method':<20} {'mean acc':>9} {'mean div':>9} {'div @ inits acc':>16} {'acc @ inits div':>16}",
        f"{'independent inits':<20} {result['independent']['mean_accuracy']:>9.3f} "
        f"{result['independent']['mean_normalized_diversity']:>9.3f} "
        f"{result['independent']['mean_normalized_diversity']:>16.3f} {result['independent']['mean_accuracy']:>16.3f}",
    ]
    for name, v in result["samplers"].items():
        at = f"{v['diversity_at_independent_accuracy']:.3f}" + ("" if v["reaches_independent_accuracy"] else "*")
        acc_at = f"{v['accuracy_at_independent_diversity']:.3f}" + ("" if v["reaches_independent_diversity"] else "*")
        lines.append(f"{name:<20} {v['mean_accuracy']:>9.3f} {v['mean_normalized_diversity']:>9.3f} {at:>16} "
                     f"{acc_at:>16}")
    ens = result["ensembles"]
    for name in [k for k in ens if k != "sizes"]:
        lines.append(f"{name} ensembles n={ens['sizes'][-1]}: accuracy {ens[name]['accuracy'][-1]:.3f}, "
                     f"NLL {ens[name]['nll'][-1]:.3f}, CNLL {ens[name]['cnll'][-1]:.3f}")
    if any(not (v["reaches_independent_accuracy"] and v["reaches_independent_diversity"])
           for v in result["samplers"].values()):
        lines.append("* never as accurate (diverse) as the independent inits: value at its most accurate (diverse) "
                     "scale")
    return "\n".join(lines)
