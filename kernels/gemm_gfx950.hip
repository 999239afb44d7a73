// gemm_gfx950.hip - bf16 GEMM (fp32 accumulate) for AMD MI350X / MI355X (gfx950, CDNA4) on HipKittens.
//
//     C[m, n] = sum_k A[m, k] * Bt[n, k]      (the C ABI of hkjit_gemm.h)
//
// One workgroup of 8 waves (2 x 4) computes a 256 x 256 block of C; each wave owns four 64 x 32 fp32
// accumulators (rows {0,128} + wave_row*64, cols {0,128} + wave_col*32 of the block).  K is consumed in tiles
// of 32, staged in LDS by buffer_load ... lds (global -> LDS DMA, 16 B per lane) with a 4-stage ring and a
// prefetch distance of 3 tiles.  The two wave rows are two wave groups, one barrier apart, so that on each SIMD
// one group's MFMA cluster runs while the other group loads and reads (ping-pong).  The schedule (what is
// issued, waited for and read, in which order, by which group) is the data in gemm_gfx950_plan.h and this file
// only executes it (run_steps), so the schedule model (src/hkjit/gfx950/schedule.py) and the assembly check
// (tests/test_gfx950_kernel.py) judge the code the GPU runs.
//
// Any M, N, K (K a multiple of 8), with no masking in the main loop: each load lane has a constant offset (sent
// out of the buffer's range once, at entry, when its row is past M / N), K tiles move the buffer resource with
// SGPR adds, the partial K tile (if any) is tile 0, issued and column-masked by the prologue, and tiles past the
// end get an empty range; out-of-range buffer loads write zeros to LDS without touching memory.  C is written
// with range-limited buffer stores (masked lanes go out of range and
// are dropped), so ragged M / N / K need no padding and no copy, and no element outside C is ever touched.
//
// This translation unit sees no torch header and uses only hip* names (torch's hipify leaves it unchanged).
// Build flags: --offload-arch=gfx950 -DKITTENS_CDNA4 -O3 -std=c++20 -DHIP_ENABLE_WARP_SYNC_BUILTINS
//              -I<HipKittens>/include -I<this dir>
// HKJIT_NOGPULIB_SHIMS is only for the device-only compile check (clang -nogpulib, no ROCm device library):
// it defines the two ockl work-item queries HIP's threadIdx / blockIdx call, exactly as the device library
// does, so that the check sees the inlined code the real build gets instead of opaque calls (an opaque call
// forces the whole register file to be saved around it: the seed's "190 spilled VGPRs" come from that).
#include <hip/hip_runtime.h>

#ifdef HKJIT_NOGPULIB_SHIMS
extern "C" __device__ __attribute__((always_inline, const)) size_t __ockl_get_local_id(unsigned int d) {
    return d == 0 ? __builtin_amdgcn_workitem_id_x() : d == 1 ? __builtin_amdgcn_workitem_id_y()
                                                              : __builtin_amdgcn_workitem_id_z();
}
extern "C" __device__ __attribute__((always_inline, const)) size_t __ockl_get_group_id(unsigned int d) {
    return d == 0 ? __builtin_amdgcn_workgroup_id_x() : d == 1 ? __builtin_amdgcn_workgroup_id_y()
                                                               : __builtin_amdgcn_workgroup_id_z();
}
#endif

#include "kittens.cuh"
#include "hkjit_gemm.h"
#include "gemm_gfx950_plan.h"

