#!/usr/bin/env bash
# One device call on the H200 for the sm_90a kernel work: the standalone harness (run.sh: every configuration built,
# checked against float64, planted bugs caught, timed against cuBLAS), the CUDA-graph tests through hkjit
# (tests/test_gpu_graphs.py, plus test_gemm's gpu tests with the default configuration), and a mutation check of
# the graph tests (a copy of the tree whose split-K slices drop their last K block: those graph tests must fail).
# From the repository root (on the device: cd .carry/wt, with ../ThunderKittens and ../../.whl/platformdirs):
#     bash tools/sm90a_standalone/device_call.sh
# Logs and tables go to $OUT (at most 8 files come back from a device call; a full run writes 9: run.sh's
# ptxas_all.txt is the one left out, fetch its lines from run_log.txt).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-/tmp/hkjit-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ! python3 -c "import platformdirs" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$ROOT"/../../.whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
export THUNDERKITTENS_ROOT=${THUNDERKITTENS_ROOT:-$ROOT/../ThunderKittens}
GRAPH_CONFIGS=$(python3 -c "
import re; s = open('tests/test_gpu_graphs.py').read()
print(' '.join(sorted(set(re.findall(r'^    \(\"([^\"]+)\"', s, re.M)))))")
warm() {  # cache dir, source root, configurations...: build them ahead (CPU, in parallel)
    local cache=$1 src=$2; shift 2
    local args=(); for c in "$@"; do args+=(--config "$c"); done
    (cd "$src" && HKJIT_CACHE_DIR=$cache PYTHONPATH=$src/src:${PYTHONPATH#*:} python3 -m hkjit warmup "${args[@]}" -j 8)
}
# the mutant tree: split-K slices drop their last K block (run.sh's mut_kslice)
MT=/tmp/hkjit-mutant; rm -rf "$MT"; mkdir -p "$MT"; cp -r kernels src tests pyproject.toml "$MT"/
sed -i 's/(int)((int64_t)(split + 1) \* k_blocks \/ splits)}/(int)((int64_t)(split + 1) * k_blocks \/ splits) - (splits > 1)}/' "$MT/kernels/gemm_sm90a.cu"
cmp -s kernels/gemm_sm90a.cu "$MT/kernels/gemm_sm90a.cu" && echo "MUTANT TREE UNCHANGED (sed matched nothing)"
# GRAPHS_ONLY=1: only the graph tests and their mutation check (no harness run, no test_gemm)
if [ -n "${GRAPHS_ONLY:-}" ]; then DEFAULT=(); GEMM_TESTS=(); else DEFAULT=(128x256); GEMM_TESTS=(tests/test_gemm.py); fi
{ warm /tmp/hkc "$ROOT" "${DEFAULT[@]}" $GRAPH_CONFIGS > "$OUT/warmup.txt" 2>&1 &
  warm /tmp/hkm "$MT" $(printf '%s\n' $GRAPH_CONFIGS | grep splitk) > "$OUT/warmup_mutant.txt" 2>&1 & wait; } &
WP=$!
[ -n "${GRAPHS_ONLY:-}" ] || bash tools/sm90a_standalone/run.sh > "$OUT/run_log.txt" 2>&1
wait $WP
echo "== graph tests (and test_gemm -m gpu) =="
HKJIT_CACHE_DIR=/tmp/hkc HKJIT_TEST_CACHE_DIR=/tmp/hkc timeout 300 python3 -m pytest -m gpu -q -rs -p no:cacheprovider \
    tests/test_gpu_graphs.py "${GEMM_TESTS[@]}" 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -6
echo "== graph tests on the mutant tree (split-K cases must FAIL) =="
(cd "$MT" && HKJIT_CACHE_DIR=/tmp/hkm HKJIT_TEST_CACHE_DIR=/tmp/hkm PYTHONPATH=$MT/src:${PYTHONPATH#*:} timeout 200 \
    python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu_graphs.py -k splitk 2>&1) | tee -a "$OUT/pytest_gpu.txt" | tail -4
[ -n "${GRAPHS_ONLY:-}" ] || grep -E "^(FAILED|SMOKE|correctness)" "$OUT/run_log.txt" | cut -c1-300
