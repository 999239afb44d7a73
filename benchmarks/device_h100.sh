#!/usr/bin/env bash
# One device run on the lent H100 (or any CUDA Hopper machine): install hkjit, build the sm_90a kernel through
# the cache, run the GPU tests, the selftest and the bench against cuBLAS. From the repository root:
#     bash benchmarks/device_h100.sh
#     STEPS="warmup tests bench" bash benchmarks/device_h100.sh      # only some steps (a short device session)
# Steps: doctor warmup latency profile host tests selftest tune bench (default: all). TUNE_SHAPES / BENCH_SHAPES
# (default llm), TUNE_REPEAT / BENCH_REPEAT, TUNE_CONFIGS (default: every listed configuration; e.g.
# "all,128x96,64x96-pingpong" adds configurations named by their parameters), BENCH_CONFIGS (default
# "--configs all"; "" for none) and BENCH_ARGS (e.g. "--graph") tune the last two.
# Needs: torch (CUDA), nvcc, ninja, filelock, xxhash; platformdirs as a wheel in .whl/ and ThunderKittens in
# .carry/ThunderKittens (or THUNDERKITTENS_ROOT) when the machine cannot download them.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import platformdirs" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export THUNDERKITTENS_ROOT=${THUNDERKITTENS_ROOT:-$PWD/.carry/ThunderKittens}
export HKJIT_CACHE_DIR=${HKJIT_CACHE_DIR:-/tmp/hkjit-cache}
OUT=${OUT:-/tmp/hkjit-out}; mkdir -p "$OUT"
STEPS=${STEPS:-doctor warmup latency profile host tests selftest tune bench}
want() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo; echo "===== $* ====="; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
python3 -c "import platform, sys, torch; print(platform.processor() or platform.machine(), sys.version.split()[0], torch.__version__)"
grep -m1 "model name" /proc/cpuinfo
if want doctor; then step doctor;   python3 -m hkjit doctor 2>&1 | tee "$OUT/doctor.txt"; fi
if want warmup; then step "warmup (cold, every configuration)"; python3 -m hkjit warmup --config all -j 8 2>&1 | tee "$OUT/warmup.txt"; fi
if want warmup; then step "warmup (warm)"; python3 -m hkjit warmup 2>&1 | tee -a "$OUT/warmup.txt"; fi
if want latency; then step "cache latency"; python3 benchmarks/cache_latency.py --processes 11 --device cuda --cache-dir "$HKJIT_CACHE_DIR" 2>&1 | tee "$OUT/latency.txt"; fi
if want profile; then step "warm start profile"; python3 benchmarks/warm_hit_profile.py --phases 2>&1 | tee "$OUT/profile.txt"; fi
if want profile; then step "warm hit through the public API"; python3 benchmarks/warm_call.py 2>&1 | tee "$OUT/warm_call.txt"; fi
# the same with the default cache root (no HKJIT_CACHE_DIR): $XDG_CACHE_HOME/hkjit linked to the same cache, as
# cache_latency.py does (a copy would change every file's ctime and make the first process re-hash the module)
if want profile; then XDG=$(mktemp -d); ln -s "$(realpath "$HKJIT_CACHE_DIR")" "$XDG/hkjit"; fi
if want profile; then
step "warm start profile, default root"; env -u HKJIT_CACHE_DIR XDG_CACHE_HOME="$XDG" \
  python3 benchmarks/warm_hit_profile.py --phases 2>&1 | tee "$OUT/profile_default_root.txt"
fi
if want host; then step "host cost per call"; python3 benchmarks/host_overhead.py 2>&1 | tee "$OUT/host_overhead.txt"; fi
if want tests; then step "pytest -m gpu"; HKJIT_TEST_CACHE_DIR=$HKJIT_CACHE_DIR timeout 300 python3 -m pytest -m gpu -q -rs -s tests 2>&1 | tee "$OUT/pytest_gpu.txt"; fi
if want selftest; then step selftest; python3 -m hkjit selftest 2>&1 | tee "$OUT/selftest.txt"; fi
if want tune; then step "tune (LLM set, every configuration)"; python3 -m hkjit tune --shapes ${TUNE_SHAPES:-llm} ${TUNE_CONFIGS:+--configs $TUNE_CONFIGS} --repeat ${TUNE_REPEAT:-50} 2>&1 | tee "$OUT/tune.txt"; fi
if want bench; then
  step "bench (LLM set: the default path after tuning, and every configuration forced)"
  python3 -m hkjit bench --shapes ${BENCH_SHAPES:-llm} ${BENCH_CONFIGS---configs all} --repeat ${BENCH_REPEAT:-100} ${BENCH_ARGS:-} --plot "$OUT/bench_llm.png" 2>&1 | tee "$OUT/bench.txt"
fi