namespace hkjit_gfx950 {

using namespace kittens;
namespace plan = hkjit_gfx950_plan;
using plan::Op;
using plan::Step;

constexpr int BM = plan::kBlockM, BN = plan::kBlockN, BK = plan::kBlockK;
constexpr int FRAG_M = BM / plan::kWavesM / 2;  // 64 rows of A per wave per half
constexpr int FRAG_N = BN / plan::kWavesN / 2;  // 32 rows of Bt per wave per half

using ST_A = st_bf<BM, BK, st_16x32_s>;
using ST_B = st_bf<BN, BK, st_16x32_s>;
using RT_A = rt_bf<FRAG_M, BK, row_l, rt_16x32_s>;
using RT_B = rt_bf<FRAG_N, BK, row_l, rt_16x32_s>;
using RT_C = rt_fl<FRAG_M, FRAG_N, col_l, rt_16x16_s>;

static_assert(ST_A::underlying_subtile_bytes_per_thread == plan::kBytesPerLoad, "one 16-byte DMA per lane");
static_assert(sizeof(ST_A) == BM * BK * 2 && sizeof(ST_B) == BN * BK * 2, "dense shared tiles");
static_assert(plan::kStageBytes == sizeof(ST_A) + sizeof(ST_B), "plan and kernel agree on the stage size");

constexpr uint32_t OOB = 0x80000000u;  // an offset no buffer resource below reaches: the lane reads zeros

struct Args {
    const bf16* A;
    const bf16* Bt;
    bf16* C;
    int lda, ldb, ldc;  // elements
    int M, N, K;
    int tiles_m, tiles_n;
};

__device__ __forceinline__ i32x4 buffer_rsrc(const void* base, uint32_t bytes) {
    return make_srsrc(base, bytes);  // raw buffer (stride 0): range-checked against `bytes`
}

// One operand's global -> LDS copy. Tile t covers the columns k0(t) = kshift + t*BK .. +BK of the block's rows,
// kshift = (K % BK == 0 ? 0 : K % BK - BK) <= 0: the partial K tile, if any, is tile 0, whose DMAs the prologue
// issues (the only ones that need column masks); every tile the main loop issues is whole or past the end.
// In the loop each DMA's per-lane offset is a constant VGPR (row * ld + col, or OOB when the row is past M / N);
// the tile moves the buffer resource (SGPR adds: base + k0(t) * 2, range shrunk by as much), and a tile past
// the end (t >= num_tiles, issued by the prefetch) gets range 0: every lane out of range, zeros, no memory
// touched. So the loop issues its DMAs with no VALU work at all.
template <typename ST, int LOADS>
struct OperandLoader {
    const char* base;   // byte address of (row 0, column kshift) of the block (may point before the matrix:
                        // only in-range offsets are ever dereferenced)
    uint32_t extent;    // bytes from `base` to one past the block's last element: ((rows-1)*ld + K - kshift) * 2
    int num_tiles;
    int kshift;
    uint32_t off[LOADS];  // this lane's byte offset inside a tile, OOB when its row is past the matrix
    int gcol[LOADS];      // this lane's first column inside a tile (for tile 0's mask)
    uint32_t lds;         // wave-uniform LDS byte address of this wave's first DMA in stage 0

    __device__ __forceinline__ void init(const bf16* blk, int ld, int rows_valid, int K, int kshift, int tiles,
                                         uint32_t lds_base, int wave, int lane) {
        constexpr int bytes_per_wave = plan::kBytesPerLoad * plan::kWaveSize;
        #pragma unroll
        for (int i = 0; i < LOADS; i++) {
            // LDS byte this lane's DMA writes (the hardware writes lane l at M0 + 16*l), and the global element
            // that must land there: HipKittens' swizzle (an involution) maps it, as in its own G::load.
            const int p = lane * plan::kBytesPerLoad + wave * bytes_per_wave + i * plan::kWaves * bytes_per_wave;
            const int sub = p / ST::underlying_subtile_bytes;
            const int sub_row = sub / ST::underlying_subtiles_per_row;
            const int sub_col = sub % ST::underlying_subtiles_per_row;
            const int in_sub = p % ST::underlying_subtile_bytes;
            const int r = in_sub / ST::underlying_subtile_row_bytes;
            const int c = (in_sub % ST::underlying_subtile_row_bytes) / 2;
            const uint32_t sw = ST::swizzle({r, c});
            const int grow = sw / ST::underlying_subtile_row_bytes + sub_row * ST::underlying_subtile_rows;
            gcol[i] = (sw % ST::underlying_subtile_row_bytes) / 2 + sub_col * ST::underlying_subtile_cols;
            off[i] = grow < rows_valid ? (uint32_t)(grow * ld + gcol[i]) * 2u : OOB;
        }
        const uint64_t rows = rows_valid > 0 ? (uint64_t)rows_valid : 1;
        const uint64_t ext = ((rows - 1) * (uint64_t)ld + (uint64_t)(K - kshift)) * 2u;
        extent = (uint32_t)(ext < OOB ? ext : OOB);
        base = reinterpret_cast<const char*>(blk) + (int64_t)kshift * 2;
        num_tiles = tiles;
        this->kshift = kshift;
        lds = __builtin_amdgcn_readfirstlane(lds_base + wave * bytes_per_wave);
    }

