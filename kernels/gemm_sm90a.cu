// gemm_sm90a.cu - hkjit's bf16 GEMM for NVIDIA Hopper (sm_90a), written on ThunderKittens.
//
//     C[m, n] = sum_k A[m, k] * Bt[n, k]      (bf16 in, fp32 accumulate, bf16 out; C = A . Bt^T)
//
// A is M x K row-major (row stride lda), Bt is N x K row-major (row stride ldb: the nn.Linear weight layout), C is
// M x N row-major (row stride ldc). The C ABI is declared in hkjit_gemm.h.
//
// Design (one CTA per SM, persistent):
//   * 3 warpgroups: warpgroups 0 and 1 are consumers (each owns 64 rows x 256 columns of the 128 x 256 output tile,
//     fp32 accumulators in registers: ThunderKittens rt_fl<16, 256> per warp), warpgroup 2 is the producer (one
//     thread issues the TMA loads). setmaxnreg moves registers from the producer to the consumers.
//   * K is walked in blocks of 64 through a 4-stage shared-memory ring; each stage holds A (128 x 64) and Bt
//     (256 x 64), both K-major with the 128-byte swizzle that TMA writes and wgmma reads. TMA loads complete on a
//     "full" mbarrier (transaction bytes); consumers release a stage on an "empty" mbarrier once the wgmma that
//     read it has retired (one wgmma group kept in flight).
//   * The ring continues across output tiles, so the producer fetches the next tile while the consumers store
//     this one. The epilogue converts to bf16 through stmatrix into a double-buffered 64 x 64 staging tile per
//     consumer and writes it out with TMA stores (bulk groups), which clip at the M / N edges. TMA stores write
//     whole 16-byte chunks, so when N is not a multiple of 8 the chunk holding column N-1 is stored element-wise.
//   * Ragged M, N and K are handled by the tensor maps: out-of-bounds loads fill zeros, stores are clipped.
//   * Tiles are visited in groups of GROUP_M tile rows (L2 reuse of Bt).
//
// Constraints checked by the launcher (cudaErrorInvalidValue otherwise, no launch): A, Bt, C 16-byte aligned;
// lda, ldb, ldc multiples of 8 elements (16 bytes, a TMA rule) and at least K, K, N; M, N, K in [0, 2^31).
// M == 0 or N == 0: nothing to do. K == 0: C is filled with zeros by a small kernel (no alignment needed then).
//
// No torch here. The tensor-map encoder is taken from the driver through cudaGetDriverEntryPointByVersion, so
// the library needs only the CUDA runtime (no -lcuda).

#include "kittens.cuh"

#include <cuda.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "hkjit_gemm.h"

namespace hkjit_sm90a {

using namespace kittens;

constexpr int BM = 128, BN = 256, BK = 64;
constexpr int STAGES = 4;
constexpr int CONSUMERS = 2;                      // consumer warpgroups, 64 rows each
constexpr int NUM_THREADS = (CONSUMERS + 1) * 128;
#ifndef HKJIT_SM90A_GROUP_M
#define HKJIT_SM90A_GROUP_M 16
#endif
constexpr int GROUP_M = HKJIT_SM90A_GROUP_M;

using a_tile = st_bf<64, BK>;                     // one consumer's rows of A for one K block
using b_tile = st_bf<BN, BK>;                     // all 256 rows of Bt for one K block
using c_tile = st_bf<64, 64>;                     // epilogue staging
using acc_t = rt_fl<16, BN>;                      // one warp's 16 x 256 fp32 accumulators
using acc_chunk_t = rt_fl<16, 64>;

struct __align__(1024) smem_t {
    a_tile a[STAGES][CONSUMERS];                  // 16 KB a stage, one TMA box of 128 x 64
    b_tile b[STAGES];                             // 32 KB a stage
    c_tile c[CONSUMERS][2];                       // 2 x 2 x 8 KB
    semaphore full[STAGES];
    semaphore empty[STAGES];
};
constexpr int STAGE_BYTES = (BM + BN) * BK * 2;
constexpr size_t SMEM_BYTES = sizeof(smem_t) + 1024;   // + slack to align the dynamic base to 1024 bytes
static_assert(sizeof(a_tile) * CONSUMERS + sizeof(b_tile) == STAGE_BYTES, "stage layout");
static_assert(SMEM_BYTES <= 232448, "over the 227 KB a block may use on sm_90");

// ---------------------------------------------------------------------------------------------- device helpers
__device__ static inline void tma_load_2d(void* dst, const CUtensorMap* map, int c0, int c1, semaphore& bar) {
    uint32_t d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
    uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n"
        :: "r"(d), "l"(reinterpret_cast<uint64_t>(map)), "r"(b), "r"(c0), "r"(c1)
        : "memory");
}
__device__ static inline void tma_store_2d(const CUtensorMap* map, const void* src, int c0, int c1) {
    uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(src));
    asm volatile(
        "cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group [%0, {%2, %3}], [%1];\n"
        :: "l"(reinterpret_cast<uint64_t>(map)), "r"(s), "r"(c0), "r"(c1)
        : "memory");
    asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
