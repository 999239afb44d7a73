#!/usr/bin/env bash
# Build kernels/gemm_sm90a.cu in several configurations (in parallel) with nvcc, check every one against float64
# and time every one against torch.matmul (cuBLAS), all in one device run. From the repository root:
#     bash tools/sm90a_standalone/run.sh
# ThunderKittens headers: $THUNDERKITTENS_ROOT/include, else .carry/ThunderKittens/include (the device run),
# else ../ThunderKittens/include (a worktree copy under .carry/wt), else ../shared/toolchain/ThunderKittens/include.
# Configurations: CONFIGS="name:-DFLAG,-DFLAG name2:..." (commas between a configuration's flags); the default list
# is below. "hk" (no defines, today's kernel) is always built first. BUILD_ONLY=1 stops after the builds.
# Tables (correctness.txt, table.md, timing.json) and the build logs go to $OUT (else the build folder).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
if [ -n "${THUNDERKITTENS_ROOT:-}" ]; then TK="$THUNDERKITTENS_ROOT/include"
elif [ -d .carry/ThunderKittens/include ]; then TK="$ROOT/.carry/ThunderKittens/include"
elif [ -d ../ThunderKittens/include ]; then TK="$ROOT/../ThunderKittens/include"
else TK="$ROOT/../shared/toolchain/ThunderKittens/include"; fi
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
BUILD=${BUILD:-/tmp/hkjit_sm90a_build}
OUTDIR=${OUT:-$BUILD}
mkdir -p "$BUILD" "$OUTDIR"
FLAGS=(-gencode=arch=compute_90a,code=sm_90a -O3 -std=c++20 --expt-relaxed-constexpr --expt-extended-lambda
       -DKITTENS_HOPPER -I"$TK" -Ikernels -Xcompiler=-fPIC -shared -Xptxas=-v)
DEFAULT_CONFIGS="t128x128:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=128
 t128x192:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=192
 s128x256:-DHKJIT_SM90A_SPLITK=1
 s64x128:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=128,-DHKJIT_SM90A_SPLITK=1
 s64x256:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=256,-DHKJIT_SM90A_SPLITK=1
 s64x64:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=64,-DHKJIT_SM90A_SPLITK=1
 r128x256:-DHKJIT_SM90A_REPACK=1
 r128x192:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=192,-DHKJIT_SM90A_REPACK=1
 p64x256:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=256,-DHKJIT_SM90A_PINGPONG=1
 p64x192:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=192,-DHKJIT_SM90A_PINGPONG=1
 p64x128:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=128,-DHKJIT_SM90A_PINGPONG=1
 ps64x256:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=256,-DHKJIT_SM90A_PINGPONG=1,-DHKJIT_SM90A_SPLITK=1
 ps64x192:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=192,-DHKJIT_SM90A_PINGPONG=1,-DHKJIT_SM90A_SPLITK=1
 ps64x128:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=128,-DHKJIT_SM90A_PINGPONG=1,-DHKJIT_SM90A_SPLITK=1
 c128x256:-DHKJIT_SM90A_CLUSTER=2
 c128x192:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=192,-DHKJIT_SM90A_CLUSTER=2
 c256x128:-DHKJIT_SM90A_BM=256,-DHKJIT_SM90A_BN=128,-DHKJIT_SM90A_CLUSTER=2
 cp64x256:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=256,-DHKJIT_SM90A_PINGPONG=1,-DHKJIT_SM90A_CLUSTER=2
 cr128x256:-DHKJIT_SM90A_REPACK=1,-DHKJIT_SM90A_CLUSTER=2
 cs128x256:-DHKJIT_SM90A_SPLITK=1,-DHKJIT_SM90A_CLUSTER=2
 w64x16:-DHKJIT_SM90A_SWAP=1,-DHKJIT_SM90A_SPLITK=1,-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=16
 qw64x16:-DHKJIT_SM90A_SWAP=1,-DHKJIT_SM90A_SPLITK=2,-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=16
 qw128x16:-DHKJIT_SM90A_SWAP=1,-DHKJIT_SM90A_SPLITK=2,-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=16
 q64x64:-DHKJIT_SM90A_SPLITK=2,-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=64
 t128x224:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=224
 t128x160:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=160
 t128x96:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=96
 t128x80:-DHKJIT_SM90A_BM=128,-DHKJIT_SM90A_BN=80
 p64x160:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=160,-DHKJIT_SM90A_PINGPONG=1
 p64x96:-DHKJIT_SM90A_BM=64,-DHKJIT_SM90A_BN=96,-DHKJIT_SM90A_PINGPONG=1"
CONFIGS=${CONFIGS:-$DEFAULT_CONFIGS}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv || true
"$NVCC" --version | tail -2