    // Issue this thread's DMA(s) of half H of K tile `t` into `stage`. MASK_COLS (prologue only): lanes whose
    // columns lie before column 0 (tile 0 of a ragged K) go out of range.
    template <int H, bool MASK_COLS>
    __device__ __forceinline__ void issue(int t, int stage) const {
        static_assert(LOADS % plan::kHalves == 0 && H < plan::kHalves, "a half is a whole number of DMAs");
        const uint32_t step = (uint32_t)t * (uint32_t)(BK * 2);
        const uint32_t range = t < num_tiles ? extent - step : 0u;
        const i32x4 rsrc = buffer_rsrc(base + step, range);
        #pragma unroll
        for (int i = H * LOADS / plan::kHalves; i < (H + 1) * LOADS / plan::kHalves; i++) {
            uint32_t v = off[i];
            if constexpr (MASK_COLS) v = kshift + t * BK + gcol[i] >= 0 ? v : OOB;
            const uint32_t l = lds + stage * plan::kStageBytes + i * plan::kWaves * plan::kBytesPerLoad * plan::kWaveSize;
            llvm_amdgcn_raw_buffer_load_lds(rsrc, (as3_uint32_ptr)(uintptr_t)__builtin_amdgcn_readfirstlane(l),
                                            plan::kBytesPerLoad, (int)v, 0, 0,
                                            static_cast<int>(coherency::cache_all));
        }
    }
};

struct Pipeline {
    OperandLoader<ST_A, plan::kLoadsPerA> la;
    OperandLoader<ST_B, plan::kLoadsPerB> lb;
    // LDS byte address of this lane's first ds_read of its A (B) fragment in stage 0, half 0: the stage is
    // one add per operand and tile, everything else is the instruction's immediate offset.
    uint32_t read_a, read_b;
    RT_A a[2];
    RT_B b[2];
    RT_C c[2][2];
    int wave_row, wave_col;

    // Read half H of this wave's fragment of the operand whose lane base is `lane_base`, from `stage`: the
    // register tile's base tiles (16 rows x BK) one ds_read_b128 each, laid out as HipKittens' load() lays
    // them out (the st_16x32_s subtiles are 1 KiB apart; the lane's swizzled position is in lane_base).
    template <int H, typename RT, typename ST>
    __device__ __forceinline__ static void read_frag(RT& dst, uint32_t lane_base, int stage) {
        static_assert(RT::width == 1 && RT::base_tile_rows == ST::underlying_subtile_rows &&
                      RT::base_tile_cols == ST::underlying_subtile_cols && ST::underlying_subtiles_per_row == 1,
                      "one ds_read_b128 per 16-row base tile");
        const uint32_t addr = lane_base + (uint32_t)(stage * plan::kStageBytes);
        #pragma unroll
        for (int i = 0; i < RT::height; i++) {
            constexpr int kHalfBytes = ST::rows / plan::kHalves * BK * plan::kElemBytes;
            asm volatile("ds_read_b128 %0, %1 offset:%2"
                         : "=v"(*reinterpret_cast<float4*>(&dst.tiles[i][0].data[0]))
                         : "v"(addr), "i"(H * kHalfBytes + i * ST::underlying_subtile_bytes)
                         : "memory");
        }
    }

