#!/usr/bin/env bash
# Build kernels/gemm_sm90a.cu with nvcc, check it against float64 and time it against torch.matmul (cuBLAS),
# all in one device run. From the repository root:
#     bash benchmarks/sm90a_standalone/run.sh
# ThunderKittens headers: $THUNDERKITTENS_ROOT/include, else .carry/ThunderKittens/include (the device run),
# else ../shared/toolchain/ThunderKittens/include. Extra variants: VARIANTS="g16:-DHKJIT_SM90A_GROUP_M=16 ...".
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
if [ -n "${THUNDERKITTENS_ROOT:-}" ]; then TK="$THUNDERKITTENS_ROOT/include"
elif [ -d .carry/ThunderKittens/include ]; then TK="$ROOT/.carry/ThunderKittens/include"
else TK="$ROOT/../shared/toolchain/ThunderKittens/include"; fi
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
BUILD=${BUILD:-/tmp/hkjit_sm90a_build}
OUTDIR=${OUT:-$BUILD}
mkdir -p "$BUILD"
FLAGS=(-gencode=arch=compute_90a,code=sm_90a -O3 -std=c++20 --expt-relaxed-constexpr --expt-extended-lambda
       -DKITTENS_HOPPER -I"$TK" -Ikernels -Xcompiler=-fPIC -shared)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv || true
"$NVCC" --version | tail -2
build() {  # name extra-flags...
    local name=$1; shift
    local t0=$(date +%s%N)
    "$NVCC" "${FLAGS[@]}" -Xptxas=-v "$@" kernels/gemm_sm90a.cu -o "$BUILD/lib$name.so" 2>"$BUILD/ptxas_$name.txt"
    echo "built $name in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(grep -A2 'gemm_kernel' "$BUILD/ptxas_$name.txt" | grep -E 'registers|spill' | tr -s ' ' | tr '\n' ' ')"
    LIBS+=("$name=$BUILD/lib$name.so")
}
LIBS=()
build hk
for v in ${VARIANTS:-}; do build "${v%%:*}" ${v#*:}; done
if command -v cuobjdump >/dev/null; then
    cuobjdump -sass "$BUILD/libhk.so" > "$BUILD/sass.txt"
    echo "SASS: $(grep -c HGMMA "$BUILD/sass.txt") HGMMA, $(grep -cE '\b(LDL|STL)\b' "$BUILD/sass.txt") LDL/STL, $(grep -c UTMALDG "$BUILD/sass.txt") UTMALDG, $(grep -c UTMASTG "$BUILD/sass.txt") UTMASTG"
fi
set -o pipefail
PYTHONUNBUFFERED=1 timeout ${CHECK_TIMEOUT:-480} python3 benchmarks/sm90a_standalone/check.py "${LIBS[@]}" 2>&1 | tee "$OUTDIR/check_log.txt"
