"""One training step: a member-batched ensemble vs a Python loop over its members vs one network of the
same total size.

    python benchmarks/bench_member_batched.py [--members 8] [--repeats 7] [--processes 3]
                                              [--optimizer adam|sgd] [--families mlp,cnn1d] [--devices cpu,cuda]
                                              [--compile] [--out PATH]

Each of M members sees its own batch of B examples (as in `ensplit.train`); the single network sees one
batch of B examples with M times the parameters, so all three do about the same FLOPs per step. The step is
forward + backward + optimiser step (`--optimizer adam`, the default: torch's Adam at lr 1e-3, as issue 15
measured; `sgd`: ensplit's default training recipe, `make_optimizer(TrainConfig())`, SGD with momentum 0.9
and weight decay), on CPU (one torch thread) and on the GPU when one is available. Variants are
interleaved within each repeat so load on a shared machine hits them alike. On the CPU each case runs in
`--processes` fresh processes, one case after another in each round, and a ratio is the median of the
per-process ratios, shown with their range: a process's memory placement biases its timings (the same
comparison measured 1.07-1.24 in six processes, each steady within itself; `--processes 1` for a quick
run, e.g. on a lent GPU machine, whose GPU rows run in this process). On CPU the time is the
benchmark thread's CPU time (`time.thread_time`: torch runs on that one thread), which a busy shared
machine disturbs less than wall time. For the 1-d CNN the member-batched step is also timed with every
`MemberConv` strategy forced on all its convs ("auto" is the default: the measured table, per layer);
`--compile` adds both sides under `torch.compile` (inductor fuses bias, ReLU and pooling into the
kernels around the convolutions and matmuls). Writes `benchmarks/results/member_batched.md`.
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
from ensplit.layers import member
from ensplit.models import count_params
from ensplit.models.scaling import solve_width
from ensplit.train.allocator import keep_freed_memory
from ensplit.train.config import TrainConfig
from ensplit.train.loss import member_losses
from ensplit.train.optim import make_optimizer

MALLOC = {True: "malloc keeps freed memory (ensplit.train.allocator, as training does)",
          False: "malloc defaults (ENSPLIT_KEEP_FREED_MEMORY=0 or not glibc)"}
OPTIMIZERS = {"adam": "Adam (lr 1e-3)",
              "sgd": "SGD with momentum 0.9 and weight decay 5e-4 (ensplit's default recipe)"}
# (family, member width, batch, input shape): MNIST-1D sized inputs, 10 classes
CASES = [("mlp", 64, 128, (40,)), ("mlp", 256, 128, (40,)), ("cnn1d", 16, 128, (40,)), ("cnn1d", 32, 128, (40,))]


def step_seconds(step: Callable[[], None], iters: int, device: torch.device) -> float:
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    start = clock()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (clock() - start) / iters


# forced on every conv of the 1-d CNN (those this version of MemberConv implements)
STRATEGIES = tuple(s for s in ("grouped", "grouped_nhwc", "im2col", "loop") if s in getattr(
    member, "STRATEGIES", ("grouped", "loop")))


def relu_out_of_place(model: nn.Module, step: Callable[[], None]) -> Callable[[], None]:
    """`step` with the MLPs in `model` running each hidden ReLU out of place (their forward as it was before
    the ReLU ran in place). The same objects as the in-place variant, so both see the same memory."""
    mlps = [m for m in model.modules() if hasattr(m, "relu_in_place")]

    def run() -> None:
        for m in mlps:
            m.relu_in_place = False
        try:
            step()
        finally:
            for m in mlps:
                m.relu_in_place = True
    return run


def build_steps(family: str, width: int, batch: int, in_shape: tuple[int, ...], members: int,
                device: torch.device, compile_: bool = False, optimizer_name: str = "adam"
                ) -> tuple[dict[str, Callable[[], None]], dict[str, int]]:
    seeds = list(range(members))
    ensemble = deep_ensemble(family, seeds, width=width, in_shape=in_shape).to(device)
    separate = [build_member(family, s, width=width, in_shape=in_shape).to(device) for s in seeds]
    member_params = count_params(family, width, None, in_shape)
    single_width = solve_width(family, members * member_params, in_shape=in_shape)
    single = build_member(family, 0, width=single_width, in_shape=in_shape).to(device)
    x = torch.randn(members, batch, *in_shape, device=device)
    y = torch.randint(0, 10, (members, batch), device=device)

    def optimiser(modules: list[nn.Module]) -> torch.optim.Optimizer:
        params = [p for m in modules for p in m.parameters()]
        return torch.optim.Adam(params, lr=1e-3) if optimizer_name == "adam" else make_optimizer(params, TrainConfig())

    opt_ens, opt_sep, opt_single = optimiser([ensemble]), optimiser(separate), optimiser([single])

    def batched() -> None:
        loss = member_losses(ensemble(x), y)  # logits [M, B, C]; the loss ensplit.train minimises
        opt_ens.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt_ens.step()

    def loop() -> None:
        opt_sep.zero_grad(set_to_none=True)
        for i, model in enumerate(separate):
            F.cross_entropy(model(x[i]), y[i]).backward()
        opt_sep.step()

    def one_network() -> None:
        opt_single.zero_grad(set_to_none=True)
        F.cross_entropy(single(x[0]), y[0]).backward()
        opt_single.step()

    def member_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            loss = member_losses(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
        return step

    def single_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[0]), y[0]).backward()
            optimizer.step()
        return step

    steps = {"member-batched": batched, "loop": loop, "single": one_network}
    if family == "cnn1d":
        for strategy in STRATEGIES:
            forced = deep_ensemble(family, seeds, conv_strategy=strategy, width=width, in_shape=in_shape).to(device)
            steps[f"batched, {strategy}"] = member_step(forced, optimiser([forced]))
    if family == "mlp":  # the same networks and optimisers with each hidden ReLU out of place, as before
        steps["batched, ReLU out of place"] = relu_out_of_place(ensemble, batched)
        steps["single, ReLU out of place"] = relu_out_of_place(single, one_network)
    if compile_:
        steps["member-batched, compiled"] = member_step(torch.compile(ensemble), opt_ens)
        steps["single, compiled"] = single_step(torch.compile(single), opt_single)
    sizes = {"member": member_params, "ensemble": members * member_params,
             "single": count_params(family, single_width, None, in_shape), "single_width": single_width}
    return steps, sizes


def measure(case: tuple, members: int, device: torch.device, repeats: int, compile_: bool = False,
            optimizer: str = "adam") -> tuple[dict[str, float], dict[str, int]]:
    steps, sizes = build_steps(*case, members, device, compile_, optimizer)
    for step in steps.values():  # warm-up (and compilation)
        step()
        step()
    probe = step_seconds(steps["single"], 2, device)
    iters = max(2, min(100, int(0.15 / max(probe, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(step_seconds(step, iters, device))
    return {name: statistics.median(t) for name, t in times.items()}, sizes


def worker_times(case_index: int, args: argparse.Namespace) -> None:
    """One case measured in this (fresh) process: prints its median step times and sizes as JSON."""
    torch.set_num_threads(1)
    keep_freed_memory()
    times, sizes = measure(CASES[case_index], args.members, torch.device("cpu"), args.repeats, args.compile,
                           args.optimizer)
    print(json.dumps({"times": times, "sizes": sizes}))


def fresh_process(script: str, argv: list[str]) -> dict:
    """Run `script` with `argv` in a fresh Python process and return the JSON its last output line holds."""
    out = subprocess.run([sys.executable, script, *argv], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_times(args: argparse.Namespace, cases: list[int]) -> list[tuple[list[dict[str, float]], dict[str, int]]]:
    """Each of `cases` measured in `args.processes` fresh processes, the cases interleaved within each round.

    Separate processes because one process's memory placement biases its timings: on this 2-core VM the
    same comparison measured 1.07-1.24 in six processes, each steady within itself.
    """
    runs: dict[int, list[dict[str, float]]] = {index: [] for index in cases}
    sizes: dict[int, dict[str, int]] = {}
    flags = ["--members", str(args.members), "--repeats", str(args.repeats), "--optimizer", args.optimizer]
    for round_ in range(args.processes):
        for index in cases:
            result = fresh_process(__file__, ["--worker", str(index), *flags] + (["--compile"] * args.compile))
            runs[index].append(result["times"])
            sizes[index] = result["sizes"]
            t = result["times"]
            print(f"process {round_ + 1}/{args.processes}: {CASES[index][0]} {CASES[index][1]}: batched / single "
                  f"{t['member-batched'] / t['single']:.2f}", flush=True)
    return [(runs[index], sizes[index]) for index in cases]


def spread(values: list[float]) -> str:
    """The median, and the range over processes when there are several."""
    text = f"{statistics.median(values):.2f}"
    return text if len(values) == 1 else f"{text} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--processes", type=int, default=3,
                        help="fresh processes per case on the CPU; ratios are the median over them, with the range")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                        help="adam: torch's Adam at lr 1e-3 (as issue 15 measured); sgd: ensplit's default recipe")
    parser.add_argument("--compile", action="store_true", help="also time both sides under torch.compile")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "member_batched.md")
    parser.add_argument("--families", default="mlp,cnn1d", help="comma-separated: which families' cases to run")
    parser.add_argument("--devices", default="cpu,cuda",
                        help="comma-separated: cpu and/or cuda (cuda only where available)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker_times(args.worker, args)
        return
    torch.set_num_threads(1)
    tuned = keep_freed_memory()  # as ensplit.train does on CPU; ENSPLIT_KEEP_FREED_MEMORY=0 to compare
    load = os.getloadavg()[0]
    families = args.families.split(",")
    cases = [index for index, case in enumerate(CASES) if case[0] in families]
    devices = args.devices.split(",")
    measured = ([("cpu", CASES[index], runs, sizes)
                 for index, (runs, sizes) in zip(cases, cpu_times(args, cases), strict=True)]
                if "cpu" in devices else [])
    if torch.cuda.is_available() and "cuda" in devices:
        gpu = torch.device("cuda")
        for case in (CASES[index] for index in cases):
            times, sizes = measure(case, args.members, gpu, args.repeats, args.compile, args.optimizer)
            measured.append(("cuda", case, [times], sizes))
    lines = [f"# Member-batched training step vs a loop vs one network of the same size (M = {args.members})", "",
             f"{datetime.datetime.now().isoformat(timespec='seconds')}. Forward + backward + "
             f"{OPTIMIZERS[args.optimizer]}; median of {args.repeats} interleaved repeats in each of "
             f"{args.processes} fresh processes per case on the CPU; ratios are the median over the processes, with "
             f"their range; torch {torch.__version__}; CPU with 1 torch thread, times are the thread's CPU time; "
             f"{MALLOC[tuned]}; load average {load:.1f} at start on {os.cpu_count()} cores (shared machine: "
             "absolute times are noisy, ratios less so). "
             + ("" if torch.cuda.is_available() else "No GPU was available: GPU rows were not measured."), "",
             "| device | family | member width | single width | params (ensemble / single) | batch "
             "| member-batched ms | loop / batched | batched / single |", "|---|---|---|---|---|---|---|---|---|"]
    variants, relu_rows = [], []
    for device, case, runs, sizes in measured:
        def ratios(top: str, bottom: str, runs: list[dict[str, float]] = runs) -> list[float]:
            return [t[top] / t[bottom] for t in runs]

        lines.append(f"| {device} | {case[0]} | {case[1]} | {sizes['single_width']} "
                     f"| {sizes['ensemble']:,} / {sizes['single']:,} | {case[2]} "
                     f"| {1e3 * statistics.median(t['member-batched'] for t in runs):.2f} "
                     f"| {spread(ratios('loop', 'member-batched'))} | {spread(ratios('member-batched', 'single'))} |")
        first = runs[0]
        forced = [f"{statistics.median(ratios(f'batched, {s}', 'single')):.2f}" if f"batched, {s}" in first else "-"
                  for s in STRATEGIES]
        compiled = (f"{statistics.median(ratios('member-batched, compiled', 'single, compiled')):.2f}"
                    if "single, compiled" in first else "-")
        variants.append(f"| {device} | {case[0]} | {case[1]} "
                        f"| {statistics.median(ratios('member-batched', 'single')):.2f} | "
                        + " | ".join(forced) + f" | {compiled} |")
        if "batched, ReLU out of place" in first:
            relu_rows.append(f"| {device} | {case[1]} | {spread(ratios('member-batched', 'single'))} "
                             f"| {spread(ratios('batched, ReLU out of place', 'single, ReLU out of place'))} "
                             f"| {spread(ratios('member-batched', 'batched, ReLU out of place'))} "
                             f"| {spread(ratios('single', 'single, ReLU out of place'))} |")
    lines += ["", "batched / single (medians over the processes) with every conv of the 1-d CNN forced to one "
              "`MemberConv` strategy (auto: the measured table, per layer), and with both sides under "
              "`torch.compile`:", "",
              "| device | family | member width | auto | " + " | ".join(STRATEGIES) + " | compiled |",
              "|" + "---|" * (5 + len(STRATEGIES))] + variants
    if relu_rows:
        lines += ["", "MLP hidden ReLUs in place (the default: each rectifies its linear's fresh output) against "
                  "out of place (as before), on the same networks and optimisers, interleaved:", "",
                  "| device | member width | batched / single, in place | batched / single, out of place "
                  "| batched: in place / out of place | single: in place / out of place |",
                  "|---|---|---|---|---|---|"] + relu_rows
    lines += ["", "loop / batched > 1: member batching beats a Python loop. batched / single: an ensemble step against "
              "one network of the same total size. Both sides do the same multiply-adds in the hidden layers, but "
              "the ensemble carries √M times more activations (M members of width w against one network of width "
              "≈ √M·w) and its first conv layer does √M times the multiply-adds (one input channel), so element-wise "
              "work (ReLU, pooling, bias, loss) and the smaller per-member matrices cost extra.", "",
              f"Reproduce: `python benchmarks/bench_member_batched.py --members {args.members} --repeats {args.repeats}"
              f" --processes {args.processes}"
              + (f" --families {args.families}" if families != ["mlp", "cnn1d"] else "")
              + (f" --devices {args.devices}" if devices != ["cpu", "cuda"] else "")
              + (f" --optimizer {args.optimizer}" if args.optimizer != "adam" else "")
              + (" --compile" if args.compile else "") + "`"]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[2:]))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