template <int N> __device__ static inline void tma_store_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;\n" :: "n"(N) : "memory");
}
__device__ static inline void tma_store_wait_all() {
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
__device__ static inline void named_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(threads) : "memory");
}
__device__ static inline void mbar_wait(semaphore& s, int phase) {
    kittens::wait(s, phase);
    asm volatile("" ::: "memory");
}

struct tile_coord { int m, n; };
__device__ static inline tile_coord tile_of(int t, int m_tiles, int n_tiles) {
    const int per_group = GROUP_M * n_tiles;
    const int g = t / per_group;
    const int first_m = g * GROUP_M;
    const int gm = min(m_tiles - first_m, GROUP_M);
    const int local = t - g * per_group;
    return {first_m + local % gm, local / gm};
}

__global__ void __launch_bounds__(NUM_THREADS, 1)
gemm_kernel(const __grid_constant__ CUtensorMap tm_a, const __grid_constant__ CUtensorMap tm_b,
            const __grid_constant__ CUtensorMap tm_c, __nv_bfloat16* __restrict__ Cptr, int64_t ldc,
            int M, int N, int K) {
    extern __shared__ uint8_t smem_raw[];
    smem_t& sm = *reinterpret_cast<smem_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));

    const int m_tiles = (M + BM - 1) / BM, n_tiles = (N + BN - 1) / BN;
    const int num_tiles = m_tiles * n_tiles;
    const int k_blocks = (K + BK - 1) / BK;
    const int wg = threadIdx.x / 128;

    if (threadIdx.x == 0) {
        #pragma unroll
        for (int s = 0; s < STAGES; s++) {
            init_semaphore(sm.full[s], 1, 0);
            init_semaphore(sm.empty[s], CONSUMERS * 4, 0);   // one arrival per consumer warp
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == CONSUMERS) {
        // ------------------------------------------------------------------------------------------ producer
        warpgroup::decrease_registers<40>();
        if (threadIdx.x == CONSUMERS * 128) {
            asm volatile("prefetch.tensormap [%0];\n" :: "l"(reinterpret_cast<uint64_t>(&tm_a)) : "memory");
            asm volatile("prefetch.tensormap [%0];\n" :: "l"(reinterpret_cast<uint64_t>(&tm_b)) : "memory");
            int it = 0;
            for (int t = blockIdx.x; t < num_tiles; t += gridDim.x) {
                const tile_coord tc = tile_of(t, m_tiles, n_tiles);
                for (int kb = 0; kb < k_blocks; kb++, it++) {
                    const int s = it % STAGES, phase = (it / STAGES) & 1;
                    mbar_wait(sm.empty[s], phase ^ 1);
                    tma::expect_bytes(sm.full[s], STAGE_BYTES);
                    tma_load_2d(&sm.a[s][0], &tm_a, kb * BK, tc.m * BM, sm.full[s]);
                    tma_load_2d(&sm.b[s], &tm_b, kb * BK, tc.n * BN, sm.full[s]);
                }
            }
        }
    } else {
        // ------------------------------------------------------------------------------------------ consumers
        warpgroup::increase_registers<232>();
        const int cid = wg;
        const bool issuer = (threadIdx.x % 128) == 0;
        acc_t acc;
        int it = 0;
        for (int t = blockIdx.x; t < num_tiles; t += gridDim.x) {
            const tile_coord tc = tile_of(t, m_tiles, n_tiles);
            int prev_s = 0;
            for (int kb = 0; kb < k_blocks; kb++, it++) {
                const int s = it % STAGES, phase = (it / STAGES) & 1;
                mbar_wait(sm.full[s], phase);
                if (kb == 0) warpgroup::mm_ABt(acc, sm.a[s][cid], sm.b[s]);
                else         warpgroup::mma_ABt(acc, sm.a[s][cid], sm.b[s]);
                warpgroup::mma_async_wait<1>();
                if (kb > 0 && laneid() == 0) arrive(sm.empty[prev_s]);
                prev_s = s;
            }
            warpgroup::mma_async_wait<0>();
            if (laneid() == 0) arrive(sm.empty[prev_s]);

            // ---- epilogue: 4 chunks of 64 x 64, bf16, through double-buffered staging tiles and TMA stores
            const int row0 = tc.m * BM + cid * 64;
            if (row0 < M) {
                #pragma unroll
                for (int j = 0; j < BN / 64; j++) {
                    const int col0 = tc.n * BN + j * 64;
                    if (col0 >= N) break;                       // uniform over the warpgroup
                    c_tile& buf = sm.c[cid][j & 1];
                    if (issuer) tma_store_wait_read<1>();       // the store that last read this buffer is done
                    named_sync(1 + cid, 128);
                    warpgroup::store(buf, *reinterpret_cast<const acc_chunk_t*>(&acc.tiles[0][4 * j]));
                    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
                    named_sync(1 + cid, 128);
                    if ((N & 7) == 0 || col0 + 64 <= N) {
                        if (issuer) tma_store_2d(&tm_c, &buf, col0, row0);
                    } else {
                        // TMA stores write whole 16-byte chunks: past an N that is not a multiple of 8 they would
                        // overwrite the padding up to the next 16 bytes. This edge chunk is stored element-wise.
                        const int lt = threadIdx.x % 128;
                        for (int i = lt; i < 64 * 64; i += 128) {
                            const int r = i / 64, c = i % 64;
                            if (row0 + r < M && col0 + c < N) Cptr[(int64_t)(row0 + r) * ldc + col0 + c] = buf[{r, c}];
                        }
                    }
                }
            }
        }
        if (issuer) tma_store_wait_all();
    }
}