    template <Op OP, int A, int B, bool MASK_COLS>
    __device__ __forceinline__ void step(int t) {
        // Waits and barriers are fences for the compiler's scheduler too (sched_barrier(0): nothing moves across).
        // They must be: HipKittens' LDS->register loads are inline asm whose results the compiler believes are
        // ready at once, so an MFMA hoisted above its lgkmcnt wait would read registers still being filled.
        if constexpr (OP == Op::WaitVm) {
            __builtin_amdgcn_sched_barrier(0);
            asm volatile("s_waitcnt vmcnt(%0)" ::"n"(A) : "memory");
            __builtin_amdgcn_sched_barrier(0);
        } else if constexpr (OP == Op::WaitLgkm) {
            __builtin_amdgcn_sched_barrier(0);
            asm volatile("s_waitcnt lgkmcnt(%0)" ::"n"(A) : "memory");
            __builtin_amdgcn_sched_barrier(0);
        } else if constexpr (OP == Op::Barrier) {
            __builtin_amdgcn_sched_barrier(0);
            asm volatile("s_barrier" ::: "memory");
            __builtin_amdgcn_sched_barrier(0);
        } else if constexpr (OP == Op::SetPrio) {
            __builtin_amdgcn_sched_barrier(0);
            __builtin_amdgcn_s_setprio(A);
            __builtin_amdgcn_sched_barrier(0);
        } else if constexpr (OP == Op::LoadA) {
            la.template issue<B, MASK_COLS>(t + A, plan::stage_of(t + A));
        } else if constexpr (OP == Op::LoadB) {
            lb.template issue<B, MASK_COLS>(t + A, plan::stage_of(t + A));
        } else if constexpr (OP == Op::ReadA) {
            read_frag<A, RT_A, ST_A>(a[A], read_a, plan::stage_of(t + B));
        } else if constexpr (OP == Op::ReadB) {
            read_frag<A, RT_B, ST_B>(b[A], read_b, plan::stage_of(t + B));
        } else if constexpr (OP == Op::Mma) {
            mma_ABt(c[A][B], a[A], b[B], c[A][B]);
        }
    }
};

// Execute steps S[I..N) of a plan table for K tile t (compile-time unrolled: every wait count is an immediate).
// MASK_COLS: the table may issue tile 0 (the prologue), whose DMAs mask the columns before column 0.
template <const Step* S, int N, bool MASK_COLS, int I = 0>
__device__ __forceinline__ void run_steps(Pipeline& p, int t) {
    if constexpr (I < N) {
        p.template step<S[I].op, S[I].a, S[I].b, MASK_COLS>(t);
        run_steps<S, N, MASK_COLS, I + 1>(p, t);
    }
}
template <const Step* S, bool MASK_COLS = false, int N>
__device__ __forceinline__ void run_table(Pipeline& p, int t, const Step (&)[N]) { run_steps<S, N, MASK_COLS>(p, t); }

// n (wave-uniform, at most (kGroups - 1) * kStagger) extra barriers: the stagger between wave groups, fenced
// like the plan's own barriers, unrolled (each a conditional s_barrier, no loop).
__device__ __forceinline__ void stagger_barriers(int n) {
    #pragma unroll
    for (int i = 0; i < (plan::kGroups - 1) * plan::kStagger; i++) {
        if (i < n) {
            __builtin_amdgcn_sched_barrier(0);
            asm volatile("s_barrier" ::: "memory");
            __builtin_amdgcn_sched_barrier(0);
        }
    }
}

// Two fp32 values -> two bf16, rounded to nearest even (NaN stays NaN): on gfx950 this is one v_cvt_pk_bf16_f32.
// (HipKittens' convertor<bf16, float> truncates: about half of all outputs came out 1 ulp toward zero.)
typedef float f32x2_t __attribute__((ext_vector_type(2)));
typedef __bf16 bf16x2_t __attribute__((ext_vector_type(2)));
__device__ __forceinline__ uint32_t pack_bf16x2_rne(float lo, float hi) {
    return __builtin_bit_cast(uint32_t, __builtin_convertvector(f32x2_t{lo, hi}, bf16x2_t));
}

// Store a wave's 64x32 accumulator at (r0, c0) of the block, converting to bf16 (round to nearest even);
// out-of-range lanes are dropped.
__device__ __forceinline__ void store_masked(const RT_C& src, i32x4 rsrc, int ldc, int r0, int c0, int rows_valid,
                                             int cols_valid, int lane) {
    constexpr int packing = base_types::packing<typename RT_C::dtype>::num();
    const int row_offset = RT_C::base_tile_stride * (lane / RT_C::base_tile_cols);
    const int col_offset = lane % RT_C::base_tile_cols;
    #pragma unroll
    for (int i = 0; i < RT_C::height; i++) {
        #pragma unroll
        for (int j = 0; j < RT_C::width; j++) {
            const int col = c0 + j * RT_C::base_tile_cols + col_offset;
            #pragma unroll
            for (int k = 0; k < RT_C::base_tile_num_strides; k++) {
                const int row = r0 + i * RT_C::base_tile_rows + row_offset + k * RT_C::base_tile_elements_per_stride_group;
                #pragma unroll
                for (int l = 0; l < RT_C::base_tile_stride / packing; l++) {
                    const int idx = l + k * RT_C::base_tile_stride / packing;
                    const float2 v = src.tiles[i][j].data[idx];
                    const int ra = row + 2 * l, rb = ra + 1;
                    const bool ok_col = col < cols_valid;
                    const uint32_t oa = (ok_col && ra < rows_valid) ? (uint32_t)(ra * ldc + col) * 2u : OOB;
                    const uint32_t ob = (ok_col && rb < rows_valid) ? (uint32_t)(rb * ldc + col) * 2u : OOB;
                    const uint32_t packed = pack_bf16x2_rne(v.x, v.y);  // rows ra, rb: two 16-bit stores
                    llvm_amdgcn_raw_buffer_store_b16((uint16_t)packed, rsrc, oa, 0, 0);
                    llvm_amdgcn_raw_buffer_store_b16((uint16_t)(packed >> 16), rsrc, ob, 0, 0);
                }
            }
        }
    }
}

__global__ __launch_bounds__(plan::kThreads, 1) void gemm_bf16_kernel(const Args g) {
    extern __shared__ alignment_dummy __shm[];
    const int tid = threadIdx.x;
    const int wave = __builtin_amdgcn_readfirstlane(tid / plan::kWaveSize);  // wave-uniform: an SGPR
    const int lane = tid % plan::kWaveSize;

    // Block order: spread consecutive ids over the 8 XCDs (the dispatcher round-robins them), then walk
    // groups of 8 block-rows so that blocks sharing A rows / Bt rows run together (L2 reuse).  Both maps are
    // bijections on [0, tiles_m * tiles_n).
    const int nblk = g.tiles_m * g.tiles_n;
    int id = blockIdx.x;
    const int per_xcd = nblk / NUM_XCDS;
    if (id < per_xcd * NUM_XCDS) id = (id % NUM_XCDS) * per_xcd + id / NUM_XCDS;
    constexpr int GROUP_M = 8;
    const int group_size = GROUP_M * g.tiles_n;
    const int first_m = (id / group_size) * GROUP_M;
    const int gm = min(g.tiles_m - first_m, GROUP_M);
    const int bm = first_m + (id % group_size) % gm;
    const int bn = (id % group_size) / gm;

    const int row0 = bm * BM, col0 = bn * BN;
    const int rows_valid = min(BM, g.M - row0);
    const int cols_valid = min(BN, g.N - col0);

    Pipeline p;
    p.wave_row = wave / plan::kWavesN;
    p.wave_col = wave % plan::kWavesN;
    const uint32_t lds0 = (uint32_t)(uintptr_t)&__shm[0];
    {
        // HipKittens' load(): lane l reads row l % 16, columns 8 * (l / 16) .. +8 of each 16 x 32 base tile
        const uint32_t swz =
            ST_A::swizzle({lane % RT_A::base_tile_rows, RT_A::base_tile_stride * (lane / RT_A::base_tile_rows)});
        static_assert(std::is_same_v<typename ST_A::shape, typename ST_B::shape>, "one swizzle for both operands");
        p.read_a = lds0 + p.wave_row * FRAG_M * BK * 2 + swz;
        p.read_b = lds0 + (uint32_t)sizeof(ST_A) + p.wave_col * FRAG_N * BK * 2 + swz;
    }
    const int num_tiles = (g.K + BK - 1) / BK;
    const int kshift = g.K % BK == 0 ? 0 : g.K % BK - BK;  // tile 0 is the partial one (see OperandLoader)
    p.la.init(g.A + (int64_t)row0 * g.lda, g.lda, rows_valid, g.K, kshift, num_tiles, lds0, wave, lane);
    p.lb.init(g.Bt + (int64_t)col0 * g.ldb, g.ldb, cols_valid, g.K, kshift, num_tiles, lds0 + sizeof(ST_A), wave,
              lane);
    zero(p.c[0][0]);
    zero(p.c[0][1]);
    zero(p.c[1][0]);
    zero(p.c[1][1]);

    // Wave group g (its wave row) runs g * kStagger barriers behind group 0 (ping-pong: see the plan).
    const int group = p.wave_row;
    run_table<plan::kPrologue, true>(p, 0, plan::kPrologue);
    stagger_barriers(group * plan::kStagger);
    for (int t = 0; t < num_tiles; t++) {
        run_table<plan::kIter>(p, t, plan::kIter);
    }
    stagger_barriers((plan::kGroups - 1 - group) * plan::kStagger);
    run_table<plan::kEpilogue>(p, num_tiles, plan::kEpilogue);

    const uint64_t cext = ((uint64_t)(rows_valid - 1) * (uint64_t)g.ldc + (uint64_t)cols_valid) * 2u;
    const i32x4 crsrc = buffer_rsrc(g.C + (int64_t)row0 * g.ldc + col0, (uint32_t)(cext < OOB ? cext : OOB));
    #pragma unroll
    for (int i = 0; i < 2; i++) {
        #pragma unroll
        for (int j = 0; j < 2; j++) {
            store_masked(p.c[i][j], crsrc, g.ldc, i * (BM / 2) + p.wave_row * FRAG_M,
                         j * (BN / 2) + p.wave_col * FRAG_N, rows_valid, cols_valid, lane);
        }
    }
}

}  // namespace hkjit_gfx950

