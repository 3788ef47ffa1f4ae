"""One ResNet training step on CIFAR-sized images: a member-batched k-member ensemble vs one network of the
same total size vs a Python loop over the k members (issue 25).

    python benchmarks/bench_resnet_step.py [--widths 4,8,16] [--members 4,8] [--depth 20] [--batch 64]
                                           [--repeats 3] [--processes 3] [--variants ...] [--out PATH]

The ensemble runs twice: as member-batched layers (grouped convolutions) and as `ensplit.train` runs it
(`execution="auto"`, which picks those layers or a member-by-member loop, `conv_strategy.choose_execution`).
Each of k members sees its own batch of B images `3×32×32` (as in `ensplit.train`); the single network, of
width `solve_width(resnet, k · params(member))` (its parameter count at most the ensemble's), sees one batch
of B, so both do about the same multiply-adds per step; the loop runs k separate plain members, each on its
own batch, and one optimiser step over all of them. A step is forward + backward + ensplit's default SGD
(`make_optimizer(TrainConfig())`: momentum 0.9, weight decay 5e-4). Each variant is also timed with the
model and its input in channels-last memory (`--channels-last`, what `ensplit.train` does with that option).

On the CPU each (width, k) case runs in `--processes` fresh processes, the cases one after another in each
round and the variants interleaved within each repeat, so load on a shared machine hits them alike; times are
the benchmark thread's CPU time (`time.thread_time`, one torch thread) and a ratio is the median of the
per-process ratios, shown with their range. Writes `benchmarks/results/member_resnet_cpu.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ensplit.ensembles import build_member, deep_ensemble
from ensplit.models import count_params
from ensplit.models.scaling import solve_width
from ensplit.train.allocator import keep_freed_memory
from ensplit.train.config import TrainConfig
from ensplit.train.loss import member_losses
from ensplit.train.optim import make_optimizer

IN_SHAPE = (3, 32, 32)
# name -> (what is timed, channels-last?)
# "batched": the member-batched layers (grouped convs, packed norms); "ensplit": the ensemble as `ensplit.train`
# runs it (`execution="auto"`: the member-batched layers, or its members one by one through a plain template
# where `conv_strategy.choose_execution` measured that faster)
VARIANTS = {
    "batched": ("member-batched", False), "batched NHWC": ("member-batched", True),
    "ensplit": ("ensplit", False), "ensplit NHWC": ("ensplit", True),
    "single": ("single", False), "single NHWC": ("single", True),
    "loop": ("loop", False), "loop NHWC": ("loop", True),
}


def layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def build_steps(width: int, members: int, depth: int, batch: int, variants: list[str]
                ) -> tuple[dict[str, Callable[[], None]], dict[str, int]]:
    """The step of every variant (fresh models each, so no variant's layout leaks into another's)."""
    seeds = list(range(members))
    member_params = count_params("resnet", width, depth)
    single_width = solve_width("resnet", members * member_params, depth)
    torch.manual_seed(123)
    x = torch.randn(members, batch, *IN_SHAPE)
    y = torch.randint(0, 10, (members, batch))
    steps: dict[str, Callable[[], None]] = {}
    for name in variants:
        kind, channels_last = VARIANTS[name]
        fmt = {"memory_format": torch.channels_last} if channels_last else {}
        if kind in ("member-batched", "ensplit"):
            execution = "batched" if kind == "member-batched" else "auto"
            model = deep_ensemble("resnet", seeds, execution=execution, width=width, depth=depth).to(**fmt)
            models = [model]
        elif kind == "single":
            models = [build_member("resnet", 0, width=single_width, depth=depth).to(**fmt)]
        else:
            models = [build_member("resnet", s, width=width, depth=depth).to(**fmt) for s in seeds]
        optimizer = make_optimizer([p for m in models for p in m.parameters()], TrainConfig())
        steps[name] = _step(kind, models, optimizer, x, y, channels_last)
    sizes = {"member": member_params, "ensemble": members * member_params,
             "single": count_params("resnet", single_width, depth), "single_width": single_width,
             "execution": deep_ensemble("resnet", seeds, width=width, depth=depth).resolved_execution(x)}
    return steps, sizes


def _step(kind: str, models: list[nn.Module], optimizer: torch.optim.Optimizer, x: torch.Tensor,
          y: torch.Tensor, channels_last: bool) -> Callable[[], None]:
    if kind in ("member-batched", "ensplit"):
        def step() -> None:
            loss = member_losses(models[0](x), y)  # logits [k, B, 10]; the loss ensplit.train minimises
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
    elif kind == "single":
        x0 = layout(x[0], channels_last)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(models[0](x0), y[0]).backward()
            optimizer.step()
    else:
        xs = [layout(x[i], channels_last) for i in range(len(models))]

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            for i, model in enumerate(models):
                F.cross_entropy(model(xs[i]), y[i]).backward()
            optimizer.step()
    return step


def step_seconds(step: Callable[[], None], iters: int) -> float:
    start = time.thread_time()
    for _ in range(iters):
        step()
    return (time.thread_time() - start) / iters


def worker(width: int, members: int, args: argparse.Namespace) -> None:
    """One case in this (fresh) process: prints its median step times and the sizes as JSON."""
    torch.set_num_threads(1)
    keep_freed_memory()  # as ensplit.train does on the CPU
    steps, sizes = build_steps(width, members, args.depth, args.batch, args.variants.split(","))
    for step in steps.values():  # warm-up: oneDNN primitives, allocator
        step()
    probe = step_seconds(steps["single"] if "single" in steps else next(iter(steps.values())), 1)
    iters = max(1, min(20, int(0.5 / max(probe, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(step_seconds(step, iters))
    print(json.dumps({"times": {n: statistics.median(t) for n, t in times.items()}, "sizes": sizes,
                      "iters": iters}))


def fresh_process(argv: list[str], script: str = __file__) -> dict:
    """The JSON that `script` (this benchmark or one built on it) prints last, run with `argv` in a new process."""
    out = subprocess.run([sys.executable, script, *argv], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    text = f"{statistics.median(values):.2f}"
    return text if len(values) == 1 else f"{text} ({min(values):.2f}–{max(values):.2f})"


def add_case_arguments(parser: argparse.ArgumentParser, processes: int) -> None:
    """The ResNet cases (widths × members, depth) and how often each is timed, shared with the inference bench."""
    parser.add_argument("--widths", default="4,8,16")
    parser.add_argument("--members", default="4,8")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=processes)
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(parser, processes=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "member_resnet_cpu.md")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args)
        return
    cases = [(w, k) for w in map(int, args.widths.split(",")) for k in map(int, args.members.split(","))]
    flags = ["--depth", str(args.depth), "--batch", str(args.batch), "--repeats", str(args.repeats),
             "--variants", args.variants]
    load_start = os.getloadavg()
    started = time.perf_counter()
    runs: dict[tuple[int, int], list[dict[str, float]]] = {c: [] for c in cases}
    sizes: dict[tuple[int, int], dict[str, int]] = {}
    for round_ in range(args.processes):
        for case in cases:
            result = fresh_process(["--worker", str(case[0]), str(case[1]), *flags])
            runs[case].append(result["times"])
            sizes[case] = result["sizes"]
            t = result["times"]
            print(f"process {round_ + 1}/{args.processes}: w{case[0]} k{case[1]}: "
                  + ", ".join(f"{n} {1e3 * v:.0f} ms" for n, v in t.items()), flush=True)
    load_end = os.getloadavg()
    variants = args.variants.split(",")

    def ratios(case: tuple[int, int], top: str, bottom: str) -> list[float]:
        return [t[top] / t[bottom] for t in runs[case]]

    def best(t: dict[str, float], kind: str) -> float:
        return min(v for n, v in t.items() if VARIANTS[n][0] == kind)

    lines = ["# Member-batched ResNet step vs one network of the same size vs a loop (CPU)", "",
             f"{datetime.datetime.now().isoformat(timespec='seconds')}. ResNet-{args.depth} (`--family resnet`, "
             f"option-A shortcuts), CIFAR-sized inputs 3×32×32, batch {args.batch} per member (the single network: "
             f"one batch of {args.batch}). Forward + backward + SGD (momentum 0.9, weight decay 5e-4). Median of "
             f"{args.repeats} interleaved repeats in each of {args.processes} fresh processes per case; ratios are "
             "the median over the processes, with their range. torch "
             f"{torch.__version__}, 1 torch thread, times are the thread's CPU time, malloc keeps freed memory (as "
             f"training does). Load average {load_start[0]:.2f} at the start and {load_end[0]:.2f} at the end "
             f"on {os.cpu_count()} cores (shared machine: absolute times are noisy, ratios less so); "
             f"{time.perf_counter() - started:.0f} s in all.", "",
             "The ensemble's step as `ensplit.train` runs it (`ensplit`: the execution `auto` picks, each in its "
             "best memory layout) against the best layout of the single network and of the loop:", "",
             "| width | k | single width | params (ensemble / single) | execution | ensplit ms | single ms | loop ms "
             "| ensplit / single | loop / ensplit |", "|---|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        s = sizes[case]
        med = {n: statistics.median(t[n] for t in runs[case]) for n in variants}
        best_med = {kind: min(v for n, v in med.items() if VARIANTS[n][0] == kind)
                    for kind in ("ensplit", "single", "loop")}
        e_s = [best(t, "ensplit") / best(t, "single") for t in runs[case]]
        l_e = [best(t, "loop") / best(t, "ensplit") for t in runs[case]]
        lines.append(
            f"| {case[0]} | {case[1]} | {s['single_width']} | {s['ensemble']:,} / {s['single']:,} | {s['execution']} "
            f"| {1e3 * best_med['ensplit']:.0f} | {1e3 * best_med['single']:.0f} | {1e3 * best_med['loop']:.0f} "
            f"| {spread(e_s)} | {spread(l_e)} |")
    lines += ["", "Every variant, median ms per step (each in its own memory layout; `batched`: the member-batched "
              "layers whatever `auto` would pick), and the member-batched layers' best layout against the others':",
              "", "| width | k | " + " | ".join(variants)
              + " | best batched / best single | best loop / best batched |",
              "|" + "---|" * (4 + len(variants))]
    for case in cases:
        med = {n: statistics.median(t[n] for t in runs[case]) for n in variants}
        b_s = [best(t, "member-batched") / best(t, "single") for t in runs[case]]
        l_b = [best(t, "loop") / best(t, "member-batched") for t in runs[case]]
        lines.append(f"| {case[0]} | {case[1]} | " + " | ".join(f"{1e3 * med[n]:.0f}" for n in variants)
                     + f" | {spread(b_s)} | {spread(l_b)} |")
    lines += ["", "Reproduce: `python benchmarks/bench_resnet_step.py --widths "
              f"{args.widths} --members {args.members} --depth {args.depth} --batch {args.batch} --repeats "
              f"{args.repeats} --processes {args.processes}`"]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[2:]))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
