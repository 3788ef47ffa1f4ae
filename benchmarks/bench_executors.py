"""Executor overhead and study throughput: in-process vs process pool vs Ray on a small default-like study.

    python benchmarks/bench_executors.py [--epochs 3] [--pool-max 16] [--workers 2] [--executors local,process,ray]

The study keeps the default widths (16…256), family, data and pool rule, with fewer epochs and smaller pools
so it runs in minutes on a laptop. Each executor trains the same study into a fresh folder; the table gives
wall time, networks per minute and the ratio to the in-process run, all measured in this one run. Ray's
start-up is timed apart from the study. Writes `benchmarks/results/executors.md` (or `--out`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ensplit.experiments.study import run_study
from ensplit.experiments.study_config import StudyConfig, plan_pool_jobs
from ensplit.runs.executors import make_executor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pool-min", type=int, default=4)
    parser.add_argument("--pool-max", type=int, default=16)
    parser.add_argument("--members-per-run", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="local,process,ray")
    parser.add_argument("--out", default="executors.md", help="file name under benchmarks/results/")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the in-process baseline gets one thread too: the same work per core
    config = StudyConfig.from_mapping({"epochs": args.epochs, "pool_min": args.pool_min, "pool_max": args.pool_max,
                           "members_per_run": args.members_per_run})
    jobs = plan_pool_jobs(config)
    networks = sum(len(j.seeds) for j in jobs)
    rows, pools, wall = [], {}, {}
    ray_start = None
    for name in args.executors.split(","):
        if name == "ray":
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            ray_start = time.perf_counter() - start
        executor = make_executor(name, workers=args.workers, progress=False)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            store = run_study(config, folder, progress=False, executor=executor).store
            wall[name] = time.perf_counter() - start
            pools[name] = {w: store.pool(w)[0] for w in config.widths}
            store.close()
        print(f"{name}: {wall[name]:.1f} s", flush=True)
    base = args.executors.split(",")[0]
    for name, seconds in wall.items():
        same = all(np.array_equal(pools[name][w], pools[base][w]) for w in config.widths)
        workers = 1 if name == "local" else args.workers
        rows.append(f"| {name} | {workers} | {seconds:.1f} | {60 * networks / seconds:.0f} "
                    f"| {seconds / wall[base]:.2f} | {'yes' if same else 'NO'} |")
    default = StudyConfig()
    same_as_default = all(getattr(config, f) == getattr(default, f) for f in ("widths", "pool_min", "pool_max")) \
        and config.recipe.train.epochs == default.recipe.train.epochs
    title = "the default study" if same_as_default else "a default-like study (fewer epochs or smaller pools)"
    lines = [f"# Executors on {title}", "",
             f"Widths {list(config.widths)}, {config.recipe.family} on {config.recipe.dataset}, pool rule with "
             f"pool_min "
             f"{config.pool_min}, pool_max {config.pool_max}, {args.epochs} epochs: {len(jobs)} jobs, {networks} "
             f"networks. One torch thread per worker. Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
             "cores while measuring (other jobs may share the machine; the load says how much).", "",
             f"| executor | workers | wall s | networks / min | wall / {base} | predictions identical |",
             "|---|---|---|---|---|---|", *rows]
    if ray_start is not None:
        lines += ["", f"Ray start-up (`ray.init`, local instance), not counted above: {ray_start:.1f} s."]
    out = Path(__file__).parent / "results" / args.out
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[-len(rows) - 3:]))
    print(f"written {out}")


if __name__ == "__main__":
    main()
