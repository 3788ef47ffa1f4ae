"""Wall-clock and memory measurements: warm-ups, repeated runs, the median after the warm-ups (the one rule of
`ensplit.train.epoch_time`).

Training time is measured on fresh copies of the networks (timing does not depend on the weights),
for a fixed number of optimiser steps scaled to one epoch. Setup (building models and optimisers,
drawing batches) and warm-up runs are never inside the timed region. On CUDA the device is synchronised
before each clock read. Peak memory: on CUDA, `torch.cuda.max_memory_allocated` above what was allocated
before the model was built; on CPU torch keeps no allocator statistics, so a fresh worker process
(forked from a multiprocessing fork server that has imported torch but never run it; "spawn" where there is
no fork server) trains the network and reports its peak resident set (Linux VmHWM, reset just before the
model is built, after a warm-up step of a tiny network) minus its resident set at that moment.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ensplit.train.allocator import keep_freed_memory
from ensplit.train.config import TrainConfig
from ensplit.train.epoch_time import steady_median
from ensplit.train.loss import member_losses
from ensplit.train.optim import make_optimizer

ModelFactory = Callable[[], nn.Module]


@dataclass(frozen=True)
class Timing:
    """Seconds per timed run (warm-ups excluded) and their median."""

    median: float
    runs: tuple[float, ...]


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], warmup: int = 1, repeats: int = 5,
                device: torch.device | None = None) -> Timing:
    """Run `fn` `warmup + repeats` times; the median of the runs after the warm-ups, by the rule every epoch
    time follows (`ensplit.train.epoch_time.steady_median`)."""
    if repeats < 1 or warmup < 0:
        raise ValueError("need repeats >= 1 and warmup >= 0")
    runs = []
    for _ in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        runs.append(time.perf_counter() - start)
    return Timing(steady_median(runs, warmup), tuple(runs[warmup:]))


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor) -> None:
    """One optimiser step; logits `[B, C]` (a plain network) or `[M, B, C]` with labels `[M, B]`.
    The loss is the sum over members of each member's mean cross-entropy, as in `ensplit.train`."""
    logits = model(xb)
    loss = member_losses(logits, yb).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _batches(x: torch.Tensor, y: torch.Tensor, members: int | None, batch_size: int, steps: int,
             seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`steps` random batches: `[B, ...]` for a plain network, `[M, B, ...]` (own rows each) for M members."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size,) if members is None else (members, batch_size)
    out = []
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], shape, generator=g).to(x.device)
        out.append((x[idx], y[idx]))
    return out


def epoch_seconds(models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                  members: Sequence[int | None], steps: int, steps_per_epoch: int, warmup: int = 1,
                  repeats: int = 3) -> Timing:
    """Seconds for one training epoch of `models` trained one after another.

    Pass one plain network per member for the paper's protocol, or one member-batched network (with
    `members=[M]`) for the vectorised one. Each timed run trains every model for `steps` steps; the
    result is scaled by `steps_per_epoch / steps`. `x` must already be prepared floats on the device.
    """
    device = _device_of(models[0])
    if device.type == "cpu":
        keep_freed_memory()  # as training does (ensplit.train.allocator)
    optimizers = [make_optimizer(m.parameters(), config) for m in models]
    batches = [_batches(x, y, k, config.batch_size, steps, seed=i) for i, k in enumerate(members)]
    for model in models:
        model.train()

    def run() -> None:
        for model, optimizer, own in zip(models, optimizers, batches, strict=True):
            for xb, yb in own:
                training_step(model, optimizer, xb, yb)

    timing = median_time(run, warmup=warmup, repeats=repeats, device=device)
    scale = steps_per_epoch / steps
    return Timing(timing.median * scale, tuple(t * scale for t in timing.runs))


@torch.no_grad()
def inference_ms_per_example(models: Sequence[nn.Module], x: torch.Tensor, batch_size: int, calls: int = 1,
                             warmup: int = 1, repeats: int = 5) -> float:
    """Milliseconds per example for a forward pass of `models` one after another at `batch_size`
    (median over repeats of `calls` forward passes each; eval mode, no autograd)."""
    device = _device_of(models[0])
    rows = torch.arange(batch_size, device=x.device) % x.shape[0]
    xb = x[rows]
    for model in models:
        model.eval()

    def run() -> None:
        for _ in range(calls):
            for model in models:
                model(xb)

    timing = median_time(run, warmup=warmup, repeats=repeats, device=device)
    return 1000.0 * timing.median / (calls * batch_size)


