"""Member-batched convolutions: every `MemberConv` strategy, and a Python loop over members, on one shape at a
time.

    python benchmarks/bench_member_conv.py [--device cpu|cuda] [--repeats 5] [--write-table PATH]

Times forward + backward (given the output's gradient) of one `MemberConv` layer (bias on, the same
weights for every strategy) on
`[M, B, C_in, *S]` inputs, strategies interleaved within each repeat so load on a shared machine hits them
alike; the input needs its gradient unless C_in = 1 (a network's first layer). 1-d strategies: "grouped"
(one grouped conv1d), "grouped_nhwc" (the same grouped conv run channels-last as a 2-d conv), "im2col"
(unfold + one baddbmm over the members, bias fused) and "loop"; 2-d: "grouped", "loop", and for
information the grouped conv with channels-last tensors (MemberConv uses it when the model is converted to
channels-last, see docs/scale-out.md). Reports medians and ratios against "grouped", writes
`benchmarks/results/member_conv_<device>.md`, and prints the rows for the table in
`ensplit.layers.conv_strategy`. `--write-table PATH` also writes the choices as JSON rows
`[device_type, dim, members, in_channels, out_channels, spatial, choice]`; point `ENSPLIT_CONV_TABLE` at that file and
`MemberConv(strategy="auto")` uses them in place of the built-in rows for that device type.
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

from ensplit.layers.member import MemberConv
from ensplit.layers.ops import memory_order
from ensplit.train.allocator import keep_freed_memory

MALLOC = {True: "malloc keeps freed memory (ensplit.train.allocator, as training does)",
          False: "malloc defaults (ENSPLIT_KEEP_FREED_MEMORY=0 or not glibc)"}
MARGIN = 0.10  # another strategy must beat "grouped" by this much to be chosen
KERNEL = 5
# (dim, members, batch, in channels, out channels, spatial size): the cnn1d family's layers (k = 5, max-pool
# 2 after each: 40 -> 20 -> 10) for a few widths and member counts, and a few 2-d shapes
SHAPES = [(1, 8, 128, 1, 16, 40), (1, 8, 128, 16, 16, 20), (1, 8, 128, 16, 16, 10),
          (1, 8, 128, 1, 32, 40), (1, 8, 128, 32, 32, 20), (1, 8, 128, 32, 32, 10),
          (1, 8, 128, 1, 64, 40), (1, 8, 128, 64, 64, 20), (1, 4, 128, 64, 64, 20),
          (1, 16, 128, 1, 16, 40), (1, 16, 128, 16, 16, 20), (1, 16, 128, 64, 64, 20), (1, 32, 128, 32, 32, 10),
          (2, 4, 64, 16, 16, 32), (2, 16, 64, 16, 16, 32), (2, 4, 64, 64, 64, 8), (2, 16, 64, 64, 64, 8)]
STRATEGIES = {1: ("grouped", "grouped_nhwc", "im2col", "loop"), 2: ("grouped", "loop")}


def step_seconds(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, iters: int,
                 device: torch.device) -> float:
    """Seconds per forward + backward (the output's gradient given: no loss is timed)."""
    start = time.perf_counter()
    for _ in range(iters):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).backward(grad)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / iters