__global__ void zero_fill_kernel(__nv_bfloat16* C, int64_t ldc, int64_t M, int64_t N) {
    const int64_t total = M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / N, n = i - m * N;
        C[m * ldc + n] = __float2bfloat16(0.0f);
    }
}

// ---------------------------------------------------------------------------------------------- host side
typedef CUresult (*encode_fn_t)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

static encode_fn_t get_encoder() {
    static encode_fn_t fn = nullptr;
    static std::once_flag once;
    std::call_once(once, [] {
        void* p = nullptr;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) ==
                cudaSuccess && q == cudaDriverEntryPointSuccess)
            fn = reinterpret_cast<encode_fn_t>(p);
    });
    return fn;
}

// A 2-D bf16 tensor map: `rows` x `cols` (cols contiguous, row stride ld elements), box box_rows x 64, 128B swizzle.
struct map_key { const void* ptr; int64_t rows, cols, ld; int box_rows; };
struct map_entry { map_key key; CUtensorMap map; bool valid; };
constexpr int MAP_CACHE = 8;
struct map_cache { map_entry e[MAP_CACHE]; int next; };

static cudaError_t make_map(map_cache& cache, CUtensorMap* out, const void* ptr, int64_t rows, int64_t cols,
                            int64_t ld, int box_rows) {
    for (int i = 0; i < MAP_CACHE; i++) {
        const map_entry& e = cache.e[i];
        if (e.valid && e.key.ptr == ptr && e.key.rows == rows && e.key.cols == cols && e.key.ld == ld &&
            e.key.box_rows == box_rows) {
            *out = e.map;
            return cudaSuccess;
        }
    }
    encode_fn_t enc = get_encoder();
    if (!enc) return cudaErrorSymbolNotFound;
    const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows};
    const cuuint64_t strides[1] = {(cuuint64_t)ld * 2};
    const cuuint32_t box[2] = {64, (cuuint32_t)box_rows};
    const cuuint32_t estr[2] = {1, 1};
    CUresult r = enc(out, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(ptr), dims, strides, box, estr,
                     CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) return cudaErrorInvalidValue;
    map_entry& e = cache.e[cache.next];
    cache.next = (cache.next + 1) % MAP_CACHE;
    e.key = {ptr, rows, cols, ld, box_rows};
    e.map = *out;
    e.valid = true;
    return cudaSuccess;
}

