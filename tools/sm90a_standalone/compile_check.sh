#!/usr/bin/env bash
# Compile-only check of kernels/gemm_sm90a.cu's configuration defines, no GPU needed (nvcc 13 + ThunderKittens):
# every supported configuration must compile with 0 spills / 0 stack, every unsupported one must fail with the
# message naming its define. From the repository root:  bash tools/sm90a_standalone/compile_check.sh [--all]
# (without --all only the rejections are checked: ~10 s each). NVCC / THUNDERKITTENS_ROOT override the defaults.
set -uo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda-13.0/bin/nvcc)}
TK=${THUNDERKITTENS_ROOT:-../shared/toolchain/ThunderKittens}/include
[ -x "$NVCC" ] || { echo "skip: no nvcc ($NVCC)"; exit 0; }
[ -d "$TK" ] || { echo "skip: no ThunderKittens headers ($TK)"; exit 0; }
FLAGS=(-gencode=arch=compute_90a,code=sm_90a -O3 -std=c++20 --expt-relaxed-constexpr --expt-extended-lambda
       -DKITTENS_HOPPER -I"$TK" -Ikernels)
OBJ=$(mktemp -d)
trap 'rm -rf "$OBJ"' EXIT
bad=0
reject() {  # expected message fragment, flags...
    local want=$1; shift
    if "$NVCC" "${FLAGS[@]}" -c "$@" kernels/gemm_sm90a.cu -o "$OBJ/x.o" >"$OBJ/log" 2>&1; then
        echo "FAIL: $* compiled (must be refused)"; bad=1
    elif grep -q -- "$want" "$OBJ/log"; then echo "ok: $* refused ($want)"
    else echo "FAIL: $* refused without naming $want:"; grep -m2 error "$OBJ/log"; bad=1; fi
}
reject HKJIT_SM90A_BM -DHKJIT_SM90A_BM=100
reject HKJIT_SM90A_BN -DHKJIT_SM90A_BN=100
reject HKJIT_SM90A_BN -DHKJIT_SM90A_BN=48
reject HKJIT_SM90A_BN -DHKJIT_SM90A_BN=272
reject "HKJIT_SM90A_BM x HKJIT_SM90A_BN" -DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=144
reject "HKJIT_SM90A_BM x HKJIT_SM90A_BN" -DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=256
reject HKJIT_SM90A_STAGES -DHKJIT_SM90A_STAGES=6
reject HKJIT_SM90A_STAGES -DHKJIT_SM90A_STAGES=1
reject HKJIT_SM90A_SPLITK -DHKJIT_SM90A_SPLITK=2
reject HKJIT_SM90A_REPACK -DHKJIT_SM90A_REPACK=2
reject HKJIT_SM90A_CLUSTER -DHKJIT_SM90A_CLUSTER=3
reject HKJIT_SM90A_PINGPONG -DHKJIT_SM90A_PINGPONG=2
reject HKJIT_SM90A_PINGPONG -DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=128
reject "HKJIT_SM90A_BM x HKJIT_SM90A_BN" -DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=256
reject HKJIT_SM90A_GROUP_M -DHKJIT_SM90A_GROUP_M=0
reject HKJIT_SM90A_SWAP -DHKJIT_SM90A_SWAP=2
reject HKJIT_SM90A_PDL -DHKJIT_SM90A_PDL=2
reject HKJIT_SM90A_SWAP -DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_BN=128 -DHKJIT_SM90A_SPLITK=1
reject HKJIT_SM90A_SWAP -DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_BN=16
reject HKJIT_SM90A_SWAP -DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_BN=16 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_PINGPONG=1
reject HKJIT_SM90A_BN -DHKJIT_SM90A_BN=16
reject HKJIT_SM90A_SPLITK -DHKJIT_SM90A_SPLITK=3
reject "HKJIT_SM90A_SPLITK=2" -DHKJIT_SM90A_SPLITK=2
reject "HKJIT_SM90A_SPLITK=2" -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=128 -DHKJIT_SM90A_PINGPONG=1
if [ "${1:-}" = --all ]; then
    for c in "" "-DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=128" "-DHKJIT_SM90A_BN=128" "-DHKJIT_SM90A_BN=192" \
             "-DHKJIT_SM90A_SPLITK=1" "-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=128 -DHKJIT_SM90A_SPLITK=1" \
             "-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=256 -DHKJIT_SM90A_SPLITK=1" \
             "-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=64 -DHKJIT_SM90A_SPLITK=1" "-DHKJIT_SM90A_REPACK=1 -DHKJIT_SM90A_BN=192" \
             "-DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=256" \
             "-DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=128" \
             "-DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=128 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_REPACK=1" \
             "-DHKJIT_SM90A_CLUSTER=2" "-DHKJIT_SM90A_CLUSTER=2 -DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=128" \
             "-DHKJIT_SM90A_CLUSTER=2 -DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=192 -DHKJIT_SM90A_SPLITK=1" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=16" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=32" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=64" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=16" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=16" \
             "-DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=128" \
             "-DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=64" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=16" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=16" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=64" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=16 -DHKJIT_SM90A_PDL=1" \
             "-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=16 -DHKJIT_SM90A_PDL=1" \
             "-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=128 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_PDL=1" \
             "-DHKJIT_SM90A_BN=160" "-DHKJIT_SM90A_BN=96" "-DHKJIT_SM90A_BN=80" "-DHKJIT_SM90A_BN=224" \
             "-DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=112" "-DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=160" \
             "-DHKJIT_SM90A_PINGPONG=1 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=96" \
             "-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=96 -DHKJIT_SM90A_SPLITK=1" "-DHKJIT_SM90A_CLUSTER=2 -DHKJIT_SM90A_BN=160" \
             "-DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=80"; do
        if "$NVCC" "${FLAGS[@]}" -Xptxas=-v -c $c kernels/gemm_sm90a.cu -o "$OBJ/x.o" >"$OBJ/log" 2>&1 &&
           ! grep -E "stack frame|spill" "$OBJ/log" | grep -vq "^ *0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"; then
            echo "ok: [${c:-defaults}] compiles, 0 spills / 0 stack"
        else echo "FAIL: [${c:-defaults}]"; grep -m3 -E "error|stack frame" "$OBJ/log"; bad=1; fi
    done
fi
exit $bad
