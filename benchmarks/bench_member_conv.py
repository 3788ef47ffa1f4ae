"""Member-batched convolutions: one grouped conv vs torch.func.vmap vs a Python loop over members.

    python benchmarks/bench_member_conv.py [--device cpu|cuda] [--repeats 5] [--write-table PATH]

Times forward + backward of M convolutions on `[M, B, C, *S]` inputs for a few shapes, strategies
interleaved within each repeat so load on a shared machine hits them alike; reports medians and ratios
against the grouped conv, writes `benchmarks/results/member_conv_<device>.md`, and prints the rows for
the table in `ensplit.layers.conv_strategy`. `--write-table PATH` also writes the choices as JSON rows
`[device_type, dim, members, channels, spatial, choice]`; point `ENSPLIT_CONV_TABLE` at that file and
`MemberConv(strategy="auto")` uses them in place of the built-in rows for that device type.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

# (dim, members, batch, channels, spatial size)
MARGIN = 0.10
SHAPES = [(1, 8, 128, 16, 40), (1, 8, 128, 32, 40), (1, 32, 128, 32, 20),
          (1, 16, 128, 16, 40), (1, 16, 128, 64, 40), (1, 4, 128, 64, 40),
          (2, 4, 64, 16, 32), (2, 16, 64, 16, 32), (2, 4, 64, 64, 8), (2, 16, 64, 64, 8)]


def grouped(x: torch.Tensor, w: torch.Tensor, dim: int, channels_last: bool = False) -> torch.Tensor:
    m, b, c = x.shape[:3]
    packed = x.transpose(0, 1).reshape(b, m * c, *x.shape[3:])
    weight = w.reshape(-1, *w.shape[2:])
    if channels_last:
        packed = packed.contiguous(memory_format=torch.channels_last)
        weight = weight.contiguous(memory_format=torch.channels_last)
    conv = F.conv1d if dim == 1 else F.conv2d
    y = conv(packed, weight, None, 1, w.shape[-1] // 2, 1, m)
    return y.view(b, m, -1, *y.shape[2:]).transpose(0, 1)


def vmapped(x: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    conv = F.conv1d if dim == 1 else F.conv2d
    return torch.func.vmap(lambda xi, wi: conv(xi, wi, None, 1, w.shape[-1] // 2))(x, w)


def looped(x: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    conv = F.conv1d if dim == 1 else F.conv2d
    return torch.stack([conv(x[i], w[i], None, 1, w.shape[-1] // 2) for i in range(x.shape[0])])


def strategies(dim: int) -> dict[str, Callable[..., torch.Tensor]]:
    out: dict[str, Callable[..., torch.Tensor]] = {"grouped": grouped, "vmap": vmapped, "loop": looped}
    if dim == 2:
        out["grouped_channels_last"] = lambda x, w, d: grouped(x, w, d, channels_last=True)
    return out


def step_seconds(fn: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor, dim: int, iters: int,
                 device: torch.device) -> float:
    """Seconds per forward + backward."""
    start = time.perf_counter()
    for _ in range(iters):
        w.grad = None
        fn(x, w, dim).square().mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / iters


def measure(shape: tuple[int, int, int, int, int], device: torch.device, repeats: int) -> dict[str, float]:
    dim, m, b, c, s = shape
    x = torch.randn(m, b, c, *([s] * dim), device=device)
    w = torch.randn(m, c, c, *([3] * dim), device=device, requires_grad=True)
    fns = strategies(dim)
    reference = grouped(x, w, dim)
    for name, fn in fns.items():  # same numbers from every strategy, and a warm-up
        assert torch.allclose(fn(x, w, dim), reference, atol=1e-4, rtol=1e-4), name
    probe = step_seconds(grouped, x, w, dim, 1, device)
    iters = max(1, min(50, int(0.2 / max(probe, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(step_seconds(fn, x, w, dim, iters, device))
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
    device = torch.device(args.device)
    lines = [f"# Member-batched convolution: grouped vs vmap vs loop ({device.type})", "",
             f"Forward + backward, median of {args.repeats} interleaved repeats; {torch.__version__}, "
             f"{args.threads} torch thread(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
             "(a shared machine: absolute times are noisy, ratios less so).", "",
             "| dim | members | batch | channels | size | grouped ms | vmap / grouped | loop / grouped "
             "| channels-last / grouped | fastest | table choice |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    table_rows = []
    json_rows = []
    for shape in SHAPES:
        t = measure(shape, device, args.repeats)
        best = min(t, key=t.get)
        # MemberConv runs "grouped" or "loop"; the loop must win by MARGIN to beat the default
        choice = "loop" if t["loop"] < (1 - MARGIN) * t["grouped"] else "grouped"
        cl = f"{t['grouped_channels_last'] / t['grouped']:.2f}" if "grouped_channels_last" in t else "-"
        lines.append(f"| {shape[0]} | {shape[1]} | {shape[2]} | {shape[3]} | {shape[4]} | {1e3 * t['grouped']:.2f} "
                     f"| {t['vmap'] / t['grouped']:.2f} | {t['loop'] / t['grouped']:.2f} | {cl} | {best} | {choice} |")
        print(lines[-1], flush=True)
        table_rows.append(f'    ("{device.type}", {shape[0]}, {shape[1]}, {shape[3]}, {shape[4]}, "{choice}"),')
        json_rows.append([device.type, shape[0], shape[1], shape[3], shape[4], choice])
    lines += ["", f"Table choice: the loop where it beats the grouped conv by {MARGIN:.0%} or more, else grouped "
              "(MemberConv implements those two; vmap lowers to the same grouped conv)."]
    out = Path(__file__).parent / "results" / f"member_conv_{device.type}.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten {out}\nrows for ensplit.layers.conv_strategy.TABLE:\n" + "\n".join(table_rows))
    if args.write_table:
        write_table(json_rows, Path(args.write_table))
        print(f"table written to {args.write_table}; use it with ENSPLIT_CONV_TABLE={args.write_table}")


def write_table(rows: list[list], path: Path) -> None:
    """One JSON row per line: [device_type, dim, members, channels, spatial, choice]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n", encoding="utf-8")


if __name__ == "__main__":
    main()
