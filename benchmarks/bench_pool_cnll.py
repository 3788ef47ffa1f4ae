"""Pool CNLL against its peers, in one run: ensplit's `pool_curve`, its previous implementation, PyEns's
procedure, and the project's own per-ensemble Nelder–Mead baseline.

    python benchmarks/bench_pool_cnll.py [--repeats 3] [--previous REF] [--before-baseline-sizes 1,2,4,...]

Setup: a pool of 64 MNIST-1D MLPs (trained here once and cached in the temp dir; N = 2000 test objects,
C = 10), every n = 1..64, the 280 disjoint ensembles of `disjoint_ensembles(64, n, seed=0)`, 5 TTCV splits
× 2 halves. Timed variants, all on one thread:

- ensplit `pool_curve(mode="after")` and `pool_curve(mode="before")` (the whole curve: accuracy, NLL,
  Brier, ECE and CNLL of every ensemble);
- the previous implementation (`--previous`, a git ref), run in a subprocess from `git archive REF src`;
- PyEns's procedure (bayesgroup/pytorch-ensembles `metrics_kfold(..., temp_scale=True)` as its scripts
  call it), re-implemented below from its published description, not copied: temperature after averaging;
  for each of 5 repeats × 2 halves, τ by SciPy Nelder–Mead from τ = 1 (SciPy's default tolerances: PyEns
  passes `xtol`, which SciPy's Nelder–Mead ignores) on the fit half's NLL of softmax(log p̄ / τ); the NLL
  of the other half at that τ; the mean. Only this fit-and-score core is timed (PyEns's full call also
  scores accuracy, Brier and an AAC curve on every half). It draws its halves with seeded KFold(2,
  shuffle=True) (`kfold_halves`); for the value check it is run on ensplit's halves, which costs the same;
- the project's own baseline: per ensemble, half and split, SciPy Nelder–Mead on log τ (xatol 1e-5),
  after averaging on all 280 ensembles and before averaging on `--before-baseline-sizes` (all n would
  take ~30 min).

The fast variants repeat `--repeats` times, interleaved with the slow references. Writes
benchmarks/results/pool_cnll.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp
from sklearn.model_selection import KFold

from ensplit.metrics import disjoint_ensembles, mean_log_probs, pool_curve, split_masks

POOL, OBJECTS_SEED, SPLITS = 64, 0, 5
PREVIOUS = "108d34a^"  # the commit before averaging.py and temperature_after.py


def mnist1d_pool(path: Path, networks: int = POOL) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 test log-probs `[networks, 2000, 10]` of MLPs (width 64, depth 2) trained 10 epochs on
    MNIST-1D (10,000 samples: 8,000 train, 2,000 test), one seed per network; cached at `path`."""
    if path.exists():
        saved = torch.load(path)
        return saved["log_probs"], saved["labels"]
    from ensplit.data import load_mnist1d
    from ensplit.ensembles import deep_ensemble
    from ensplit.train import TrainConfig, predict_log_probs, train

    data = load_mnist1d(num_samples=10_000)
    seeds = list(range(networks))
    model = deep_ensemble("mlp", seeds, width=64)
    train(model, data, TrainConfig(epochs=10), seeds, progress=False)
    log_probs = predict_log_probs(model, data.x_test, data)
    torch.save({"log_probs": log_probs, "labels": data.y_test}, path)
    return log_probs, data.y_test


