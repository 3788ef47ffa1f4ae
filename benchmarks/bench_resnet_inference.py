"""Scoring a test set with a ResNet deep ensemble on the CPU: the member-batched layers vs the members one by one.

    python benchmarks/bench_resnet_inference.py [--widths 4,8,16] [--members 4,8] [--depth 20] [--images 512]
                                                [--repeats 3] [--processes 2] [--out PATH]

What is timed is `ensplit.train.predict_log_probs` (eval mode, no gradients, batches of 1,024, every member on
the same images), the call that scores test sets and corrupted test sets after training, for a k-member
ResNet ensemble run as member-batched layers (`execution="batched"`: grouped convolutions, packed batch norms)
and member by member (`execution="loop"`), each with its model in NCHW and in channels-last memory (as
`--channels-last` training leaves it). The baseline of every ratio is the member-batched layers in the same
memory layout, timed in the same process, interleaved. Each (width, k) case runs in `--processes` fresh
processes with one torch thread; times are the thread's CPU time (`time.thread_time`), and a ratio is the median
of the per-process ratios with their range. Writes `benchmarks/results/member_resnet_inference_cpu.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch
from bench_resnet_step import add_case_arguments, fresh_process, spread

from ensplit.ensembles import deep_ensemble
from ensplit.train.loop import predict_log_probs

IN_SHAPE = (3, 32, 32)
VARIANTS = {"batched": ("batched", False), "loop": ("loop", False),
            "batched NHWC": ("batched", True), "loop NHWC": ("loop", True)}


def worker(width: int, members: int, args: argparse.Namespace) -> None:
    """One case in this (fresh) process: prints the median seconds of every variant as JSON."""
    torch.set_num_threads(1)
    torch.manual_seed(123)
    x = torch.randn(args.images, *IN_SHAPE)
    models = {}
    for name, (execution, channels_last) in VARIANTS.items():
        model = deep_ensemble("resnet", list(range(members)), execution=execution, width=width, depth=args.depth)
        models[name] = model.to(memory_format=torch.channels_last) if channels_last else model
    outputs = {name: predict_log_probs(model, x[:64]) for name, model in models.items()}  # warm-up
    reference = outputs["batched"]
    gap = max(float((out - reference).abs().max()) for out in outputs.values())
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            start = time.thread_time()
            predict_log_probs(model, x)
            times[name].append(time.thread_time() - start)
    print(json.dumps({"times": {n: statistics.median(t) for n, t in times.items()}, "max_gap": gap}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(parser, processes=2)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "member_resnet_inference_cpu.md")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args)
        return
    cases = [(w, k) for w in map(int, args.widths.split(",")) for k in map(int, args.members.split(","))]
    flags = ["--depth", str(args.depth), "--images", str(args.images), "--repeats", str(args.repeats)]
    load_start, started = os.getloadavg(), time.perf_counter()
    runs: dict[tuple[int, int], list[dict]] = {c: [] for c in cases}
    for round_ in range(args.processes):
        for case in cases:
            result = fresh_process(["--worker", str(case[0]), str(case[1]), *flags], script=__file__)
            runs[case].append(result)
            print(f"process {round_ + 1}/{args.processes}: w{case[0]} k{case[1]}: "
                  + ", ".join(f"{n} {v:.2f} s" for n, v in result["times"].items()), flush=True)
    load_end = os.getloadavg()
    lines = [
        "# Scoring a test set with a ResNet deep ensemble (CPU): member-batched layers vs members one by one", "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')}. ResNet-{args.depth} (option-A shortcuts), "
        f"`predict_log_probs` on {args.images} images 3×32×32 (eval mode, no gradients, every member on the same "
        f"images). Median of {args.repeats} interleaved repeats in each of {args.processes} fresh processes per "
        f"case; a ratio is the median over the processes, with their range. torch {torch.__version__}, 1 torch "
        f"thread, thread CPU time. Load average {load_start[0]:.2f} at the start and {load_end[0]:.2f} at the end "
        f"on {os.cpu_count()} cores; {time.perf_counter() - started:.0f} s in all. Baseline of each ratio: the "
        "member-batched layers (`execution=\"batched\"`) in the same memory layout.", "",
        "| width | k | batched s | loop s | loop / batched | batched NHWC s | loop NHWC s | loop / batched (NHWC) "
        "| largest difference in log-probabilities |", "|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        med = {n: statistics.median(r["times"][n] for r in runs[case]) for n in VARIANTS}
        plain = [r["times"]["loop"] / r["times"]["batched"] for r in runs[case]]
        nhwc = [r["times"]["loop NHWC"] / r["times"]["batched NHWC"] for r in runs[case]]
        gap = max(r["max_gap"] for r in runs[case])
        lines.append(f"| {case[0]} | {case[1]} | {med['batched']:.2f} | {med['loop']:.2f} | {spread(plain)} "
                     f"| {med['batched NHWC']:.2f} | {med['loop NHWC']:.2f} | {spread(nhwc)} | {gap:.1e} |")
    lines += ["", f"Reproduce: `python benchmarks/bench_resnet_inference.py --widths {args.widths} --members "
              f"{args.members} --depth {args.depth} --images {args.images} --repeats {args.repeats} --processes "
              f"{args.processes}`"]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[2:]))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