// ------------------------------------------------------------------------------------------------------------
// Host launcher (C ABI of hkjit_gemm.h).
//
// Requirements (else hipErrorInvalidValue, nothing launched): M, N, K >= 0; K % 8 == 0; lda, ldb >= K and
// % 8 == 0; ldc >= N; A and Bt 16-byte aligned (when read), C 2-byte aligned; every row offset of one
// 256-row block fits the 32-bit buffer range: 256 * max(lda, ldb, ldc) * 2 bytes < 2^31 (ld < 4,194,304);
// M, N < 2^31 - 256.  Ragged M, N and K (K % 32 != 0) are handled in the kernel.
// ------------------------------------------------------------------------------------------------------------
extern "C" int hkjit_gemm_bf16(const void* A, int64_t lda, const void* Bt, int64_t ldb, void* C, int64_t ldc,
                               int64_t M, int64_t N, int64_t K, void* stream) {
    namespace plan = hkjit_gfx950_plan;
    constexpr int64_t kMaxLd = (int64_t)1 << 22;
    constexpr int64_t kMaxDim = ((int64_t)1 << 31) - 256;
    if (M < 0 || N < 0 || K < 0 || M > kMaxDim || N > kMaxDim || K > kMaxDim) return (int)hipErrorInvalidValue;
    if (M == 0 || N == 0) return (int)hipSuccess;
    if (C == nullptr || ldc < N || ldc > kMaxLd || (reinterpret_cast<uintptr_t>(C) & 1)) return (int)hipErrorInvalidValue;
    if (K > 0) {
        if (K % 8 != 0) return (int)hipErrorInvalidValue;
        if (A == nullptr || Bt == nullptr) return (int)hipErrorInvalidValue;
        if (lda < K || ldb < K || lda % 8 != 0 || ldb % 8 != 0 || lda > kMaxLd || ldb > kMaxLd)
            return (int)hipErrorInvalidValue;
        if ((reinterpret_cast<uintptr_t>(A) & 15) || (reinterpret_cast<uintptr_t>(Bt) & 15))
            return (int)hipErrorInvalidValue;
    }
    const int64_t tiles_m = (M + plan::kBlockM - 1) / plan::kBlockM;
    const int64_t tiles_n = (N + plan::kBlockN - 1) / plan::kBlockN;
    if (tiles_m * tiles_n > 0x7fffffff) return (int)hipErrorInvalidValue;

    static const hipError_t attr = hipFuncSetAttribute(
        reinterpret_cast<const void*>(&hkjit_gfx950::gemm_bf16_kernel), hipFuncAttributeMaxDynamicSharedMemorySize,
        plan::kLdsBytes);
    if (attr != hipSuccess) return (int)attr;

    hkjit_gfx950::Args g;
    g.A = static_cast<const kittens::bf16*>(A);
    g.Bt = static_cast<const kittens::bf16*>(Bt);
    g.C = static_cast<kittens::bf16*>(C);
    g.lda = (int)(K > 0 ? lda : 8);
    g.ldb = (int)(K > 0 ? ldb : 8);
    g.ldc = (int)ldc;
    g.M = (int)M;
    g.N = (int)N;
    g.K = (int)K;
    g.tiles_m = (int)tiles_m;
    g.tiles_n = (int)tiles_n;
    hipLaunchKernelGGL(hkjit_gfx950::gemm_bf16_kernel, dim3((unsigned)(tiles_m * tiles_n)), dim3(plan::kThreads),
                       plan::kLdsBytes, static_cast<hipStream_t>(stream), g);
    return (int)hipGetLastError();
}

extern "C" const char* hkjit_gemm_bf16_error(int code) {
    if (code == (int)hipErrorInvalidValue)
        return "hkjit gfx950 GEMM: invalid argument (needs K % 8 == 0, lda/ldb >= K and % 8 == 0, ldc >= N, "
               "16-byte aligned A/Bt, leading dimensions < 4194304) or HIP invalid value";
    const char* s = hipGetErrorString(static_cast<hipError_t>(code));
    return s ? s : "unknown HIP error";
}
