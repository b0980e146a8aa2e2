#!/bin/sh
# The GPU checks of one call (docs/GPU.md "2. Two calls"): run from the tree's root, weights/ in the tree, after
# .gpu/install.sh ran on the same machine. Every result goes under $OUT, in five files (a call returns at most
# eight): summary.txt, logs.txt and the benchmarks' JSON. Each step has its own time limit, and a step that fails
# or runs out of time does not stop the next. About 8 minutes on an H100 at most.
#
#     OUT=/some/folder sh scripts/gpu_checks.sh
set -u
SITE=${SITE:-/root/dubber-site}
export PYTHONPATH="$PWD:$SITE"
OUT=${OUT:?set OUT to the folder the results go to}
mkdir -p "$OUT"
CLIP="$OUT/astronaut_1080p.mp4"

step() {  # step NAME SECONDS COMMAND...: its output appended to $OUT/logs.txt, its exit status to summary.txt
    name=$1
    limit=$2
    shift 2
    start=$(date +%s)
    echo "===== $name: $*" >>"$OUT/logs.txt"
    timeout "$limit" "$@" >>"$OUT/logs.txt" 2>&1
    status=$?
    echo "$name: exit $status in $(($(date +%s) - start)) s" | tee -a "$OUT/summary.txt"
}

{
    echo "cores: $(nproc)"
    nvidia-smi 2>&1
} >"$OUT/summary.txt"
# The CUDA tests: every model and a whole dub in float16 and bfloat16, the torch paste against OpenCV's.
step pytest_gpu 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_dtypes.py tests/test_torch_compositor.py
# 1080p at the defaults (float16 on CUDA, 1 step), against a plain re-encode at the same preset in the same run.
step bench_dub_1080p 180 python3 benchmarks/bench_dub.py --device cuda --steps 1 --memory-seconds "" --height 1080 \
    --clip-out "$CLIP"
cp benchmarks/results/dub_cuda_1080p.json "$OUT/" 2>/dev/null
# The renderer alone: crops per second by steps and batch.
step bench_renderer 120 python3 benchmarks/bench_renderer.py --device cuda --dtype bfloat16 --steps 1,8 \
    --batches 8,64,256 --repeats 2
cp benchmarks/results/renderer_cuda.json "$OUT/" 2>/dev/null
# Pass 1 with one tracker and with segments at once, on this machine's cores.
if [ -f "$CLIP" ]; then
    step bench_tracking 120 python3 benchmarks/bench_tracking.py "$CLIP" --workers 2,4 --rounds 1
    cp benchmarks/results/tracking_*cores.json "$OUT/" 2>/dev/null
    rm -f "$CLIP"
fi
cat "$OUT/summary.txt"
