"""Where an MLP ensemble's step spends its time beyond one network of the same size: the step's parts timed
alone, member-batched against single.

    python benchmarks/bench_mlp_parts.py [--members 8] [--repeats 7] [--processes 3] [--out PATH]

For each MLP case of `bench_member_batched.py` (M members of width w against one network of width
≈ √M·w with the same parameter count, batch 128, MNIST-1D sized inputs) this times, on one CPU thread:
- the matrix products of a training step, each alone and repeated on the same operands (so in cache):
  per layer the forward product with bias (`baddbmm` as `MemberLinear` runs it; `addmm` as `nn.Linear`),
  the weight gradient, the input gradient (not for the first layer) and the bias gradient;
- the loss, forward and backward (`member_losses` on the `[M, C, B]` logits `MemberLinear` hands on;
  `F.cross_entropy` on `[B, C]`);
- the whole step (forward, backward, Adam at lr 1e-3), as `bench_member_batched.py` times it.
The baseline of every ratio is the single network's same part, measured in the same run. If the parts
alone cost the same but the step does not, the difference is what the parts pay inside the step: the
ensemble's larger working set (√M× the activations, M× the input rows) in the caches, and its element-wise
work. Writes `benchmarks/results/mlp_parts.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_member_batched import CASES, build_steps, fresh_process, spread

from ensplit.train.allocator import keep_freed_memory
from ensplit.train.loss import member_losses

CLASSES, IN_FEATURES = 10, 40


def seconds(fn: Callable[[], object], repeats: int, iters: int = 100) -> float:
    """Median over `repeats` of the mean thread CPU time of `iters` calls."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(iters):
            fn()
        times.append((time.thread_time() - start) / iters)
    return statistics.median(times)


def product_parts(members: int | None, width: int, batch: int) -> dict[str, Callable[[], object]]:
    """The step's matrix products, per layer: `members` None is one network (2-d operands)."""
    lead = () if members is None else (members,)
    parts: dict[str, Callable[[], object]] = {}
    shapes = [(IN_FEATURES, width), (width, width), (width, CLASSES)]
    for layer, (fan_in, fan_out) in enumerate(shapes):
        w = torch.randn(*lead, fan_out, fan_in)
        grad_t = torch.randn(*lead, fan_out, batch)  # the upstream gradient, feature-major
        if members is None:
            x, b, grad = torch.randn(batch, fan_in), torch.randn(fan_out), grad_t.t().contiguous()
            parts[f"layer {layer} forward"] = lambda x=x, w=w, b=b: torch.addmm(b, x, w.t())
            parts[f"layer {layer} weight grad"] = lambda x=x, g=grad: torch.mm(g.t(), x)
            if layer:
                parts[f"layer {layer} input grad"] = lambda w=w, g=grad: torch.mm(g, w)
            parts[f"layer {layer} bias grad"] = lambda g=grad: g.sum(0)
        else:
            x_t, b = torch.randn(members, batch, fan_in).transpose(1, 2), torch.randn(members, fan_out, 1)
            parts[f"layer {layer} forward"] = lambda x_t=x_t, w=w, b=b: torch.baddbmm(b, w, x_t)
            parts[f"layer {layer} weight grad"] = lambda x_t=x_t, g=grad_t: torch.bmm(g, x_t.transpose(1, 2))
            if layer:
                parts[f"layer {layer} input grad"] = lambda w=w, g=grad_t: torch.bmm(w.transpose(1, 2), g)
            parts[f"layer {layer} bias grad"] = lambda g=grad_t: g.sum(2)
    return parts


def loss_part(members: int | None, batch: int) -> Callable[[], object]:
    """Loss forward and backward on logits laid out as the models hand them on."""
    targets = torch.randint(0, CLASSES, (members or 1, batch))
    if members is None:
        logits = torch.randn(batch, CLASSES, requires_grad=True)
        return lambda: F.cross_entropy(logits, targets[0]).backward()
    logits_t = torch.randn(members, CLASSES, batch, requires_grad=True)  # MemberLinear's [M, C, B] product
    return lambda: member_losses(logits_t.transpose(1, 2), targets).sum().backward()


def measure_parts(members: int, repeats: int) -> dict[str, list[tuple[str, float, float]]]:
    """Per MLP case (keyed by member width): (part, member-batched seconds, single seconds) rows."""
    torch.set_num_threads(1)
    keep_freed_memory()
    device = torch.device("cpu")
    results: dict[str, list[tuple[str, float, float]]] = {}
    for family, width, batch, in_shape in CASES:
        if family != "mlp" or in_shape != (IN_FEATURES,):
            continue
        steps, sizes = build_steps(family, width, batch, in_shape, members, device)
        ens_parts = product_parts(members, width, batch)
        one_parts = product_parts(None, sizes["single_width"], batch)
        rows = [(name, seconds(ens_parts[name], repeats), seconds(one_parts[name], repeats)) for name in ens_parts]
        products = ("**all products**", sum(r[1] for r in rows), sum(r[2] for r in rows))
        loss = ("**loss, forward + backward**", seconds(loss_part(members, batch), repeats),
                seconds(loss_part(None, batch), repeats))
        step = ("**whole step** (Adam)", seconds(steps["member-batched"], repeats, 20),
                seconds(steps["single"], repeats, 20))
        rest = ("step − products − loss", step[1] - products[1] - loss[1], step[2] - products[2] - loss[2])
        results[f"{width} {sizes['single_width']}"] = [*rows, products, loss, step, rest]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--processes", type=int, default=3,
                        help="fresh processes; each figure is the median over them (ratios with their range)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mlp_parts.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure_parts(args.members, args.repeats)))
        return
    load = os.getloadavg()[0]
    runs = []
    for index in range(args.processes):
        runs.append(fresh_process(__file__, ["--worker", "--members", str(args.members),
                                             "--repeats", str(args.repeats)]))
        print(f"process {index + 1}/{args.processes} done", flush=True)
    lines = [f"# An MLP ensemble's step, part by part, against one network of the same size (M = {args.members})",
             "", f"{datetime.datetime.now().isoformat(timespec='seconds')}. torch {torch.__version__}; CPU, one "
             f"thread, the thread's CPU time; median of {args.repeats} repeats in each of {args.processes} fresh "
             f"processes, and the median over the processes (ratios with their range); load average {load:.1f} "
             f"at start on {os.cpu_count()} cores. Parts alone are timed repeatedly on the same operands (in cache).",
             "", "| member width | single width | part | member-batched µs | single µs | ratio |",
             "|---|---|---|---|---|---|"]
    for case, rows in runs[0].items():
        for row_index, (name, _, _) in enumerate(rows):
            ens = [run[case][row_index][1] for run in runs]
            one = [run[case][row_index][2] for run in runs]
            ratios = [e / o for e, o in zip(ens, one, strict=True)]
            lines.append(f"| {case.replace(' ', ' | ')} | {name} | {1e6 * statistics.median(ens):.0f} "
                         f"| {1e6 * statistics.median(one):.0f} | {spread(ratios)} |")
    lines += ["", "A ratio near 1 for the products and the loss, with a larger one for the whole step, puts the "
              "ensemble's excess in what the parts cost inside a step (cache misses on its larger working set) "
              "and in its element-wise work (ReLU, its gradient, optimiser updates), not in the products' "
              "arithmetic.", "",
              f"Reproduce: `python benchmarks/bench_mlp_parts.py --members {args.members} --repeats {args.repeats} "
              f"--processes {args.processes}`"]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[2:]))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
