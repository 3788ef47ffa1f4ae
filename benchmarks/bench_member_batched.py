"""One training step: a member-batched ensemble vs a Python loop over its members vs one network of the
same total size.

    python benchmarks/bench_member_batched.py [--members 8] [--repeats 7] [--optimizer adam|sgd] [--compile]
                                              [--out PATH]

Each of M members sees its own batch of B examples (as in `ensplit.train`); the single network sees one
batch of B examples with M times the parameters, so all three do about the same FLOPs per step. The step is
forward + backward + optimiser step (`--optimizer adam`, the default: torch's Adam at lr 1e-3, as issue 15
measured; `sgd`: ensplit's default training recipe, `make_optimizer(TrainConfig())`, SGD with momentum 0.9
and weight decay), on CPU (one torch thread) and on the GPU when one is available. Variants are
interleaved within each repeat so load on a shared machine hits them alike. On CPU the time is the
benchmark thread's CPU time (`time.thread_time`: torch runs on that one thread), which a busy shared
machine disturbs less than wall time. For the 1-d CNN the member-batched step is also timed with every
`MemberConv` strategy forced on all its convs ("auto" is the default: the measured table, per layer);
`--compile` adds both sides under `torch.compile` (inductor fuses bias, ReLU and pooling into the
kernels around the convolutions and matmuls). Writes `benchmarks/results/member_batched.md`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                        help="adam: torch's Adam at lr 1e-3 (as issue 15 measured); sgd: ensplit's default recipe")
    parser.add_argument("--compile", action="store_true", help="also time both sides under torch.compile")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "member_batched.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tuned = keep_freed_memory()  # as ensplit.train does on CPU; ENSPLIT_KEEP_FREED_MEMORY=0 to compare
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    load = os.getloadavg()[0]
    lines = [f"# Member-batched training step vs a loop vs one network of the same size (M = {args.members})", "",
             f"{datetime.datetime.now().isoformat(timespec='seconds')}. Forward + backward + "
             f"{OPTIMIZERS[args.optimizer]}; median of "
             f"{args.repeats} interleaved repeats; torch {torch.__version__}; "
             f"CPU with 1 torch thread, times are the thread's CPU time; {MALLOC[tuned]}; "
             f"load average {load:.1f} at start on "
             f"{os.cpu_count()} cores (shared machine: absolute times are noisy, ratios less so). "
             + ("" if torch.cuda.is_available() else "No GPU was available: GPU rows were not measured."), "",
             "| device | family | member width | single width | params (ensemble / single) | batch "
             "| member-batched ms | loop / batched | batched / single |", "|---|---|---|---|---|---|---|---|---|"]
    variants = []
    for device in devices:
        for case in CASES:
            t, sizes = measure(case, args.members, device, args.repeats, args.compile, args.optimizer)
            lines.append(f"| {device.type} | {case[0]} | {case[1]} | {sizes['single_width']} "
                         f"| {sizes['ensemble']:,} / {sizes['single']:,} | {case[2]} "
                         f"| {1e3 * t['member-batched']:.2f} | {t['loop'] / t['member-batched']:.2f} "
                         f"| {t['member-batched'] / t['single']:.2f} |")
            print(lines[-1], flush=True)
            forced = [f"{t[f'batched, {s}'] / t['single']:.2f}" if f"batched, {s}" in t else "-" for s in STRATEGIES]
            compiled = (f"{t['member-batched, compiled'] / t['single, compiled']:.2f} "
                        f"({1e3 * t['member-batched, compiled']:.2f} / {1e3 * t['single, compiled']:.2f} ms)"
                        if "single, compiled" in t else "-")
            variants.append(f"| {device.type} | {case[0]} | {case[1]} | {t['member-batched'] / t['single']:.2f} | "
                            + " | ".join(forced) + f" | {compiled} |")
    lines += ["", "batched / single with every conv of the 1-d CNN forced to one `MemberConv` strategy (auto: the "
              "measured table, per layer), and with both sides under `torch.compile`:", "",
              "| device | family | member width | auto | " + " | ".join(STRATEGIES) + " | compiled |",
              "|" + "---|" * (5 + len(STRATEGIES))] + variants
    lines += ["", "loop / batched > 1: member batching beats a Python loop. batched / single: an ensemble step against "
              "one network of the same total size. Both sides do the same multiply-adds in the hidden layers, but "
              "the ensemble carries √M times more activations (M members of width w against one network of width "
              "≈ √M·w) and its first conv layer does √M times the multiply-adds (one input channel), so element-wise "
              "work (ReLU, pooling, bias, loss) and the smaller per-member matrices cost extra.", "",
              f"Reproduce: `python benchmarks/bench_member_batched.py --members {args.members} --repeats {args.repeats}"
              + (f" --optimizer {args.optimizer}" if args.optimizer != "adam" else "")
              + (" --compile" if args.compile else "") + "`"]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[-len(variants) - 8 :]))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
