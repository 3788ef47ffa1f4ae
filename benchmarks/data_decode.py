"""Time decoding a Parquet image data set (default: the shared CIFAR-10) on first use and from the cache.

    python benchmarks/data_decode.py [PATH] [--workers N]

Prints one JSON line. Uses a fresh temporary cache so the first load really decodes. Process CPU time is
reported next to wall time because shared machines make wall time noisy (the load average says how noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ensplit.data.images import load_image_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
    parser.add_argument("path", nargs="?", default=str(default))
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: up to 8)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ENSPLIT_CACHE"] = cache
        timings = {}
        for label in ("first_load", "cached_load"):
            wall, cpu = time.perf_counter(), time.process_time()
            data = load_image_dataset(args.path, workers=args.workers)
            timings[label] = {"wall_s": round(time.perf_counter() - wall, 2),
                              "cpu_s": round(time.process_time() - cpu, 2)}
    print(json.dumps({
        "path": args.path, "train": list(data.x_train.shape), "test": list(data.x_test.shape),
        **timings, "workers": args.workers, "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }))


if __name__ == "__main__":
    main()