def ensplit_halves(objects: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """ensplit's TTCV halves as (fit, measure) index pairs: split 0 A→B, B→A, split 1 ..."""
    masks = split_masks(objects, SPLITS, seed=OBJECTS_SEED).numpy()
    pairs = []
    for split in range(SPLITS):
        a, b = np.flatnonzero(masks[2 * split]), np.flatnonzero(masks[2 * split + 1])
        pairs += [(a, b), (b, a)]
    return pairs


def kfold_halves(objects: int, repeats: int = SPLITS, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """PyEns's halves: KFold(2, shuffle=True) per repeat (seeded here; PyEns leaves it unseeded)."""
    return [pair for r in range(repeats)
            for pair in KFold(n_splits=2, shuffle=True, random_state=seed + r).split(np.arange(objects))]


def _nll(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def pyens_procedure(log_mean: np.ndarray, labels: np.ndarray, halves: list) -> float:
    """PyEns's temperature-scaled NLL of one ensemble (log p̄ `[N, C]`), from its description: Nelder–Mead
    on τ from 1 over the fit half, NLL of the other half at that τ, mean over the halves."""
    total = 0.0
    for fit, measure in halves:
        result = minimize(lambda t, f=fit: _nll(log_softmax(log_mean[f] / t[0], axis=1), labels[f]), x0=[1.0],
                          method="Nelder-Mead")
        total += _nll(log_softmax(log_mean[measure] / result.x[0], axis=1), labels[measure])
    return total / len(halves)


def project_baseline(log_probs: np.ndarray, labels: np.ndarray, halves: list, mode: str) -> float:
    """The project's own baseline for one ensemble `[n, N, C]` (float64): per half, Nelder–Mead on log τ
    (xatol 1e-5, fatol 1e-10), temperature before averaging (members) or after it (log p̄)."""
    if mode == "after":
        log_probs = (logsumexp(log_probs, axis=0) - np.log(len(log_probs)))[None]

    def half_nll(log_tau: float, objects: np.ndarray) -> float:
        member = log_softmax(log_probs[:, objects] / np.exp(log_tau), axis=-1)
        true_class = member[:, np.arange(len(objects)), labels[objects]]
        return float(-(logsumexp(true_class, axis=0) - np.log(len(log_probs))).mean())

    values = []
    for fit, measure in halves:
        result = minimize(lambda x, f=fit: half_nll(x[0], f), x0=[0.0], method="Nelder-Mead",
                          options={"xatol": 1e-5, "fatol": 1e-10})
        values.append(half_nll(result.x[0], measure))
    return float(np.mean(values))


_PREVIOUS_SCRIPT = """
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
import ensplit
assert ensplit.__file__.startswith(sys.argv[1]), ensplit.__file__
from ensplit.metrics import pool_curve
torch.set_num_threads(1)
saved = torch.load(sys.argv[2])
sizes = json.loads(sys.argv[4])
start, cpu = time.perf_counter(), time.thread_time()
curve = pool_curve(saved["log_probs"], saved["labels"], sizes=sizes, min_ensembles=1, mode=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.thread_time() - cpu,
                  "cnll": [e.mean["cnll"] for e in curve]}))
"""


def previous_curve(source: Path, pool_file: Path, mode: str, sizes: list[int]) -> dict:
    """Seconds and mean CNLL per n of the previous implementation's `pool_curve`, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _PREVIOUS_SCRIPT, str(source / "src"), str(pool_file), mode,
                          json.dumps(sizes)], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn) -> tuple[tuple[float, float], object]:
    """((wall seconds, this thread's CPU seconds), fn's value): everything runs on one thread, so CPU time
    is the work done, which other jobs on a shared machine disturb less than wall time."""
    start, cpu = time.perf_counter(), time.thread_time()
    value = fn()
    return (time.perf_counter() - start, time.thread_time() - cpu), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--previous", default=PREVIOUS, help="git ref of the implementation to compare with")
    parser.add_argument("--before-baseline-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--pool-file", type=Path, default=Path(tempfile.gettempdir()) / "ensplit_bench_pool64.pt")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pool_cnll.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    log_probs, labels = mnist1d_pool(args.pool_file)
    sizes = list(range(1, POOL + 1))
    subset = [int(n) for n in args.before_baseline_sizes.split(",")]
    index = {n: disjoint_ensembles(POOL, n, seed=0).numpy() for n in sizes}
    ensembles = sum(len(index[n]) for n in sizes)
    pool64, labels_np = log_probs.double().numpy(), labels.numpy()
    halves = ensplit_halves(len(labels))

    source = Path(tempfile.mkdtemp(prefix="ensplit_previous_"))
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", args.previous, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    previous_commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", args.previous], check=True,
                                     capture_output=True, text=True).stdout.strip()
    current_commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], check=True,
                                    capture_output=True, text=True).stdout.strip()

    def ours(mode: str, kept: list[int]) -> tuple[float, list]:
        return timed(lambda: pool_curve(log_probs, labels, sizes=kept, min_ensembles=1, mode=mode, seed=0))

    def pyens() -> tuple[float, list[float]]:
        means = [mean_log_probs(torch.from_numpy(pool64[index[n]])).numpy() for n in sizes]  # not timed
        return timed(lambda: [pyens_procedure(m, labels_np, halves) for per_n in means for m in per_n])

    def baseline(mode: str, kept: list[int]) -> tuple[float, list[float]]:
        return timed(lambda: [float(np.mean([project_baseline(pool64[m], labels_np, halves, mode)
                                             for m in index[n]])) for n in kept])

    pool_curve(log_probs[:4, :200], labels[:200], sizes=[1, 2], min_ensembles=1)  # warm-up
    fast = [("ensplit after", lambda: ours("after", sizes)), ("ensplit before", lambda: ours("before", sizes)),
            ("ensplit before (subset)", lambda: ours("before", subset)),
            ("previous after", lambda: previous_curve(source, args.pool_file, "after", sizes)),
            ("previous before", lambda: previous_curve(source, args.pool_file, "before", sizes))]
    slow = [("pyens after", pyens), ("project NM after", lambda: baseline("after", sizes)),
            ("project NM before (subset)", lambda: baseline("before", subset))]
    times: dict[str, list[tuple[float, float]]] = {}  # (wall, CPU) seconds per run
    results: dict[str, list[float]] = {}
    for repeat in range(max(args.repeats, len(slow))):
        batch = (fast if repeat < args.repeats else []) + slow[repeat : repeat + 1]  # one slow reference per round
        for name, fn in batch:
            if name.startswith("previous"):
                run = fn()
                seconds, values = (run["seconds"], run["cpu"]), run["cnll"]
            else:
                seconds, values = fn()
                if name.startswith("ensplit"):
                    values = [e.mean["cnll"] for e in values]
            times.setdefault(name, []).append(seconds)
            results[name] = values
            print(f"round {repeat}: {name} {seconds[0]:.3f} s wall, {seconds[1]:.3f} s CPU", flush=True)
    report = _report(args, times, results, sizes, subset, ensembles, load_start, previous_commit, current_commit)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")


def _report(args, times, results, sizes, subset, ensembles, load_start, previous_commit, current_commit) -> str:
    wall = {name: [t[0] for t in runs] for name, runs in times.items()}
    cpu = {name: [t[1] for t in runs] for name, runs in times.items()}
    med = {name: statistics.median(t) for name, t in cpu.items()}
    med_wall = {name: statistics.median(t) for name, t in wall.items()}

    def cell(name: str) -> str:
        def one(values: list[float]) -> str:
            middle = statistics.median(values)
            return f"{middle:.3g} ({min(values):.3g}–{max(values):.3g})" if len(values) > 1 else f"{middle:.3g}"
        return f"{one(cpu[name])} | {one(wall[name])}"

    ours_after = np.array(results["ensplit after"])
    ours_before = np.array(results["ensplit before"])
    per_ensemble = _per_ensemble_after(args)
    pyens_gap = float(np.abs(np.array(results["pyens after"]) - per_ensemble).max())
    nm_after_gap = float(np.abs(np.array(results["project NM after"]) - ours_after).max())
    subset_ours = np.array(results["ensplit before (subset)"])
    nm_before_gap = float(np.abs(np.array(results["project NM before (subset)"]) - subset_ours).max())
    previous_after_gap = float(np.abs(np.array(results["previous after"]) - ours_after).max())
    previous_before_gap = float(np.abs(np.array(results["previous before"]) - ours_before).max())
    subset_ensembles = sum(POOL // n for n in subset)

    def ratio(slow: str, fast: str) -> str:
        return f"**{med[slow] / med[fast]:.1f}×** (wall {med_wall[slow] / med_wall[fast]:.1f}×)"

    lines = [
        "# Pool CNLL: ensplit vs its previous implementation, PyEns's procedure and the project's NM baseline",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}; commit {current_commit} "
        f"(previous implementation: {previous_commit}, `--previous {args.previous}`)",
        f"- machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} cores (shared with other jobs), "
        f"torch {torch.__version__}, one torch thread everywhere (NumPy/SciPy single-threaded); load average "
        f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end",
        f"- pool: 64 MNIST-1D MLPs (width 64, depth 2, 10 epochs on 8,000 samples, seeds 0..63), float32 test "
        f"log-probs, N = 2000, C = 10; n = 1..64: {ensembles} disjoint ensembles "
        "(`disjoint_ensembles(64, n, seed=0)`), 5 TTCV splits × 2 halves (ensplit's halves, `split_masks(2000, 5, 0)`)",
        f"- fast variants: median (range) of {args.repeats} interleaved repeats; slow references once. CPU: the "
        "timed thread's CPU seconds (everything runs on one thread; the previous implementation reports its "
        "own); wall: elapsed seconds, which other jobs on the machine inflate",
        "",
        "| variant | CPU seconds | wall seconds |",
        "|---|---|---|",
        f"| ensplit `pool_curve(mode=\"after\")`, all n (every metric) | {cell('ensplit after')} |",
        f"| ensplit `pool_curve(mode=\"before\")`, all n | {cell('ensplit before')} |",
        f"| previous implementation, after | {cell('previous after')} |",
        f"| previous implementation, before | {cell('previous before')} |",
        f"| PyEns's procedure (fit-and-score core), after, {ensembles} ensembles | {cell('pyens after')} |",
        f"| project's NM on log τ, after, {ensembles} ensembles | {cell('project NM after')} |",
        f"| ensplit before, n ∈ {{{args.before_baseline_sizes}}} ({subset_ensembles} ensembles) "
        f"| {cell('ensplit before (subset)')} |",
        f"| project's NM on log τ, before, same n | {cell('project NM before (subset)')} |",
        "",
        "Ratios (median CPU times; median wall times in brackets):",
        "",
        f"- after averaging: ensplit vs PyEns's procedure {ratio('pyens after', 'ensplit after')}, vs the project's "
        f"NM baseline {ratio('project NM after', 'ensplit after')}, vs the previous implementation "
        f"{ratio('previous after', 'ensplit after')}",
        f"- before averaging: ensplit vs the previous implementation {ratio('previous before', 'ensplit before')}, "
        f"vs the project's NM baseline (n ∈ {{{args.before_baseline_sizes}}}) "
        f"{ratio('project NM before (subset)', 'ensplit before (subset)')}",
        "",
        "Values:",
        "",
        f"- per-ensemble CNLL after averaging, ensplit vs PyEns's procedure on the same halves: max |Δ| "
        f"{pyens_gap:.1e} (Nelder–Mead's default tolerance 1e-4 on τ)",
        f"- mean CNLL per n: vs the project's NM baseline {nm_after_gap:.1e} (after), {nm_before_gap:.1e} (before, "
        f"subset); vs the previous implementation {previous_after_gap:.1e} (after), {previous_before_gap:.1e} (before)",
        "",
        "Baselines: PyEns's procedure is re-implemented from its description in this file (`pyens_procedure`; "
        "`kfold_halves` draws its seeded KFold halves), not PyEns's code; the project's NM baseline is "
        "`project_baseline`; the previous implementation is `pool_curve` at the commit above, in a subprocess.",
        "",
        "Reproduce: `python benchmarks/bench_pool_cnll.py "
        f"--repeats {args.repeats} --before-baseline-sizes {args.before_baseline_sizes}`",
    ]
    return "\n".join(lines) + "\n"


def _per_ensemble_after(args) -> np.ndarray:
    """ensplit's CNLL after averaging for each of the 280 ensembles, in the order `pyens` scores them."""
    from ensplit.metrics import cnll_ttcv_indexed

    saved = torch.load(args.pool_file)
    sets = [disjoint_ensembles(POOL, n, seed=0) for n in range(1, POOL + 1)]
    cnll = cnll_ttcv_indexed(saved["log_probs"], saved["labels"], sets, "after", SPLITS, OBJECTS_SEED)
    return torch.cat([c for c, _ in cnll]).numpy()


if __name__ == "__main__":
    main()
