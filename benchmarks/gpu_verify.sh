#!/usr/bin/env bash
# Everything the GPU fast path needs checked, in one call (<= 10 min) from the repo root of
# a GPU machine (CUDA 13, torch 2.11, nvcc, ninja, no network):
#   1. pip install --no-deps -e .         2. build the CUDA extension (csrc/)
#   3. pytest tests/test_cuda_ops.py      4. benchmarks/train_step.py   5. benchmarks/ops.py (+ nerfacc probe)
# Outputs (7 files) go to $OUT (default benchmarks/results/gpu-<timestamp>):
#   verify.log, summary.txt, pytest.xml, train_step-cuda.{json,md}, ops-cuda.{json,md}
# Each stage has its own time limit so the whole run stays under 10 minutes; a failed stage
# is recorded in summary.txt and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
LOG="$OUT/verify.log"
SUMMARY="$OUT/summary.txt"
PY="${PYTHON:-python}"
BUDGET="${VERIFY_BUDGET_S:-570}"
: > "$SUMMARY"
exec > >(tee -a "$LOG") 2>&1

left() { echo $(( BUDGET - SECONDS )); }
stage() {  # stage NAME MAX_SECONDS CMD...
  local name="$1" max="$2"; shift 2
  local limit; limit=$(left); (( limit > max )) && limit=$max
  if (( limit < 10 )); then echo "$name: skipped (time budget spent)" | tee -a "$SUMMARY"; return; fi
  echo "===== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=10 "$limit" "$@"
  local rc=$?
  local verdict="ok"; (( rc != 0 )) && verdict="FAILED (exit $rc$( (( rc == 124 )) && echo ', timed out'))"
  echo "$name: $verdict in $(( SECONDS - t0 ))s" | tee -a "$SUMMARY"
}

echo "fastminerf GPU verification, $(date -u), commit $(git rev-parse --short HEAD 2>/dev/null)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
command -v nvcc && nvcc --version | tail -2

stage install 90 "$PY" -m pip install --no-deps --no-build-isolation -e .
stage build 240 env FASTMINERF_VERBOSE_BUILD=1 "$PY" -c "
import logging, time; logging.basicConfig(level=logging.INFO)
t = time.perf_counter()
from fastminerf.ops._cuda_ext import load
load(verbose=True)
print(f'extension built and loaded in {time.perf_counter() - t:.1f} s')"
stage pytest 200 "$PY" -m pytest tests/test_cuda_ops.py -v -s -rs -p no:cacheprovider --junitxml="$OUT/pytest.xml"
stage train_step 180 "$PY" benchmarks/train_step.py --out "$OUT"
NERFACC_T=$(( $(left) - 100 )); (( NERFACC_T < 30 )) && NERFACC_T=30
stage ops 400 "$PY" benchmarks/ops.py --out "$OUT" --nerfacc-timeout "$NERFACC_T"
echo "total ${SECONDS}s"
echo "total: ${SECONDS}s" >> "$SUMMARY"
cat "$SUMMARY"