build() {  # name flags... ; writes lib<name>.so and ptxas_<name>.txt
    local name=$1; shift
    local t0=$(date +%s%N)
    if "$NVCC" "${FLAGS[@]}" "$@" kernels/gemm_sm90a.cu -o "$BUILD/lib$name.so" >"$BUILD/ptxas_$name.txt" 2>&1; then
        echo "built $name ($*) in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(grep -A2 'gemm_kernel' "$BUILD/ptxas_$name.txt" | grep -E 'registers|spill' | tr -s ' ' | tr '\n' ' ')" >"$BUILD/status_$name.txt"
    else
        echo "FAILED $name ($*): $(grep -m3 -E 'error' "$BUILD/ptxas_$name.txt" | tr '\n' ' ')" >"$BUILD/status_$name.txt"
        rm -f "$BUILD/lib$name.so"
    fi
}
# Mutants: copies of the kernel with one planted bug each, built from sed scripts (MUTANTS=0 skips them). check.py
# must report every one as caught (a correctness failure); they are never timed. Entries named x_* would be timing
# experiments (timed, wrong output allowed): x_l2none / x_l2p128 (tensor-map L2 promotion NONE / 128B instead of
# 256B, sed s/CU_TENSOR_MAP_L2_PROMOTION_L2_256B/..._NONE/) were measured 2026-12-01 and changed nothing.
MUTANTS_LIST=(
 "mut_reduce#s/for (int s = 1; s < splits; s++)/for (int s = 1; s < splits - 1; s++)/#-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=32"
 "mut_kslice#s/(int)((int64_t)(split + 1) \* k_blocks \/ splits)}/(int)((int64_t)(split + 1) * k_blocks \/ splits) - (splits > 1)}/#-DHKJIT_SM90A_SPLITK=1"
 "mut_edge#s/if ((N \& 7) == 0 || col0 + 64 <= N)/if (true)/#-DHKJIT_SM90A_BM=256 -DHKJIT_SM90A_BN=128"
 "mut_repack#s/rows\[i\], K \/ 8);/rows[i], K \/ 8 - 1);/#-DHKJIT_SM90A_REPACK=1"
 "mut_mcast#s/w.n \* BN + crank \* (BN \/ CLUSTER)/w.n * BN/#-DHKJIT_SM90A_CLUSTER=2"
 "mut_crank#s/w.m = tile_row(w);/w.m = w.m * CLUSTER;/#-DHKJIT_SM90A_CLUSTER=2"
 "mut_pprow#s/sm.a\[s\]\[rb0 + i\]/sm.a[s][rb0]/#-DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=128 -DHKJIT_SM90A_PINGPONG=1"
 "mut_swrow#s/f(r0 + 8, c0, d\[1\]);/f(r0, c0, d[1]);/#-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=32"
 "mut_csum#s/for (int p = 1; p < splits; p++) {/for (int p = 1; p < splits - 1; p++) {/#-DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=128"
 "mut_crows#s/row0 = srank \* rows;/row0 = 0 * rows;/#-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=16"
 "mut_pdlwait#s/pdl_wait();   \/\/ PDL: the kernel before/pdl_launch_dependents();   \/\/ PDL: the kernel before/#-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=2 -DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=16 -DHKJIT_SM90A_PDL=1"
 "mut_tail#s/for_each_pair<BN \/ 64 \* 4>(acc/for_each_pair<BN \/ 64 * 4 + 1>(acc/#-DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=160"
 "mut_tailedge#s/if (gc + 1 < N) \*reinterpret_cast/if (true) *reinterpret_cast/#-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=96 -DHKJIT_SM90A_PINGPONG=1"
 "mut_fslice#s/(rows \* splits + (int64_t)w.split \* MW)/(rows * splits + (int64_t)0 * MW)/#-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=64 -DHKJIT_SM90A_SPLITK=1"
 "mut_cidx#s/arrive_count(counts + rows, stamp, splits, guess)/arrive_count(counts + rows - rb0, stamp, splits, guess)/#-DHKJIT_SM90A_SPLITK=1"
 "mut_fsum#s/add_chunk(acc, f, part(s, f), false)/add_chunk(acc, f, part(s, f), true)/#-DHKJIT_SM90A_SPLITK=1"
 "mut_fsumu#s/add_chunk(acc, f, t\[u\]\[f\], false)/add_chunk(acc, f, t[u][f], u == 0)/#-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=64 -DHKJIT_SM90A_SPLITK=1"
 "mut_stamp#s/(seen \& ~0xffull) == stamp ? (int)(seen \& 0xff) : 0/(int)(seen \& 0xff)/#-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=64 -DHKJIT_SM90A_SPLITK=1"
 "mut_reset#s/(n + 1 == splits ? 0ull : (unsigned long long)(n + 1))/(unsigned long long)(n + 1)/#-DHKJIT_SM90A_BM=64 -DHKJIT_SM90A_BN=128 -DHKJIT_SM90A_SPLITK=1"
 "mut_swslice#s/(split ? (int64_t)w.split \* N \* ldw : 0)/0/#-DHKJIT_SM90A_SWAP=1 -DHKJIT_SM90A_SPLITK=1 -DHKJIT_SM90A_BM=128 -DHKJIT_SM90A_BN=16"
)
# EXPERIMENTS="name#sed-script#flags ..." (newline-separated, names x_*) adds timing experiments in the same form.
if [ -n "${EXPERIMENTS:-}" ]; then while IFS= read -r x; do [ -n "$x" ] && MUTANTS_LIST+=("$x"); done <<<"$EXPERIMENTS"; fi
build_mutant() {  # name sed-script flags
    local name=$1 script=$2; shift 2
    mkdir -p "$BUILD/$name"
    sed "$script" kernels/gemm_sm90a.cu > "$BUILD/$name/gemm_sm90a.cu"
    if cmp -s kernels/gemm_sm90a.cu "$BUILD/$name/gemm_sm90a.cu"; then
        echo "FAILED $name: the sed script changed nothing" >"$BUILD/status_$name.txt"; return
    fi
    if "$NVCC" "${FLAGS[@]}" $@ "$BUILD/$name/gemm_sm90a.cu" -o "$BUILD/lib$name.so" >"$BUILD/ptxas_$name.txt" 2>&1; then
        echo "built mutant $name" >"$BUILD/status_$name.txt"
    else
        echo "FAILED $name: $(grep -m3 -E 'error' "$BUILD/ptxas_$name.txt" | tr '\n' ' ')" >"$BUILD/status_$name.txt"
    fi
}
NAMES=(hk)
build hk &
for c in $CONFIGS; do
    name=${c%%:*}; flags=${c#*:}
    NAMES+=("$name")
    build "$name" ${flags//,/ } &
done
if [ "${MUTANTS:-1}" != 0 ]; then
    for m in "${MUTANTS_LIST[@]}"; do
        IFS='#' read -r name script flags <<<"$m"
        NAMES+=("$name")
        build_mutant "$name" "$script" $flags &
    done
fi
wait
for n in "${NAMES[@]}"; do cat "$BUILD/status_$n.txt"; done
[ -n "${BUILD_ONLY:-}" ] && exit 0
# smoke test each configuration in its own process (in parallel, time-limited): one that fails or hangs is dropped
for n in "${NAMES[@]}"; do
    [ -f "$BUILD/lib$n.so" ] || continue
    ( timeout ${SMOKE_TIMEOUT:-120} python3 tools/sm90a_standalone/check.py --smoke "$BUILD/lib$n.so" \
        >"$BUILD/smoke_$n.txt" 2>&1; echo $? >"$BUILD/smoke_rc_$n.txt" ) &
done
wait
LIBS=()
for n in "${NAMES[@]}"; do
    [ -f "$BUILD/lib$n.so" ] || continue
    rc=$(cat "$BUILD/smoke_rc_$n.txt")
    echo "smoke $n: rc=$rc"
    [ "$rc" = 0 ] || { echo "SMOKE FAILED $n (rc=$rc, 124 = hung):"; cat "$BUILD/smoke_$n.txt" | tail -8; }
    [ "$rc" = 124 ] || [ "$rc" -gt 128 ] || LIBS+=("$n=$BUILD/lib$n.so")   # wrong results stay in (the table says)
done
cat "$BUILD"/ptxas_*.txt > "$OUTDIR/ptxas_all.txt" 2>/dev/null || true
if command -v cuobjdump >/dev/null; then
    for n in "${NAMES[@]}"; do
        [ -f "$BUILD/lib$n.so" ] && [ "${n#mut_}" = "$n" ] || continue
        cuobjdump -sass "$BUILD/lib$n.so" > "$BUILD/sass_$n.txt"
        echo "SASS $n: $(grep -c HGMMA "$BUILD/sass_$n.txt") HGMMA, $(grep -cE '\b(LDL|STL)\b' "$BUILD/sass_$n.txt") LDL/STL, $(grep -c UTMALDG "$BUILD/sass_$n.txt") UTMALDG, $(grep -c UTMASTG "$BUILD/sass_$n.txt") UTMASTG"
    done
fi
[ ${#LIBS[@]} -gt 0 ] || { echo "no configuration built"; exit 1; }
PYTHONUNBUFFERED=1 timeout ${CHECK_TIMEOUT:-480} python3 tools/sm90a_standalone/check.py "${LIBS[@]}" 2>&1 | tee "$OUTDIR/check_log.txt"