# -- peak memory ----------------------------------------------------------------------------------------

def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _peak_rss() -> int:
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _train_steps(factory: ModelFactory, x: torch.Tensor, y: torch.Tensor, members: int | None,
                 config: TrainConfig, steps: int) -> None:
    model = factory()
    optimizer = make_optimizer(model.parameters(), config)
    model.train()
    for xb, yb in _batches(x, y, members, config.batch_size, steps, seed=0):
        training_step(model, optimizer, xb, yb)


def _warm_up(config: TrainConfig) -> None:
    """One step of a tiny network, so lazy imports and one-time initialisation of autograd and the
    optimiser (tens of MiB) are not charged to the network being measured."""
    tiny = nn.Linear(4, 2)
    training_step(tiny, make_optimizer(tiny.parameters(), config), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))


def _memory_worker(factory: ModelFactory, x: torch.Tensor, y: torch.Tensor, members: int | None,
                   config: TrainConfig, steps: int, threads: int, connection) -> None:
    try:
        torch.set_num_threads(threads)
        keep_freed_memory()  # the process trains as `train` would
        _warm_up(config)
        _reset_peak_rss()
        baseline = _current_rss()
        _train_steps(factory, x, y, members, config, steps)
        connection.send(("ok", max(0, _peak_rss() - baseline)))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises
        connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def _worker_context() -> multiprocessing.context.BaseContext:
    """A fork server that has imported torch but never run it (cheap, clean children) where the platform
    has one; otherwise spawn (a fresh interpreter per measurement)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # torch._dynamo is what the first optimiser step imports lazily (~800 modules, seconds): preload it.
        context.set_forkserver_preload(["ensplit.train.measure", "torch._dynamo"])
        return context
    return multiprocessing.get_context("spawn")


def peak_training_memory(factory: ModelFactory, x: torch.Tensor, y: torch.Tensor, members: int | None,
                         config: TrainConfig, steps: int = 3, timeout: float = 300.0) -> int:
    """Peak bytes needed to train the network `factory()` builds for `steps` optimiser steps.

    CUDA (when `x` is on a CUDA device): max allocated minus allocated before the build. CPU: the peak
    RSS increase of a fresh worker process (so `factory` and the tensors must be picklable, and a script
    calling this needs the usual `if __name__ == "__main__":` guard of multiprocessing).
    """
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        baseline = torch.cuda.memory_allocated(x.device)
        _train_steps(factory, x, y, members, config, steps)
        torch.cuda.synchronize(x.device)
        return int(torch.cuda.max_memory_allocated(x.device) - baseline)
    context = _worker_context()
    receive, send = context.Pipe(duplex=False)
    worker = context.Process(target=_memory_worker, daemon=True,
                             args=(factory, x.cpu(), y.cpu(), members, config, steps, torch.get_num_threads(),
                                   send))
    worker.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise RuntimeError(f"memory worker gave no answer within {timeout:.0f} s")
        status, value = receive.recv()
    finally:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.terminate()
    if status != "ok":
        raise RuntimeError(f"memory worker failed: {value}")
    return int(value)


def memory_method(device: torch.device | str) -> str:
    """One line saying how `peak_training_memory` measures on `device`."""
    if torch.device(device).type == "cuda":
        return "CUDA max allocated bytes during training, minus bytes allocated before the model was built"
    return ("CPU: peak resident set (Linux VmHWM) of a fresh worker process while it trains, minus its "
            "resident set just before the model is built (torch keeps no CPU allocator statistics)")


def parameterised_layers(model: nn.Module) -> int:
    """Layers that own parameters directly (linear, conv, norm); parameter-free modules (ReLU, dropout,
    pooling, containers) are zero-cost in the per-layer breakdown and not counted."""
    return sum(1 for m in model.modules() if any(True for _ in m.parameters(recurse=False)))


def steps_in_epoch(n_train: int, batch_size: int) -> int:
    return max(1, math.ceil(n_train / batch_size))