struct device_info { int sms; bool ready; };
constexpr int MAX_DEVICES = 64;
static device_info g_devices[MAX_DEVICES];
static std::mutex g_devices_mutex;

static cudaError_t device_setup(int dev, int* sms) {
    if (dev < 0 || dev >= MAX_DEVICES) return cudaErrorInvalidDevice;
    std::lock_guard<std::mutex> lock(g_devices_mutex);
    device_info& d = g_devices[dev];
    if (!d.ready) {
        cudaError_t e = cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev);
        if (e != cudaSuccess) return e;
        int major = 0, optin = 0;
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
        if (major != 9 || optin < (int)SMEM_BYTES) return cudaErrorNoKernelImageForDevice;
        e = cudaFuncSetAttribute(gemm_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SMEM_BYTES);
        if (e != cudaSuccess) return e;
        d.ready = true;
    }
    *sms = d.sms;
    return cudaSuccess;
}

}  // namespace hkjit_sm90a

extern "C" int hkjit_gemm_bf16(const void* A, int64_t lda, const void* Bt, int64_t ldb, void* C, int64_t ldc,
                               int64_t M, int64_t N, int64_t K, void* stream) {
    using namespace hkjit_sm90a;
    constexpr int64_t LIM = 0x7fffffff;
    if (M < 0 || N < 0 || K < 0 || M > LIM || N > LIM || K > LIM) return cudaErrorInvalidValue;
    if (M == 0 || N == 0) return cudaSuccess;
    cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
    if (C == nullptr || ldc < N) return cudaErrorInvalidValue;
    if (K == 0) {
        const int64_t total = M * N;
        const int threads = 256;
        const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65536);
        zero_fill_kernel<<<(unsigned)blocks, threads, 0, st>>>(reinterpret_cast<__nv_bfloat16*>(C), ldc, M, N);
        return (int)cudaGetLastError();
    }
    if (A == nullptr || Bt == nullptr || lda < K || ldb < K) return cudaErrorInvalidValue;
    if ((reinterpret_cast<uintptr_t>(A) | reinterpret_cast<uintptr_t>(Bt) | reinterpret_cast<uintptr_t>(C)) & 15)
        return cudaErrorInvalidValue;
    if ((lda | ldb | ldc) & 7) return cudaErrorInvalidValue;

    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    int sms = 0;
    e = device_setup(dev, &sms);
    if (e != cudaSuccess) return e;

    thread_local map_cache cache_a{}, cache_b{}, cache_c{};
    CUtensorMap ma, mb, mc;
    if ((e = make_map(cache_a, &ma, A, M, K, lda, BM)) != cudaSuccess) return e;
    if ((e = make_map(cache_b, &mb, Bt, N, K, ldb, BN)) != cudaSuccess) return e;
    if ((e = make_map(cache_c, &mc, C, M, N, ldc, 64)) != cudaSuccess) return e;

    const int64_t tiles = ((M + BM - 1) / BM) * ((N + BN - 1) / BN);
    if (tiles > LIM) return cudaErrorInvalidValue;
    const int grid = (int)std::min<int64_t>(tiles, sms);
    gemm_kernel<<<grid, NUM_THREADS, SMEM_BYTES, st>>>(ma, mb, mc, reinterpret_cast<__nv_bfloat16*>(C), ldc,
                                                        (int)M, (int)N, (int)K);
    return (int)cudaGetLastError();
}

extern "C" const char* hkjit_gemm_bf16_error(int code) {
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
