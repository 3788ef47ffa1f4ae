#!/usr/bin/env bash
# The prepared GPU run (issue 16): one command on a lent GPU machine, results under $OUT.
#
# Here, once:  cp -r ../shared/data/cifar10 data/       (data/ is git-ignored)
#              echo /.whl/ >> .git/info/exclude; python -m pip download --no-deps --only-binary=:all: \
#                --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 -d .whl \
#                pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#                mnist1d==0.0.2.post1          (what the device image lacks of ensplit's dependencies)
# Device:      run(command="bash benchmarks/gpu_session.sh", carry=["data", ".whl"], timeout_s=600)
# CPU check:   SMOKE=1 OUT=/tmp/gpu-smoke bash benchmarks/gpu_session.sh   (tiny sizes, every step once)
#
# Steps, each under its own time limit so the whole run ends inside one 10-minute call:
#   1. nvidia-smi samples GPU utilisation and memory every second into $OUT/gpu_util.csv;
#   2. the member-batched step and the conv strategies on the GPU (bench_member_batched.py, one process per
#      CPU case; bench_member_conv.py --write-table, the measured table for ENSPLIT_CONV_TABLE);
#   3. a CIFAR-10 memory-split study: ResNet-20 at five widths, pools by the study's rule capped at
#      POOL_MAX, data resident on the GPU with augmentation there, bf16; its JSON result and report;
#   4. a short summary ($OUT/summary.txt): wall time per step, peak GPU memory, the study's MSA and OMS.
# Sizes are environment variables (WIDTHS, EPOCHS, POOL_MAX, PRECISION, COMPILE, STUDY_LIMIT) so a rerun
# can be resized without editing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
SMOKE=${SMOKE:-0}
if [ -d .whl ] && ! python3 -c "import pydantic, mnist1d" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_session: could not install the carried wheels" >&2; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu; WIDTHS=${WIDTHS:-2,4}; EPOCHS=${EPOCHS:-1}; POOL_MAX=${POOL_MAX:-2}; SUBSET="--train-subset 256 --test-subset 128"
  BENCH_FAMILIES=mlp; STUDY_LIMIT=${STUDY_LIMIT:-300}; BENCH_LIMIT=120
else
  DEVICE=cuda; WIDTHS=${WIDTHS:-4,8,16,32,64}; EPOCHS=${EPOCHS:-2}; POOL_MAX=${POOL_MAX:-4}; SUBSET=""
  BENCH_FAMILIES=mlp,cnn1d; STUDY_LIMIT=${STUDY_LIMIT:-330}; BENCH_LIMIT=150
fi
PRECISION=${PRECISION:-bf16}; COMPILE=${COMPILE:-false}
: > "$OUT/summary.txt"
: > "$OUT/steps.log"
python3 - <<'EOF' | tee -a "$OUT/summary.txt"
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)")
EOF

SAMPLER=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 1 > "$OUT/gpu_util.csv" 2>&1 &
  SAMPLER=$!
fi

step() {  # step NAME LIMIT COMMAND...: run with a time limit; stderr to steps.log; record the wall time
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  echo "== $name: $*" >> "$OUT/steps.log"
  timeout "$limit" "$@" 2>> "$OUT/steps.log"
  local rc=$?
  echo "$name: exit $rc, $((SECONDS - start)) s wall" >> "$OUT/summary.txt"
  echo "$name: exit $rc, $((SECONDS - start)) s wall" >&2
}

# $OUT brings back at most 8 files: summary.txt, steps.log, gpu_util.csv, member_batched.md,
# member_conv_cuda.md, conv_table_cuda.json, study.json, report.html
step member_batched "$BENCH_LIMIT" python3 benchmarks/bench_member_batched.py --processes 1 --repeats 3 \
  --families "$BENCH_FAMILIES" --devices "$DEVICE" --out "$OUT/member_batched.md" >> "$OUT/steps.log"
if [ "$SMOKE" != 1 ]; then
  step member_conv "$BENCH_LIMIT" python3 benchmarks/bench_member_conv.py --device cuda --repeats 3 \
    --write-table "$OUT/conv_table_cuda.json" >> "$OUT/steps.log"
  cp benchmarks/results/member_conv_cuda.md "$OUT/" 2>/dev/null
fi
# shellcheck disable=SC2086  # SUBSET is a list of options
step study "$STUDY_LIMIT" python3 -m ensplit study --dataset data/cifar10 --family resnet --depth 20 \
  --widths "$WIDTHS" --pool-max "$POOL_MAX" --pool-min 2 --epochs "$EPOCHS" --device "$DEVICE" \
  --precision "$PRECISION" --compile "$COMPILE" --quiet --json --out /tmp/gpu-study $SUBSET > "$OUT/study.json"
cp /tmp/gpu-study/report.html "$OUT/" 2>/dev/null
python3 - "$OUT" /tmp/gpu-study <<'EOF' >> "$OUT/summary.txt" 2>&1
import json, sqlite3, sys
from pathlib import Path
database = Path(sys.argv[2]) / "results.sqlite"
if database.exists():  # the finished jobs, also when the study ran out of time
    print("width | jobs | seconds | seconds per epoch per job (median)")
    for width, jobs, seconds, per_epoch in sqlite3.connect(database).execute(
            "SELECT width, COUNT(*), SUM(seconds), GROUP_CONCAT(seconds_per_epoch, ';') FROM jobs GROUP BY width"):
        epochs = sorted(e for chunk in per_epoch.split(";") for e in json.loads(chunk))
        print(f"{width} | {jobs} | {seconds:.1f} | {epochs[len(epochs) // 2]:.2f}" if epochs else f"{width} | {jobs} |")
text = (Path(sys.argv[1]) / "study.json").read_text(encoding="utf-8", errors="replace").strip()
if not text:
    print("study: no JSON result (see steps.log)")
    raise SystemExit
print("budget B | best n | best width | MSA (single - best CNLL) | best CNLL | single CNLL")
for b in json.loads(text)["budgets"]:
    print(f"{b['budget']:,} | {b['best_n']} | {b['best_width']} | {b['advantage']:.4f} | {b['best_cnll']:.4f} "
          f"| {b['single_cnll']:.4f}")
EOF
[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
if [ -s "$OUT/gpu_util.csv" ]; then
  awk -F', ' '{gsub(/ %/,"",$2); gsub(/ MiB/,"",$3); if ($2+0>0) {n++; u+=$2}; if ($3+0>m) m=$3+0}
    END {printf "GPU utilisation: mean %.0f%% over %d busy seconds; peak memory used %d MiB\n", (n?u/n:0), n, m}' \
    "$OUT/gpu_util.csv" >> "$OUT/summary.txt"
fi
cat "$OUT/summary.txt"