def layers(shape: tuple[int, ...], device: torch.device) -> dict[str, torch.nn.Module]:
    dim, m, _, c_in, c_out, _ = shape
    torch.manual_seed(0)
    reference = MemberConv(m, dim, c_in, c_out, KERNEL if dim == 1 else 3, padding=KERNEL // 2 if dim == 1 else 1)
    out = {}
    for strategy in STRATEGIES[dim]:
        layer = MemberConv(m, dim, c_in, c_out, reference.kernel_size, padding=reference.padding, strategy=strategy)
        layer.load_state_dict(reference.state_dict())
        out[strategy] = layer.to(device)
    if dim == 2:
        nhwc = MemberConv(m, dim, c_in, c_out, 3, padding=1, strategy="grouped")
        nhwc.load_state_dict(reference.state_dict())
        out["grouped, channels-last tensors"] = nhwc.to(device, memory_format=torch.channels_last)
    return out


def laid_out_like(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`values` copied into the memory order of `like` (a tensor of as many dims, any sizes)."""
    order = memory_order(like)
    inverse = sorted(range(like.dim()), key=order.__getitem__)
    return values.permute(*order).contiguous().permute(*inverse)


def measure(shape: tuple[int, ...], device: torch.device, repeats: int) -> dict[str, float]:
    """Seconds per forward + backward of each strategy, in the steady state of a network built on it: a
    hidden layer's input, and every output gradient, arrive in the memory layout that strategy's own output
    has (what a previous layer of the same strategy hands on). A first layer (C_in = 1) reads the data's
    contiguous `[M, B, 1, *S]` batch."""
    dim, m, b, c_in, c_out, s = shape
    values = torch.randn(m, b, c_in, *([s] * dim), device=device)
    candidates = layers(shape, device)
    reference = candidates["grouped"](values)
    grad_values = torch.randn_like(reference).contiguous()
    inputs, grads = {}, {}
    for name, layer in candidates.items():  # same numbers from every strategy, and a warm-up
        if c_in > 1:  # a hidden layer: as a layer of this strategy with c_in output channels hands it on
            inputs[name] = laid_out_like(values, layer(values))
        else:
            inputs[name] = values
        inputs[name].requires_grad_(c_in > 1)
        out = layer(inputs[name])
        assert torch.allclose(out, reference, atol=1e-4, rtol=1e-4), name
        grads[name] = laid_out_like(grad_values, out)
        step_seconds(layer, inputs[name], grads[name], 1, device)
    probe = step_seconds(candidates["grouped"], inputs["grouped"], grads["grouped"], 1, device)
    iters = max(1, min(50, int(0.2 / max(probe, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, layer in candidates.items():
            times[name].append(step_seconds(layer, inputs[name], grads[name], iters, device))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    parser.add_argument("--write-table", metavar="PATH", default=None,
                        help="also write the choices as JSON rows for ENSPLIT_CONV_TABLE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tuned = keep_freed_memory()  # as ensplit.train does on CPU; ENSPLIT_KEEP_FREED_MEMORY=0 to compare
    device = torch.device(args.device)
    names = ["grouped_nhwc", "im2col", "loop", "grouped, channels-last tensors"]
    lines = [f"# Member-batched convolution: MemberConv strategies vs a loop ({device.type})", "",
             f"{datetime.datetime.now().isoformat(timespec='seconds')}. Forward + backward of one layer (bias, "
             f"input gradient unless C_in = 1), median of {args.repeats} "
             f"interleaved repeats; torch {torch.__version__}, {args.threads} torch thread(s), {MALLOC[tuned]}, "
             "load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: absolute times are noisy, "
             "ratios less so). Kernel 5 (1-d, padding 2) or 3 (2-d, padding 1).", "",
             "| dim | members | batch | C_in | C_out | size | grouped ms | "
             + " | ".join(f"{n} / grouped" for n in names) + " | fastest | table choice |",
             "|" + "---|" * (9 + len(names))]
    table_rows, json_rows = [], []
    for shape in SHAPES:
        t = measure(shape, device, args.repeats)
        best = min(t, key=t.get)
        implemented = {n: v for n, v in t.items() if n in STRATEGIES[shape[0]]}
        fastest = min(implemented, key=implemented.get)
        # 1-d: no margin. Timed in the steady state, a strategy pays no layout conversion, but a network that
        # mixes layouts does, at every boundary between them (two copies of an activation per layer and step)
        margin = 0.0 if shape[0] == 1 else MARGIN
        choice = fastest if implemented[fastest] < (1 - margin) * t["grouped"] else "grouped"
        ratios = " | ".join(f"{t[n] / t['grouped']:.2f}" if n in t else "-" for n in names)
        lines.append(f"| {shape[0]} | {shape[1]} | {shape[2]} | {shape[3]} | {shape[4]} | {shape[5]} "
                     f"| {1e3 * t['grouped']:.2f} | {ratios} | {best} | {choice} |")
        print(lines[-1], flush=True)
        table_rows.append(f'    ("{device.type}", {shape[0]}, {shape[1]}, {shape[3]}, {shape[4]}, {shape[5]}, '
                          f'"{choice}"),')
        json_rows.append([device.type, shape[0], shape[1], shape[3], shape[4], shape[5], choice])
    lines += ["", f"Table choice: the fastest strategy MemberConv implements; for 2-d convs only if it beats the "
              f"grouped conv by {MARGIN:.0%} or more, else grouped (1-d layers are timed in their steady-state "
              "layout, and a network mixing layouts pays a conversion at each boundary). The table is keyed by "
              "(members, C_in, C_out, size); a network's first layer (C_in = 1) gets rows of its own.",
              "", "Reproduce: `python benchmarks/bench_member_conv.py "
              f"--device {device.type} --repeats {args.repeats}`"]
    out = Path(__file__).parent / "results" / f"member_conv_{device.type}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten {out}\nrows for ensplit.layers.conv_strategy.TABLE:\n" + "\n".join(table_rows))
    if args.write_table:
        write_table(json_rows, Path(args.write_table))
        print(f"table written to {args.write_table}; use it with ENSPLIT_CONV_TABLE={args.write_table}")


def write_table(rows: list[list], path: Path) -> None:
    """One JSON row per line: [device_type, dim, members, in_channels, out_channels, spatial, choice]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n", encoding="utf-8")


if __name__ == "__main__":
    main()
