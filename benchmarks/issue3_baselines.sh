#!/usr/bin/env bash
# The issue-3 benchmarks: seven methods x three seeds on mfeat and on avdigits (default grids).
# Usage: benchmarks/issue3_baselines.sh OUT_DIR   (resumable: rerun the same command after a kill)
set -euo pipefail
out="${1:-benchmark-out}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
methods="static,unimodal,pe,tmc,qmf,ogm_ge,modality_dropout"
bin="$(dirname "$0")/../.venv/bin/robustfusion"
/usr/bin/time -v "$bin" benchmark --dataset mfeat --methods "$methods" --seeds 0,1,2 \
    --batch-size 128 --out "$out/mfeat" --no-progress
# avdigits must be built first: robustfusion prepare avdigits (needs espeak-ng). 6 epochs: the
# CNN runs are ~15x slower than mfeat on the shared 2-core machine (30 epochs would take hours).
/usr/bin/time -v "$bin" benchmark --dataset avdigits --methods "$methods" --seeds 0,1,2 \
    --batch-size 128 --epochs 6 --out "$out/avdigits" --no-progress
