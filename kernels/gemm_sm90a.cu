// gemm_sm90a.cu - hkjit's bf16 GEMM for NVIDIA Hopper (sm_90a), written on ThunderKittens.
//
//     C[m, n] = sum_k A[m, k] * Bt[n, k]      (bf16 in, fp32 accumulate, bf16 out; C = A . Bt^T)
//
// A is M x K row-major (row stride lda), Bt is N x K row-major (row stride ldb: the nn.Linear weight layout), C is
// M x N row-major (row stride ldc). The C ABI is declared in hkjit_gemm.h.
//
// Configuration (compile-time defines; each configuration is its own build, so its own cache entry):
//   HKJIT_SM90A_BM      rows of the block tile: 64, 128 (default) or 256
//   HKJIT_SM90A_BN      columns of the block tile: a multiple of 16 from 64 to 256 (default 256); with SWAP 16, 32
//                       or 64. Widths off the 64 grid (80, 96, 160, 224, ...) fit a wave of tiles to the SMs on
//                       products of one or two waves (256x10240: 128 tiles of 128x160 where 128x192 makes 108)
//   HKJIT_SM90A_STAGES  depth of the shared-memory ring (default: as deep as fits in 227 KB, at most 8)
//   HKJIT_SM90A_GROUP_M raster group: tiles are visited in groups of GROUP_M tile rows (default 16)
//   HKJIT_SM90A_SPLITK  0 (default), 1 or 2: the launcher may split K across CTAs when the tiles cannot fill the
//                       SMs; 1: partials in a workspace, summed by a second kernel; 2: the CTAs of a cluster take
//                       the K slices of one tile and sum them through distributed shared memory (one launch)
//   HKJIT_SM90A_REPACK  0 (default) or 1: an operand whose row pitch is not a multiple of 128 bytes is first copied
//                       into a buffer with a 128-byte pitch (compute-bound products: >= 1 wave of tiles; K % 8 == 0)
//   HKJIT_SM90A_PINGPONG 0 (default) or 1: each of the two consumer warpgroups owns a whole BM x BN tile and the
//                       two alternate (BM 64 or 128), so one stores its tile while the other runs its main loop
//   HKJIT_SM90A_CLUSTER 1 (default) or 2: 2-CTA clusters; the two CTAs take vertically adjacent tiles (same
//                       columns) and each loads half of the shared Bt tile, multicast into both CTAs' rings
//   HKJIT_SM90A_PDL     0 (default) or 1: programmatic dependent launch (the next kernel's launch and set-up overlap
//                       this one's tail; measured a gain only for the swapped 64x16 configuration)
//   HKJIT_SM90A_SWAP    0 (default) or 1: small M (decode): the kernel computes C^T = Bt . A^T, so Bt's rows fill the
//                       64-row wgmma side (BM) and M is the wgmma N side (BN: 16, 32 or 64); stores are transposed
// No defines = BM 128, BN 256, 4 stages, GROUP_M 16, no split: the kernel of 2026-11.
// Every consumer warpgroup owns BM / CONSUMERS rows (one or two m64 wgmma row blocks) x BN columns; its fp32
// accumulators are BM / CONSUMERS * BN / 128 floats a thread, capped at 128 (so 256 x 256 is refused).
//   128x256: 2 consumers x (64 rows x 256)      256x128: 2 consumers x (2 x 64 rows x 128)
//   128x128: 2 consumers x (64 rows x 128)      64xBN:   1 consumer  x (64 rows x BN)  (small M, with split-K)
//
// Design (one CTA per SM, persistent):
//   * CONSUMERS consumer warpgroups + 1 producer warpgroup (one thread issues the TMA loads); setmaxnreg moves
//     registers from the producer to the consumers.
//   * K is walked in blocks of 64 through a STAGES-deep shared-memory ring; each stage holds A (BM x 64) and Bt
//     (BN x 64), both K-major with the 128-byte swizzle that TMA writes and wgmma reads. TMA loads complete on a
//     "full" mbarrier (transaction bytes); consumers release a stage on an "empty" mbarrier once the wgmma that
//     read it has retired (one k block of wgmma groups kept in flight).
//   * The ring continues across work units, so the producer fetches the next unit while the consumers store
//     this one. The epilogue converts to bf16 through stmatrix into a double-buffered 64 x 64 staging tile per
//     consumer and writes it out with TMA stores (bulk groups), which clip at the M / N edges. TMA stores write
//     whole 16-byte chunks, so when N is not a multiple of 8 the chunk holding column N-1 is stored element-wise.
//   * Ragged M, N and K are handled by the tensor maps: out-of-bounds loads fill zeros, stores are clipped.
//   * Split-K (HKJIT_SM90A_SPLITK=1): a work unit is (tile, K slice). When the output tiles cannot fill the SMs
//     (fewer than 2 waves) the launcher picks S <= 16 slices (each >= 4 K blocks) by a small cost model (SM
//     occupancy over the waves vs the partials' extra traffic, choose_splits; S = 1: the plain path above). Each unit
//     writes its fp32 partial of a consumer's rows into that rows' region of a workspace in its registers' order
//     (float4 f of thread t at f * 128 + t: coalesced stores, and every unit of a tile holds the same elements in
//     the same registers), then arrives on a counter of those rows (one per tile and m64 row block, after the
//     partials); the last of the S arrivals loads the S partials in slice order into its accumulators (up to 32
//     float4 loads in flight a thread) and stores them as the unsplit epilogue does (TMA): one launch, no second
//     kernel. (H200 run 29 had timed the reduction kernel's whole cost at 13-19% of 64x4096x4096-sized products;
//     summed in the launch, runs 33-37 timed the kernel within run-to-run noise of the two-kernel version: the
//     last unit's tail is paid either way, and what is saved is a launch. A first version that summed pair by
//     pair, one L2 round trip each, was up to 5x slower.) The sum order is fixed, so the result is deterministic
//     (bit-identical from call to call, and to the reduction kernel's). A counter word is stamp | count, the stamp
//     a tag and a number no other launch of this process has, so the workspace needs no zeroing (no memset
//     launch): a word without this launch's stamp counts as 0. An arrival is one CAS on the word as read before
//     its partial was stored (retried only when another arrival came in between); the last arrival leaves count
//     0, so a CUDA graph's replays (one stamp) start from 0 as well. The workspace is taken with
//     cudaMallocFromPoolAsync from a memory pool this library owns (one per device, release threshold unlimited,
//     so a steady state allocates nothing from the driver) and freed with cudaFreeAsync on the same stream after
//     the kernel: stream ordered, no ABI change, graph-capturable, and no global state a concurrent stream could
//     race on. The swapped kernel (SWAP) keeps the second kernel (its partials are written transposed, in C's
//     orientation).
//   * Tiles are visited in groups of GROUP_M tile rows (L2 reuse of Bt).
//   * Ping-pong (HKJIT_SM90A_PINGPONG=1, CUTLASS's "KernelTmaWarpSpecializedPingpong" schedule): without it the two
//     consumers split one tile and both sit in the epilogue (convert, stmatrix, TMA store issue) while the tensor
//     cores idle. With it the CTA's work units alternate between the consumers (unit nth of the CTA goes to consumer
//     nth % 2; both walk the one ring, a consumer steps `it` over the other's K blocks without touching them), and
//     an ordering barrier pair hands the tensor cores over: consumer c waits on ORDER_BAR + c before its main loop
//     and, once its last wgmma is issued, lets the other one go (ORDER_BAR + (c ^ 1)), so its epilogue runs under
//     the other's main loop. A consumer then holds a whole BM x BN tile of accumulators (BM x BN / 128 floats a
//     thread), hence BM 64 (any BN) or 128 (BN <= 128). The arrivals match the waits exactly (consumer 1 arrives
//     once at the start; an arrival after a unit only if the CTA has a next one), so no barrier is left half-arrived
//     at exit. Measured on the H200 (NOTES.md, runs 6-8): a win on decode shapes (one or two units per CTA), 0.95x
//     of the 128x256 kernel on prefill.
//   * Clusters (HKJIT_SM90A_CLUSTER=2): a work unit is a pair of tiles (tile rows 2p and 2p + 1, one column, one
//     K slice); CTA rank r of the cluster takes tile row 2p + r. Both need the same Bt block, so each CTA's producer
//     loads its own A block and half of the Bt rows (BN / 2) with a multicast TMA load into the same ring slot of
//     both CTAs: each CTA's "full" barrier still expects the whole stage (its A + two Bt halves, one from each
//     producer), and the L2 serves Bt once per pair instead of twice. A slot may be refilled only when the
//     consumers of BOTH CTAs are done with it (the partner's producer writes into it too), so every consumer warp
//     arrives on the "empty" barrier of its own CTA and of its partner (mapa + an arrive on that shared::cluster
//     address, default semantics: see arrive_cluster), and each empty barrier counts both CTAs' warps. A cluster
//     barrier after the barrier set-up (the partner's barriers exist before anything touches them) and one before
//     exit (no CTA leaves while its partner may still write into its shared memory or arrive on its barriers).
//     When the tile rows are odd the last pair's second tile is past M: that CTA still loads (its A coordinate
//     clamped to the last tile row) and multicasts its Bt half, computes, and stores nothing (the epilogue skips
//     rows >= M). The launch is cudaLaunchKernelEx with a cluster dimension of 2; the grid is 2 x the clusters that
//     fit at once (cudaOccupancyMaxActiveClusters). Measured on the H200: = the 128x256 kernel on aligned products,
//     0.89x of cuBLAS (repack 0.76x) on 3000x5000x7000.
//   * Cluster split-K (HKJIT_SM90A_SPLITK=2): the workspace split above costs a second launch and 8 S bytes per
//     element of C in fp32 traffic, which on decode shapes is a large part of a ~15 us product (64x6144x4096 split
//     4 ways: 12.6 MB of partials against 50 MB of Bt). Here the launcher picks S in {1, 2} (choose_cluster_split:
//     SM occupancy of whole clusters, cudaOccupancyMaxActiveClusters; 4 and 8 measured slower, see CSPLITS) and
//     launches clusters of S CTAs; a cluster takes one tile at a time and CTA rank r its K slice r. After its main
//     loop each CTA writes its fp32 partial into its own shared buffer `red` (in C's orientation), every consumer
//     warp arrives on the `ready` barrier of every CTA of the cluster (release at cluster scope), and once its own
//     `ready` phase completes (acquire at cluster scope) CTA r sums rows [r TR / S, (r + 1) TR / S) of the tile over
//     the S buffers, read with ld.shared::cluster in rank order (deterministic), and stores them as bf16 (8-byte
//     stores along C's rows). Its warps then arrive on every CTA's `freed` barrier; a CTA waits on its `freed`
//     before writing `red` for its next tile, so no buffer is overwritten while a partner may still read it. The
//     producer never waits on either barrier, so the ring runs ahead into the next tile as before. Cluster barriers
//     after the set-up and before exit, as for CLUSTER. Needs BM x BN <= 8192 (a 32 KB buffer); no PINGPONG,
//     REPACK or CLUSTER. S = 1 (enough tiles): a plain launch and the plain epilogue.
//   * Swap (HKJIT_SM90A_SWAP=1, the "swap AB" of CUTLASS / cuBLAS small-M kernels): a wgmma has 64 rows, so a
//     decode product (M = 16) run as-is wastes 3/4 of every tensor-core op (BM >= 64) and of the A half of the ring.
//     The launcher swaps the operands: the kernel sees A' = Bt (N x K), Bt' = A (M x K), M' = N, N' = M and
//     computes D = A' . Bt'^T = C^T, with BN (the tile's M side) 16, 32 or 64, so a stage is mostly Bt and the ring
//     is deep. The epilogue stores D transposed from registers, C[m][n] = D[n][m] (bf16; 8 lanes write 16 contiguous
//     bytes), or, split (SPLITK=1), the fp32 partials in C's orientation, so the reduction is the one above; with
//     SPLITK=2 the cluster split's buffer is in C's orientation too. No TMA store, no staging. Needs SPLITK 1 or 2
//     (the split decides by the same cost models, for C's M), not REPACK, CLUSTER or PINGPONG. Measured on the H200
//     (NOTES.md, runs 9-13): with pairs (SPLITK=2) M = 16 decode 0.95 -> 1.01x cuBLAS (best per shape); BN = 16
//     loses for M >= 64 (Bt re-read per 16 rows).
//   * Programmatic dependent launch (HKJIT_SM90A_PDL=1): the GEMM and the split-K reduction are launched with
//     programmatic stream serialization, so the next kernel of the stream may be scheduled before this one ends.
//     The producer thread waits (griddepcontrol.wait: the kernel before has completed, its writes visible) before
//     its first TMA load, and every other global access of the CTA comes after a load it issued (consumers store
//     C or partials only after consuming stages), so nothing is read before the previous kernel wrote it and
//     nothing is written while it may still read it. Once its last load is issued it lets the next kernel go
//     (griddepcontrol.launch_dependents): that kernel's CTAs take the SMs as this one's exit and run their set-up
//     (barriers, register split, tensor-map prefetch) under this one's tail. The reduction waits before it reads
//     the partials. After a kernel that is not programmatic the wait returns at once (plain stream order).
//     Measured on the H200 (NOTES.md, runs 20-21): swapped 64x16 tiles back to back +2% (M = 16 decode, geomean
//     of 8 shapes, two runs; 16x4096x4096 1.02 -> 1.11x), swapped 128x16 -6% at 16x10240x8192, ping-pong with few
//     CTAs -13% (16x10240x8192), split-K and 128x256 no change; so only 16x64-swap sets it. check.py
//     (tools/sm90a_standalone) chains calls with no synchronisation between them (each reads what the call before
//     wrote, then overwrites what it read; and a call after a long call on few CTAs) to catch a missing wait.
//   * Repack (HKJIT_SM90A_REPACK=1): measured on the H200 (2026-12-01), TMA loads of rows whose pitch is not a
//     multiple of 128 bytes (K % 64 != 0 for contiguous operands) run the kernel at ~0.65x of the aligned speed
//     (3000x5000x7000 0.63x cuBLAS, 3000x5000x7040 0.92x). With REPACK the launcher copies such an operand
//     (16-byte vectors) into a pool buffer with the pitch rounded up to 64 elements; the tensor map still says K
//     columns, so the pad is never read (out-of-bounds boxes are zero-filled). Same arithmetic, same result bits.
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
#include <utility>

#include "hkjit_gemm.h"

// ---------------------------------------------------------------------------------------------- configuration
#ifndef HKJIT_SM90A_BM
#define HKJIT_SM90A_BM 128
#endif
#ifndef HKJIT_SM90A_BN
#define HKJIT_SM90A_BN 256
#endif
#ifndef HKJIT_SM90A_GROUP_M
#define HKJIT_SM90A_GROUP_M 16
#endif
#ifndef HKJIT_SM90A_SPLITK
#define HKJIT_SM90A_SPLITK 0
#endif
#ifndef HKJIT_SM90A_CLUSTER
#define HKJIT_SM90A_CLUSTER 1
#endif
#ifndef HKJIT_SM90A_REPACK
#define HKJIT_SM90A_REPACK 0
#endif
#ifndef HKJIT_SM90A_PINGPONG
#define HKJIT_SM90A_PINGPONG 0
#endif
#ifndef HKJIT_SM90A_SWAP
#define HKJIT_SM90A_SWAP 0
#endif
#ifndef HKJIT_SM90A_PDL
#define HKJIT_SM90A_PDL 0
#endif
#if HKJIT_SM90A_PDL != 0 && HKJIT_SM90A_PDL != 1
#error "HKJIT_SM90A_PDL must be 0 or 1"
#endif
#if HKJIT_SM90A_BM != 64 && HKJIT_SM90A_BM != 128 && HKJIT_SM90A_BM != 256
#error "HKJIT_SM90A_BM must be 64, 128 or 256"
#endif
#if HKJIT_SM90A_SWAP != 0 && HKJIT_SM90A_SWAP != 1
#error "HKJIT_SM90A_SWAP must be 0 or 1"
#endif
#if HKJIT_SM90A_SWAP
#if HKJIT_SM90A_BN != 16 && HKJIT_SM90A_BN != 32 && HKJIT_SM90A_BN != 64
#error "HKJIT_SM90A_SWAP: HKJIT_SM90A_BN (the tile's M side) must be 16, 32 or 64"
#endif
#if !HKJIT_SM90A_SPLITK || HKJIT_SM90A_REPACK || HKJIT_SM90A_PINGPONG || HKJIT_SM90A_CLUSTER != 1
#error "HKJIT_SM90A_SWAP needs HKJIT_SM90A_SPLITK=1 or 2 and no REPACK, PINGPONG or CLUSTER"
#endif
#elif HKJIT_SM90A_BN < 64 || HKJIT_SM90A_BN > 256 || HKJIT_SM90A_BN % 16 != 0
#error "HKJIT_SM90A_BN must be a multiple of 16 from 64 to 256"
#endif
#if HKJIT_SM90A_SPLITK != 0 && HKJIT_SM90A_SPLITK != 1 && HKJIT_SM90A_SPLITK != 2
#error "HKJIT_SM90A_SPLITK must be 0, 1 or 2"
#endif
#if HKJIT_SM90A_SPLITK == 2 && (HKJIT_SM90A_PINGPONG || HKJIT_SM90A_REPACK || HKJIT_SM90A_CLUSTER != 1 || \
                                HKJIT_SM90A_BM * HKJIT_SM90A_BN > 8192)
#error "HKJIT_SM90A_SPLITK=2 (cluster split-K) needs BM x BN <= 8192 and no PINGPONG, REPACK or CLUSTER"
#endif
#if HKJIT_SM90A_REPACK != 0 && HKJIT_SM90A_REPACK != 1
#error "HKJIT_SM90A_REPACK must be 0 or 1"
#endif
#if HKJIT_SM90A_PINGPONG != 0 && HKJIT_SM90A_PINGPONG != 1
#error "HKJIT_SM90A_PINGPONG must be 0 or 1"
#endif
#if HKJIT_SM90A_PINGPONG && HKJIT_SM90A_BM == 256
#error "HKJIT_SM90A_PINGPONG needs HKJIT_SM90A_BM 64 or 128 (each consumer holds a whole tile's accumulators)"
#endif
#if HKJIT_SM90A_CLUSTER != 1 && HKJIT_SM90A_CLUSTER != 2
#error "HKJIT_SM90A_CLUSTER must be 1 or 2 (2-CTA clusters multicast the Bt tile)"
#endif
#if HKJIT_SM90A_GROUP_M < 1
#error "HKJIT_SM90A_GROUP_M must be at least 1"
#endif

namespace hkjit_sm90a {

using namespace kittens;

constexpr int BM = HKJIT_SM90A_BM, BN = HKJIT_SM90A_BN, BK = 64;
constexpr int GROUP_M = HKJIT_SM90A_GROUP_M;
constexpr bool SPLITK = HKJIT_SM90A_SPLITK == 1;     // workspace split-K (+ the reduction kernel)
constexpr bool CL_SPLIT = HKJIT_SM90A_SPLITK == 2;   // cluster split-K (reduced through distributed shared memory)
constexpr int RED_FLOATS = CL_SPLIT ? BM * BN : 4;   // a CTA's fp32 partial tile (cluster split-K)
constexpr bool REPACK = HKJIT_SM90A_REPACK != 0;
constexpr bool PINGPONG = HKJIT_SM90A_PINGPONG != 0;
constexpr bool PDL = HKJIT_SM90A_PDL != 0;          // programmatic dependent launch (see PDL above)
constexpr bool SWAP = HKJIT_SM90A_SWAP != 0;        // the kernel's M, N are C's N, M (C^T = Bt . A^T)
constexpr int CONSUMERS = PINGPONG || BM > 64 ? 2 : 1;   // consumer warpgroups
constexpr int MW = PINGPONG ? BM / 64 : BM / 64 / CONSUMERS;   // m64 row blocks (wgmma rows) per consumer: 1 or 2
constexpr int STAGE_READERS = PINGPONG ? 1 : CONSUMERS;  // consumer warpgroups that read (and release) one stage
constexpr int CLUSTER = HKJIT_SM90A_CLUSTER;        // CTAs per cluster (they share Bt loads)
constexpr int GROUP_UNITS = CLUSTER > 1 && GROUP_M > 1 ? GROUP_M / CLUSTER : GROUP_M;   // raster group, in units
constexpr int ORDER_BAR = 3;                        // named barriers 3, 4: ping-pong turns (1, 2: epilogue syncs)
constexpr int NUM_THREADS = (CONSUMERS + 1) * 128;
static_assert(MW * BN <= 256, "HKJIT_SM90A_BM x HKJIT_SM90A_BN: a consumer's fp32 accumulators exceed 128 registers "
                              "a thread (256 x 256 is not supported; use 128 x 256 or 256 x 128; with "
                              "HKJIT_SM90A_PINGPONG a consumer holds the whole tile: 64 x BN or 128 x 128)");

using a_tile = st_bf<64, BK>;                     // 64 rows of A for one K block
using b_tile = st_bf<BN, BK>;                     // all BN rows of Bt for one K block
using c_tile = st_bf<64, 64>;                     // epilogue staging
using acc_t = rt_fl<16, BN>;                      // one warp's 16 x BN fp32 accumulators (per m64 row block)
using acc_chunk_t = rt_fl<16, 64>;

constexpr int STAGE_BYTES = (BM + BN) * BK * 2;
constexpr int FIXED_BYTES = CONSUMERS * 2 * (int)sizeof(c_tile) + 1024 + 1024 +   // staging + barriers + slack
                            (CL_SPLIT ? RED_FLOATS * 4 : 0);                         // + the partial tile
constexpr int SMEM_LIMIT = 232448;                 // the 227 KB a block may opt in to on sm_90
constexpr int FIT_STAGES = (SMEM_LIMIT - FIXED_BYTES) / STAGE_BYTES;
#ifdef HKJIT_SM90A_STAGES
constexpr int STAGES = HKJIT_SM90A_STAGES;
static_assert(STAGES >= 2 && STAGES <= 16, "HKJIT_SM90A_STAGES must be in 2..16");
#else
constexpr int STAGES = FIT_STAGES < 8 ? FIT_STAGES : 8;
#endif

struct __align__(1024) smem_t {
    a_tile a[STAGES][BM / 64];                    // BM x 64 a stage, one TMA box
    b_tile b[STAGES];                             // BN x 64 a stage
    c_tile c[CONSUMERS][2];                       // 2 x 8 KB per consumer
    float red[RED_FLOATS];                        // cluster split-K: this CTA's partial, C's orientation
    semaphore full[STAGES];
    semaphore empty[STAGES];
    semaphore ready, freed;                       // cluster split-K: all partials written / all read
    int last[2];                                  // workspace split-K: this consumer's unit was its rows' last
};
constexpr size_t SMEM_BYTES = sizeof(smem_t) + 1024;   // + slack to align the dynamic base to 1024 bytes
static_assert(sizeof(a_tile) * (BM / 64) + sizeof(b_tile) == STAGE_BYTES, "stage layout");
static_assert(SMEM_BYTES <= SMEM_LIMIT, "HKJIT_SM90A_STAGES: the ring does not fit in the 227 KB a block may use on "
                                         "sm_90 (lower HKJIT_SM90A_STAGES or the tile)");

// Registers: the producer gives its registers to the consumers (setmaxnreg; 64 K registers per SM).
constexpr int PRODUCER_REGS = 40;
constexpr int CONSUMER_REGS = CONSUMERS == 1 ? 240 : 232;
static_assert(CONSUMERS * 128 * CONSUMER_REGS + 128 * PRODUCER_REGS <= 65536, "register split");

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
__device__ static inline void named_arrive(int id, int threads) {
    asm volatile("bar.arrive %0, %1;\n" :: "r"(id), "r"(threads) : "memory");
}
__device__ static inline void tma_load_2d_multicast(void* dst, const CUtensorMap* map, int c0, int c1, semaphore& bar,
                                                    uint16_t cta_mask) {
    uint32_t d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
    uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
        " [%0], [%1, {%3, %4}], [%2], %5;\n"
        :: "r"(d), "l"(reinterpret_cast<uint64_t>(map)), "r"(b), "r"(c0), "r"(c1), "h"(cta_mask)
        : "memory");
}
__device__ static inline int cluster_rank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return (int)r;
}
__device__ static inline void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// One arrival on barrier `bar` of the cluster's CTA `cta` (the same shared-memory offset in that CTA). Default
// semantics (release at CTA scope), as CUTLASS's ClusterBarrier::arrive: what it orders is the wgmma reads of the
// stage, already retired (wgmma wait) before the arrival. Measured 2026-12-01 on the H200: with
// .release.cluster every CTA ran at 0.55-0.6x its speed (a cluster-scope release on each k block's path).
__device__ static inline void arrive_cluster(semaphore& bar, int cta) {
    uint32_t local = static_cast<uint32_t>(__cvta_generic_to_shared(&bar)), remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(cta));
    asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" :: "r"(remote) : "memory");
}
// A consumer warp is done reading ring slot `bar`'s stage: tell every producer that writes into it.
__device__ static inline void release_stage(semaphore& bar) {
    if constexpr (CLUSTER == 1) {
        arrive(bar);
    } else {
        #pragma unroll
        for (int c = 0; c < CLUSTER; c++) arrive_cluster(bar, c);
    }
}
// Cluster split-K: one arrival on barrier `bar` of CTA `cta`, releasing at cluster scope (the partial in `red`, or
// the reads of the partners' `red`), and the matching wait, acquiring at cluster scope.
__device__ static inline void arrive_cluster_release(semaphore& bar, int cta) {
    uint32_t local = static_cast<uint32_t>(__cvta_generic_to_shared(&bar)), remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(cta));
    asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" :: "r"(remote) : "memory");
}
__device__ static inline void wait_cluster_acquire(semaphore& bar, int phase) {
    uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
    asm volatile(
        "{\n"
        ".reg .pred P1;\n"
        "LAB_WAIT:\n"
        "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 P1, [%0], %1;\n"
        "@P1 bra.uni DONE;\n"
        "bra.uni LAB_WAIT;\n"
        "DONE:\n"
        "}\n" :: "r"(b), "r"(phase) : "memory");
}
// 4 floats at `local` (16-byte aligned) in the shared memory of the cluster's CTA `cta`.
__device__ static inline float4 load_cluster_f4(const float* local, int cta) {
    uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(local)), remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(a), "r"(cta));
    float4 v;
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(remote) : "memory");
    return v;
}
// 4 consecutive outputs of C from fp32, `left` of them inside C (>= 4: one 8-byte store, aligned: C 16 B,
// ldc % 8 == 0 and the column a multiple of 4; else element by element).
__device__ static inline void store_bf16x4(__nv_bfloat16* c, float4 v, int64_t left) {
    if (left >= 4) {
        const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
        uint2 packed;
        memcpy(&packed.x, &lo, 4);
        memcpy(&packed.y, &hi, 4);
        *reinterpret_cast<uint2*>(c) = packed;
    } else {
        c[0] = __float2bfloat16(v.x);
        if (left > 1) c[1] = __float2bfloat16(v.y);
        if (left > 2) c[2] = __float2bfloat16(v.z);
    }
}
// Programmatic dependent launch (see PDL above): let the next kernel of the stream be scheduled; wait until the
// kernel before has completed and its writes are visible.
__device__ static inline void pdl_launch_dependents() {
    if constexpr (PDL) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}
__device__ static inline void pdl_wait() {
    if constexpr (PDL) asm volatile("griddepcontrol.wait;\n" ::: "memory");
}
__device__ static inline void mbar_wait(semaphore& s, int phase) {
    kittens::wait(s, phase);
    asm volatile("" ::: "memory");
}
// Workspace split-K: one arrival on the counter of a tile's rows; true for the last of the `splits` arrivals (which
// then sums the partials). A counter word is stamp | count (count in the low 8 bits; the stamp is this launch's,
// see next_stamp), so the workspace is not zeroed: a word without this launch's stamp (whatever the memory held,
// e.g. another CUDA graph's data where graphs share memory) counts as 0. `guess` is the word as read before the
// partials were stored (off the critical path): when no other arrival came in between, the CAS takes it at once
// (one L2 round trip); else it is retried with the word it found. The last arrival leaves count 0, so a graph's
// replays (one stamp) start from 0 too; "last" is the arrival that makes the count exactly `splits`, so a count
// left standing would sum nothing (and leave C unwritten). H200 run 37: an atomic max to the stamp and one add
// (no read first) timed 1-3% faster on the split decode shapes, but needs every stale word to be below the stamp,
// which memory shared with other CUDA graphs (any data) does not promise.
__device__ static inline unsigned long long read_count(const unsigned long long* f) {
    unsigned long long v;
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];\n" : "=l"(v) : "l"(f) : "memory");
    return v;
}
__device__ static inline bool arrive_count(unsigned long long* f, unsigned long long stamp, int splits,
                                           unsigned long long guess) {
    for (unsigned long long seen = guess;;) {
        const int n = (seen & ~0xffull) == stamp ? (int)(seen & 0xff) : 0;
        const unsigned long long old = atomicCAS(f, seen, stamp | (n + 1 == splits ? 0ull : (unsigned long long)(n + 1)));
        if (old == seen) return n + 1 == splits;
        seen = old;
    }
}

// A work unit is one output tile (CLUSTER: one pair of vertically adjacent tiles; `m` counts pairs, tile_row() picks
// this CTA's) and one K slice [kb0, kb1) of it (the whole K when splits == 1).
struct unit_t { int m, n, split, kb0, kb1; };
__device__ static inline unit_t unit_of(int u, int m_tiles, int n_tiles, int splits, int k_blocks) {
    const int tiles = m_tiles * n_tiles;
    const int split = u / tiles, t = u - split * tiles;
    const int per_group = GROUP_UNITS * n_tiles;
    const int g = t / per_group;
    const int first_m = g * GROUP_UNITS;
    const int gm = min(m_tiles - first_m, GROUP_UNITS);
    const int local = t - g * per_group;
    return {first_m + local % gm, local / gm, split,
            (int)((int64_t)split * k_blocks / splits), (int)((int64_t)(split + 1) * k_blocks / splits)};
}

// The register epilogues' walk over a consumer thread's accumulators (the wgmma m64nNk16 fragment layout): f(r, c, v)
// with v = D[r][c], D[r][c + 1] for every pair the thread holds, r and c tile-local (row blocks rb0 .. rb0 + MW - 1;
// columns from 16 x J0 on).
template <int J0 = 0, typename F> __device__ static inline void for_each_pair(const acc_t (&acc)[MW], int rb0, F&& f) {
    const int lane = laneid(), wrow = (warpid() % 4) * 16 + lane / 4;
    #pragma unroll
    for (int i = 0; i < MW; i++) {
        const int r0 = (rb0 + i) * 64 + wrow;
        #pragma unroll
        for (int j = J0; j < BN / 16; j++) {
            const int c0 = j * 16 + 2 * (lane % 4);
            const float2* d = acc[i].tiles[0][j].data;
            f(r0, c0, d[0]); f(r0 + 8, c0, d[1]); f(r0, c0 + 8, d[2]); f(r0 + 8, c0 + 8, d[3]);
        }
    }
}

// Workspace split-K: a consumer thread's accumulators as CH4 float4 chunks (chunk f: pairs 2h, 2h + 1 of wgmma
// fragment j of row block i, f = (i * BN / 16 + j) * 2 + h), the order its partial is stored and summed in.
constexpr int CH4 = MW * BN / 8;                    // float4s a consumer thread holds
constexpr int SLICE4 = CH4 * 128;                   // float4s of one unit's partial of a consumer's rows
constexpr int SUM_U = CH4 <= 8 ? 4 : CH4 <= 16 ? 2 : 1;   // slices whose loads the last unit has in flight at once
template <typename Acc> __device__ static inline auto* chunk_pairs(Acc& acc, int f) {   // its two float2s
    return acc[f / (BN / 8)].tiles[0][f % (BN / 8) / 2].data + 2 * (f % 2);
}
__device__ static inline float4 chunk(const acc_t (&acc)[MW], int f) {
    const float2* d = chunk_pairs(acc, f);
    return make_float4(d[0].x, d[0].y, d[1].x, d[1].y);
}
__device__ static inline void add_chunk(acc_t (&acc)[MW], int f, float4 t, bool assign) {
    float2* d = chunk_pairs(acc, f);
    if (assign) { d[0] = make_float2(t.x, t.y); d[1] = make_float2(t.z, t.w); }
    else { d[0].x += t.x; d[0].y += t.y; d[1].x += t.z; d[1].y += t.w; }
}

__global__ void __launch_bounds__(NUM_THREADS, 1)
gemm_kernel(const __grid_constant__ CUtensorMap tm_a, const __grid_constant__ CUtensorMap tm_b,
            const __grid_constant__ CUtensorMap tm_c, __nv_bfloat16* __restrict__ Cptr, int64_t ldc,
            float* __restrict__ ws, unsigned long long* __restrict__ counts, unsigned long long stamp, int splits,
            int M, int N, int K) {
    extern __shared__ uint8_t smem_raw[];
    smem_t& sm = *reinterpret_cast<smem_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));

    const int m_tiles = (M + BM - 1) / BM, n_tiles = (N + BN - 1) / BN;
    const int m_units = (m_tiles + CLUSTER - 1) / CLUSTER;      // tile rows (CLUSTER: pairs of tile rows)
    const bool csplit = CL_SPLIT && splits > 1;                 // cluster split-K: splits = the cluster's CTAs
    const int num_units = m_units * n_tiles * (CL_SPLIT ? 1 : splits);
    const int k_blocks = (K + BK - 1) / BK;
    const int wg = threadIdx.x / 128;
    const int crank = CLUSTER > 1 ? cluster_rank() : 0;
    const int srank = csplit ? cluster_rank() : 0;              // cluster split-K: this CTA's K slice
    const int csize = csplit ? splits : CLUSTER;                // CTAs that share a unit
    // this CTA's units: first_unit(), first_unit() + unit_step(), ... (CLUSTER, cluster split: the cluster's units)
    auto first_unit = [&] { return (int)blockIdx.x / csize; };
    auto unit_step = [&] { return (int)gridDim.x / csize; };
    auto tile_row = [&](const unit_t& w) { return w.m * CLUSTER + crank; };
    auto unit_at = [&](int u) {
        unit_t w = unit_of(u, m_units, n_tiles, CL_SPLIT ? 1 : splits, k_blocks);
        if (csplit) {
            w.split = srank;
            w.kb0 = (int)((int64_t)srank * k_blocks / splits);
            w.kb1 = (int)((int64_t)(srank + 1) * k_blocks / splits);
        }
        return w;
    };

    if (threadIdx.x == 0) {
        #pragma unroll
        for (int s = 0; s < STAGES; s++) {
            init_semaphore(sm.full[s], 1, 0);
            init_semaphore(sm.empty[s], CLUSTER * STAGE_READERS * 4, 0);   // one per reading consumer warp
        }
        if (csplit) {                                                       // every consumer warp of the cluster
            init_semaphore(sm.ready, splits * CONSUMERS * 4, 0);
            init_semaphore(sm.freed, splits * CONSUMERS * 4, 0);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    if (CLUSTER > 1 || csplit) cluster_sync();   // the partners' barriers are initialised before any remote use
    else __syncthreads();

    if (wg == CONSUMERS) {
        // ------------------------------------------------------------------------------------------ producer
        warpgroup::decrease_registers<PRODUCER_REGS>();
        if (threadIdx.x == CONSUMERS * 128) {
            asm volatile("prefetch.tensormap [%0];\n" :: "l"(reinterpret_cast<uint64_t>(&tm_a)) : "memory");
            asm volatile("prefetch.tensormap [%0];\n" :: "l"(reinterpret_cast<uint64_t>(&tm_b)) : "memory");
            pdl_wait();   // PDL: the kernel before is done (every global access of this CTA follows this load)
            int it = 0;
            for (int u = first_unit(); u < num_units; u += unit_step()) {
                const unit_t w = unit_at(u);
                // CLUSTER: past the last tile row the A coordinate is clamped (loaded, computed, never stored)
                const int a_row = (CLUSTER > 1 ? min(tile_row(w), m_tiles - 1) : tile_row(w)) * BM;
                for (int kb = w.kb0; kb < w.kb1; kb++, it++) {
                    const int s = it % STAGES, phase = (it / STAGES) & 1;
                    mbar_wait(sm.empty[s], phase ^ 1);
                    tma::expect_bytes(sm.full[s], STAGE_BYTES);
                    tma_load_2d(&sm.a[s][0], &tm_a, kb * BK, a_row, sm.full[s]);
                    if constexpr (CLUSTER == 1) {
                        tma_load_2d(&sm.b[s], &tm_b, kb * BK, w.n * BN, sm.full[s]);
                    } else {   // this CTA's half of the Bt rows, into the same slot of both CTAs (tm_b: BN / 2 rows)
                        void* half = reinterpret_cast<uint8_t*>(&sm.b[s]) + crank * (BN / CLUSTER) * BK * 2;
                        tma_load_2d_multicast(half, &tm_b, kb * BK, w.n * BN + crank * (BN / CLUSTER), sm.full[s],
                                              (uint16_t)((1 << CLUSTER) - 1));
                    }
                }
            }
            pdl_launch_dependents();   // PDL: every load is issued; the next kernel may take the SMs as they free
        }
    } else {
        // ------------------------------------------------------------------------------------------ consumers
        warpgroup::increase_registers<CONSUMER_REGS>();
        const int cid = wg;
        const bool issuer = (threadIdx.x % 128) == 0;
        const int rb0 = PINGPONG ? 0 : cid * MW;       // this consumer's first m64 row block in the tile
        acc_t acc[MW];
        int it = 0, store_no = 0;
        if (PINGPONG && cid == 1) named_arrive(ORDER_BAR + 0, 256);   // consumer 0 takes the first turn
        for (int u = first_unit(), nth = 0; u < num_units; u += unit_step(), nth++) {
            unit_t w = unit_at(u);
            w.m = tile_row(w);
            if (PINGPONG && (nth & 1) != cid) { it += w.kb1 - w.kb0; continue; }   // the other consumer's unit
            if (PINGPONG) named_sync(ORDER_BAR + cid, 256);                     // wait for my turn
            int prev_s = 0;
            for (int kb = w.kb0; kb < w.kb1; kb++, it++) {
                const int s = it % STAGES, phase = (it / STAGES) & 1;
                mbar_wait(sm.full[s], phase);
                #pragma unroll
                for (int i = 0; i < MW; i++) {
                    if (kb == w.kb0) warpgroup::mm_ABt(acc[i], sm.a[s][rb0 + i], sm.b[s]);
                    else             warpgroup::mma_ABt(acc[i], sm.a[s][rb0 + i], sm.b[s]);
                }
                warpgroup::mma_async_wait<MW>();           // the previous k block's groups have retired
                if (kb > w.kb0 && laneid() == 0) release_stage(sm.empty[prev_s]);
                prev_s = s;
            }
            // all of this unit's wgmma are issued: the other consumer may issue its unit's (if there is one)
            if (PINGPONG && u + unit_step() < num_units) named_arrive(ORDER_BAR + (cid ^ 1), 256);
            warpgroup::mma_async_wait<0>();
            if (w.kb0 < w.kb1 && laneid() == 0) release_stage(sm.empty[prev_s]);
            if (w.kb0 == w.kb1) {                                   // an empty K slice contributes zeros
                #pragma unroll
                for (int i = 0; i < MW; i++)
                    #pragma unroll
                    for (int j = 0; j < BN / 16; j++)
                        #pragma unroll
                        for (int q = 0; q < 4; q++) acc[i].tiles[0][j].data[q] = make_float2(0.f, 0.f);
            }

            if (csplit) {
                // ---- cluster split-K epilogue (see "Cluster split-K" above)
                constexpr int TR = SWAP ? BN : BM, TC = SWAP ? BM : BN;   // the C tile: TR rows x TC columns
                const int lane = laneid();
                if (nth > 0) wait_cluster_acquire(sm.freed, (nth - 1) & 1);   // partners done with my last one
                for_each_pair(acc, rb0, [&](int r, int c, float2 v) {     // D[r][c], D[r][c + 1] (tile-local)
                    if constexpr (SWAP) { sm.red[c * TC + r] = v.x; sm.red[(c + 1) * TC + r] = v.y; }
                    else *reinterpret_cast<float2*>(&sm.red[r * TC + c]) = v;
                });
                __syncwarp();
                if (lane == 0) {
                    asm volatile("fence.acq_rel.cluster;\n" ::: "memory");
                    for (int p = 0; p < splits; p++) arrive_cluster_release(sm.ready, p);
                }
                wait_cluster_acquire(sm.ready, nth & 1);                 // every partial of this tile is written
                const int rows = TR / splits, row0 = srank * rows;       // my rows of the C tile
                const int64_t c_rows = SWAP ? N : M, c_cols = SWAP ? M : N;
                const int64_t g_row0 = (int64_t)(SWAP ? w.n * BN : w.m * BM);   // the tile's origin in C
                const int64_t g_col0 = (int64_t)(SWAP ? w.m * BM : w.n * BN);
                for (int q = threadIdx.x; q < rows * TC / 4; q += CONSUMERS * 128) {
                    const int lr = row0 + q * 4 / TC, lc = q * 4 % TC;
                    const int64_t gr = g_row0 + lr, gc = g_col0 + lc;
                    float4 sum = load_cluster_f4(&sm.red[lr * TC + lc], 0);
                    for (int p = 1; p < splits; p++) {
                        const float4 v = load_cluster_f4(&sm.red[lr * TC + lc], p);
                        sum.x += v.x; sum.y += v.y; sum.z += v.z; sum.w += v.w;
                    }
                    if (gr < c_rows && gc < c_cols) store_bf16x4(Cptr + gr * ldc + gc, sum, c_cols - gc);
                }
                __syncwarp();
                if (lane == 0) for (int p = 0; p < splits; p++) arrive_cluster_release(sm.freed, p);
                continue;
            } else if constexpr (SWAP) {
                // ---- swap epilogue: D[r][c] (r < M: a column of C, c < N: a row of C) stored transposed from
                // registers; split: fp32 into ws[split][N][ldw] (C's orientation, ldw = M rounded up to 4)
                const bool split = splits > 1;
                const int64_t ldw = ((int64_t)M + 3) / 4 * 4;
                float* base = ws + (split ? (int64_t)w.split * N * ldw : 0);
                auto put = [&](int r, int c, float v) {
                    if (r < M && c < N) {
                        if (split) base[(int64_t)c * ldw + r] = v;
                        else       Cptr[(int64_t)c * ldc + r] = __float2bfloat16(v);
                    }
                };
                const int r0 = w.m * BM, c0 = w.n * BN;                 // the tile's origin in D
                for_each_pair(acc, rb0, [&](int r, int c, float2 v) {
                    put(r0 + r, c0 + c, v.x);
                    put(r0 + r, c0 + c + 1, v.y);
                });
                continue;
            } else if (SPLITK && splits > 1) {
                // ---- split epilogue: this consumer's fp32 partial, in its registers' order (float4 f of thread t
                // at f * 128 + t: coalesced, and every unit of the tile holds the same elements in the same
                // registers), into its rows' region of the workspace; the last of the `splits` units to arrive
                // sums the S partials in slice order into its accumulators and stores them as any unit does (the
                // epilogue below). See "Split-K" above.
                if (w.m * BM + rb0 * 64 >= M) continue;   // rows past M (CLUSTER: a whole phantom tile row)
                const int lt = threadIdx.x % 128;
                const int64_t rows = ((int64_t)w.m * n_tiles + w.n) * (BM / 64) + rb0;   // counter of my rows
                const unsigned long long guess = issuer ? read_count(counts + rows) : 0;   // see arrive_count
                float4* mine = reinterpret_cast<float4*>(ws) + (rows * splits + (int64_t)w.split * MW) * (16 * BN) + lt;
                #pragma unroll
                for (int f = 0; f < CH4; f++) __stcg(mine + f * 128, chunk(acc, f));
                __threadfence();                                        // my partial is visible before my arrival
                named_sync(1 + cid, 128);
                if (issuer) sm.last[cid] = arrive_count(counts + rows, stamp, splits, guess);
                named_sync(1 + cid, 128);
                if (!sm.last[cid]) continue;
                __threadfence();                                        // the others' partials, after their arrivals
                const float4* first = reinterpret_cast<const float4*>(ws) + rows * splits * (16 * BN) + lt;
                // acc = slice 0 + slice 1 + ... in this order; SUM_U slices' loads in flight at once (<= 32 float4s)
                auto part = [&](int s, int f) { return __ldcg(first + (int64_t)s * SLICE4 + f * 128); };
                #pragma unroll
                for (int f = 0; f < CH4; f++) add_chunk(acc, f, part(0, f), true);
                int s = 1;
                if constexpr (SUM_U > 1) {
                    for (; s + SUM_U <= splits; s += SUM_U) {
                        float4 t[SUM_U][CH4];
                        #pragma unroll
                        for (int u = 0; u < SUM_U; u++)
                            #pragma unroll
                            for (int f = 0; f < CH4; f++) t[u][f] = part(s + u, f);
                        #pragma unroll
                        for (int u = 0; u < SUM_U; u++)
                            #pragma unroll
                            for (int f = 0; f < CH4; f++) add_chunk(acc, f, t[u][f], false);
                    }
                }
                for (; s < splits; s++) {
                    #pragma unroll
                    for (int f = 0; f < CH4; f++) add_chunk(acc, f, part(s, f), false);
                }
            }

            // ---- epilogue (not SWAP: it stores from registers above): chunks of 64 x 64, bf16, through
            // double-buffered staging tiles and TMA stores; a BN off the 64 grid leaves BN % 64 columns, stored from
            // registers (a narrower box would need its own tensor map, swizzle and staging tile for a few KB)
            if constexpr (!SWAP) {
                #pragma unroll
                for (int i = 0; i < MW; i++) {
                    const int row0 = w.m * BM + (rb0 + i) * 64;
                    if (row0 >= M) break;                           // uniform over the warpgroup
                    #pragma unroll
                    for (int j = 0; j < BN / 64; j++) {
                        const int col0 = w.n * BN + j * 64;
                        if (col0 >= N) break;                       // uniform over the warpgroup
                        c_tile& buf = sm.c[cid][store_no & 1];
                        store_no++;
                        if (issuer) tma_store_wait_read<1>();       // the store that last read this buffer is done
                        named_sync(1 + cid, 128);
                        warpgroup::store(buf, *reinterpret_cast<const acc_chunk_t*>(&acc[i].tiles[0][4 * j]));
                        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
                        named_sync(1 + cid, 128);
                        if ((N & 7) == 0 || col0 + 64 <= N) {
                            if (issuer) tma_store_2d(&tm_c, &buf, col0, row0);
                        } else {
                            // TMA stores write whole 16-byte chunks: past an N that is not a multiple of 8 they would
                            // overwrite the padding up to the next 16 bytes. This edge chunk is stored element-wise.
                            const int lt = threadIdx.x % 128;
                            for (int e = lt; e < 64 * 64; e += 128) {
                                const int r = e / 64, c = e % 64;
                                if (row0 + r < M && col0 + c < N)
                                    Cptr[(int64_t)(row0 + r) * ldc + col0 + c] = buf[{r, c}];
                            }
                        }
                    }
                }
                if constexpr (BN % 64 != 0) {   // the last BN % 64 columns: bf16 pairs from registers
                    const int r0 = w.m * BM, c0 = w.n * BN;         // the tile's origin in C
                    for_each_pair<BN / 64 * 4>(acc, rb0, [&](int r, int c, float2 v) {
                        const int64_t gr = r0 + r, gc = c0 + c;     // gc even, ldc % 8 == 0: 4-byte aligned
                        if (gr >= M || gc >= N) return;
                        __nv_bfloat16* p = Cptr + gr * ldc + gc;
                        if (gc + 1 < N) *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v.x, v.y);
                        else            *p = __float2bfloat16(v.x);
                    });
                }
            }
        }
        if (issuer) tma_store_wait_all();
    }
    if (CLUSTER > 1 || csplit) cluster_sync();   // no CTA exits while a partner may still touch its shared memory
}

// Split-K reduction: C[m, n] = bf16(sum over s in order of ws[s][m][n]); 4 columns a thread.
__global__ void splitk_reduce_kernel(const float* __restrict__ ws, int splits, int64_t ldw,
                                     __nv_bfloat16* __restrict__ C, int64_t ldc, int M, int N) {
    pdl_launch_dependents();
    pdl_wait();
    const int64_t quads = (N + 3) / 4;
    const int64_t total = (int64_t)M * quads, slice = (int64_t)M * ldw;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / quads, n = (i - m * quads) * 4;
        const float* p = ws + m * ldw + n;
        float4 acc = *reinterpret_cast<const float4*>(p);
        for (int s = 1; s < splits; s++) {
            const float4 v = *reinterpret_cast<const float4*>(p + s * slice);
            acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
        }
        store_bf16x4(C + m * ldc + n, acc, N - n);
    }
}

// Repack: dst[r][c] = src[r][c] for c < cols, 8 bf16 (16 bytes) at a time (cols, lds, ldd multiples of 8 here).
__global__ void repack_kernel(const uint4* __restrict__ src, int64_t lds8, uint4* __restrict__ dst, int64_t ldd8,
                              int64_t rows, int64_t cols8) {
    const int64_t total = rows * cols8;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / cols8, c = i - r * cols8;
        dst[r * ldd8 + c] = src[r * lds8 + c];
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

// Cluster split-K's cluster sizes. Measured on the H200 (NOTES.md, run 12), forcing each size: 2 is the best
// (16x4096x4096 with swapped 128x16 tiles: S = 2 0.99x cuBLAS, 4 0.63x, 8 0.45x; 16x6144x4096 0.86 / 0.67 /
// 0.39x); 4 ties 2 where it wins at all (64x6144x4096, 64x64 tiles: 0.94x both). So pairs only; the kernel takes
// any size the launcher passes.
constexpr int CSPLITS[] = {2};
constexpr int NCSPLITS = (int)(sizeof(CSPLITS) / sizeof(CSPLITS[0]));
// ctas: resident at once (persistent); fit[i]: clusters of CSPLITS[i] CTAs resident at once (cluster split-K)
struct device_info { int sms, ctas; int fit[NCSPLITS]; bool ready; cudaMemPool_t pool; };
constexpr int MAX_DEVICES = 64;
static device_info g_devices[MAX_DEVICES];
static std::mutex g_devices_mutex;

// The launch attribute of a 1-D cluster of `size` CTAs (the occupancy query below and launch_attrs).
static cudaLaunchAttribute cluster_dim(int size) {
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = size;
    attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
    return attr;
}

static cudaError_t max_clusters(int size, int sms, int* out) {   // clusters of `size` CTAs resident at once
    cudaLaunchConfig_t cfg{};
    cudaLaunchAttribute attr = cluster_dim(size);
    cfg.gridDim = dim3(sms / size * size);
    cfg.blockDim = dim3(NUM_THREADS);
    cfg.dynamicSmemBytes = SMEM_BYTES;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    return cudaOccupancyMaxActiveClusters(out, gemm_kernel, &cfg);
}

static cudaError_t device_setup(int dev, int* sms, int* ctas, int fit[NCSPLITS], cudaMemPool_t* pool) {
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
        d.ctas = d.sms;
        if (CLUSTER > 1) {   // how many clusters fit at once: SMs pair up within a GPC, so it may be under sms / 2
            int clusters = 0;
            if ((e = max_clusters(CLUSTER, d.sms, &clusters)) != cudaSuccess) return e;
            if (clusters < 1) return cudaErrorLaunchOutOfResources;
            d.ctas = clusters * CLUSTER;
        }
        for (int i = 0; i < NCSPLITS; i++) {   // cluster split-K: 0 = that size never fits (not chosen)
            d.fit[i] = 0;
            if (CL_SPLIT && (e = max_clusters(CSPLITS[i], d.sms, &d.fit[i])) != cudaSuccess) return e;
        }
        d.pool = nullptr;
        if (SPLITK || REPACK) {   // the workspace pool: ours, so its release threshold touches nobody else's memory
            cudaMemPoolProps props{};
            props.allocType = cudaMemAllocationTypePinned;
            props.location.type = cudaMemLocationTypeDevice;
            props.location.id = dev;
            if ((e = cudaMemPoolCreate(&d.pool, &props)) != cudaSuccess) return e;
            uint64_t keep = UINT64_MAX;
            if ((e = cudaMemPoolSetAttribute(d.pool, cudaMemPoolAttrReleaseThreshold, &keep)) != cudaSuccess) return e;
        }
        d.ready = true;
    }
    *sms = d.sms;
    *ctas = d.ctas;
    for (int i = 0; i < NCSPLITS; i++) fit[i] = d.fit[i];
    *pool = d.pool;
    return cudaSuccess;
}

// How many K slices for `tiles` output tiles. Cost model, relative to one unsplit pass: (1 + extra) / eff, where
// eff = units / (waves x sms) is how busy the SMs are over the waves of units (units = tiles x slices), and
// extra = 4 M S / K is the fp32 partials' traffic (written and read back: 2 x 4 x M x N x S bytes) over the operand
// bytes (2 x N x K; decode shapes are bound by reading Bt). A split is taken only when it saves >= 3%; each slice
// keeps >= MIN_SLICE_KB K blocks; at most MAX_SPLITS. Many tiles (>= 2 waves) never split: the waves balance.
// Measured 2026-12-01 (H200): the first model (fewest slices reaching 90% busy) split 128x6144x4096 in 4 with
// 64x128 tiles, +50% traffic for the partials; this one keeps it whole.
constexpr int MIN_SLICE_KB = 4, MAX_SPLITS = 16;
static int choose_splits(int64_t tiles, int64_t k_blocks, int sms, int64_t M, int64_t K) {
    if (!SPLITK || tiles >= 2 * (int64_t)sms) return 1;
    auto eff = [&](int s) {
        const int64_t units = tiles * s, waves = (units + sms - 1) / sms;
        return (double)units / (double)(waves * sms);
    };
    int best = 1;
    double best_cost = 1.0 / eff(1);
    for (int s = 2; s <= MAX_SPLITS && k_blocks / s >= MIN_SLICE_KB; s++) {
        const double cost = (1.0 + 4.0 * (double)M * s / (double)K) / eff(s);
        if (cost < 0.97 * best_cost) { best_cost = cost; best = s; }
    }
    return best;
}

// Cluster split-K: how many CTAs (1 or one of CSPLITS) share each tile's K. Cost relative to one unsplit pass: 1 / eff,
// eff = busy SMs over the waves (tiles x S CTAs over waves x sms, waves = ceil(tiles / clusters resident)), times
// 1.02 per halving of K (S = 2^h slices: the DSMEM reduction); >= MIN_SLICE_KB K blocks a slice; >= 2 waves: no split.
static int choose_cluster_split(int64_t tiles, int64_t k_blocks, int sms, const int fit[NCSPLITS]) {
    if (!CL_SPLIT || tiles >= 2 * (int64_t)sms) return 1;
    auto cost = [&](int s, int slots, double extra) {
        const int64_t waves = (tiles + slots - 1) / slots;
        return extra * (double)(waves * sms) / (double)(tiles * s);
    };
    int best = 1;
    double best_cost = cost(1, sms, 1.0);
    for (int i = 0; i < NCSPLITS; i++) {
        const int s = CSPLITS[i];
        if (fit[i] < 1 || k_blocks / s < MIN_SLICE_KB) continue;
        const double c = cost(s, fit[i], 1.0 + 0.02 * __builtin_ctz(s));   // 1.02 per halving (s = 2^h)
        if (c < 0.97 * best_cost) { best_cost = c; best = s; }
    }
    return best;
}

// Workspace split-K: the stamp of a launch's counters (see arrive_count): a tag in the top 16 bits (as the high
// float of a partial pair: a NaN with a payload arithmetic never produces) and a launch number in the next 40 that
// no other launch of this process has (2^40 launches before one repeats), count bits zero.
static unsigned long long next_stamp() {
    static std::atomic<unsigned long long> n{1};
    return (0xffffull << 48) | ((n.fetch_add(1, std::memory_order_relaxed) & ((1ull << 40) - 1)) << 8);
}

// The launch attributes of the GEMM (a cluster of `cluster` CTAs when > 1) and of the split-K reduction (cluster 1):
// programmatic stream serialization when PDL is set (see PDL above). Returns how many of attr it filled.
static int launch_attrs(cudaLaunchAttribute (&attr)[2], int cluster) {
    int n = 0;
    if (cluster > 1) attr[n++] = cluster_dim(cluster);
    if (PDL) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n].val.programmaticStreamSerializationAllowed = 1;
        n++;
    }
    return n;
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

    // Swap: from here on A, Bt, M, N are the kernel's (C^T = Bt . A^T); C, ldc stay C's (see SWAP above)
    if constexpr (SWAP) {
        std::swap(A, Bt);
        std::swap(lda, ldb);
        std::swap(M, N);
    }
    const int64_t c_rows = SWAP ? N : M, c_cols = SWAP ? M : N;   // C's shape

    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    int sms = 0, ctas = 0, fit[NCSPLITS] = {};
    cudaMemPool_t pool = nullptr;
    e = device_setup(dev, &sms, &ctas, fit, &pool);
    if (e != cudaSuccess) return e;

    const int64_t n_tiles = (N + BN - 1) / BN;
    const int64_t tiles = ((M + BM - 1) / BM) * n_tiles;
    if (tiles > LIM) return cudaErrorInvalidValue;

    // Repack: operands with a row pitch off the 128-byte grid, when the product is compute-bound (>= 1 wave).
    void* packed[2] = {nullptr, nullptr};
    if (REPACK && tiles >= sms && K % 8 == 0) {
        const void** ops[2] = {&A, &Bt};
        int64_t* lds[2] = {&lda, &ldb};
        const int64_t rows[2] = {M, N};
        for (int i = 0; i < 2 && e == cudaSuccess; i++) {
            if ((*lds[i] * 2) % 128 == 0) continue;
            const int64_t ld = (K + 63) / 64 * 64;
            e = cudaMallocFromPoolAsync(&packed[i], (size_t)rows[i] * ld * 2, pool, st);
            if (e != cudaSuccess) break;
            const int64_t vecs = rows[i] * (K / 8);
            const int64_t blocks = std::min<int64_t>((vecs + 255) / 256, (int64_t)sms * 16);
            repack_kernel<<<(unsigned)blocks, 256, 0, st>>>(reinterpret_cast<const uint4*>(*ops[i]), *lds[i] / 8,
                                                           reinterpret_cast<uint4*>(packed[i]), ld / 8, rows[i], K / 8);
            e = cudaGetLastError();
            *ops[i] = packed[i];
            *lds[i] = ld;
        }
    }
    auto release = [&](cudaError_t err) {
        for (void* p : packed) {
            if (p) {
                const cudaError_t f = cudaFreeAsync(p, st);
                if (err == cudaSuccess) err = f;
            }
        }
        return (int)err;
    };
    if (e != cudaSuccess) return release(e);

    thread_local map_cache cache_a{}, cache_b{}, cache_c{};
    CUtensorMap ma, mb, mc;
    if ((e = make_map(cache_a, &ma, A, M, K, lda, BM)) != cudaSuccess) return release(e);
    if ((e = make_map(cache_b, &mb, Bt, N, K, ldb, BN / CLUSTER)) != cudaSuccess) return release(e);
    memset(&mc, 0, sizeof(mc));                                   // SWAP: stores from registers, no C map
    if (!SWAP && (e = make_map(cache_c, &mc, C, M, N, ldc, 64)) != cudaSuccess) return release(e);
    const int64_t units = (((M + BM - 1) / BM + CLUSTER - 1) / CLUSTER) * n_tiles;   // CLUSTER: tile pairs
    const int splits = CL_SPLIT ? choose_cluster_split(units, (K + BK - 1) / BK, ctas, fit)
                                : choose_splits(units * CLUSTER, (K + BK - 1) / BK, ctas, c_rows, K);
    float* ws = nullptr;
    unsigned long long* counts = nullptr;   // not SWAP: one counter per tile and m64 row block, after the partials
    unsigned long long stamp = 0;
    const int64_t ldw = (c_cols + 3) / 4 * 4;   // SWAP: the partials' row stride (C's orientation)
    if (SPLITK && splits > 1) {
        // SWAP: S partials of C; else S partials of every tile (in registers' order), then the counters
        const int64_t m_tiles = (M + BM - 1) / BM;
        const size_t part = SWAP ? (size_t)splits * c_rows * ldw * sizeof(float)
                                 : (size_t)splits * m_tiles * BM * n_tiles * BN * sizeof(float);
        const size_t nc = SWAP ? 0 : (size_t)m_tiles * n_tiles * (BM / 64);
        e = cudaMallocFromPoolAsync(reinterpret_cast<void**>(&ws), part + nc * 8, pool, st);
        if (e != cudaSuccess) return release(e);
        if (!SWAP) {
            counts = reinterpret_cast<unsigned long long*>(reinterpret_cast<char*>(ws) + part);
            stamp = next_stamp();
        }
    }
    // CTAs per cluster: CLUSTER (multicast pairs), or the cluster split's S; the grid is whole clusters
    const int csize = CL_SPLIT ? splits : CLUSTER;
    int slots = ctas / CLUSTER;
    for (int i = 0; i < NCSPLITS; i++)
        if (CL_SPLIT && splits == CSPLITS[i]) slots = fit[i];
    const int grid = (int)std::min<int64_t>(CL_SPLIT ? units : units * splits, slots) * csize;
    {   // one launch path: no attribute, a cluster dimension, programmatic serialization, or both
        cudaLaunchConfig_t cfg{};
        cudaLaunchAttribute attr[2]{};
        cfg.gridDim = dim3(grid);
        cfg.blockDim = dim3(NUM_THREADS);
        cfg.dynamicSmemBytes = SMEM_BYTES;
        cfg.stream = st;
        cfg.attrs = attr;
        cfg.numAttrs = launch_attrs(attr, csize);
        e = cudaLaunchKernelEx(&cfg, gemm_kernel, ma, mb, mc, reinterpret_cast<__nv_bfloat16*>(C), ldc, ws, counts,
                               stamp, splits,
                               (int)M, (int)N, (int)K);
        if (e == cudaSuccess) e = cudaGetLastError();
    }
    if (SPLITK && splits > 1) {
        if (SWAP && e == cudaSuccess) {   // swapped: the partials are summed by a second kernel
            const int64_t quads = c_rows * ((c_cols + 3) / 4);
            const int threads = 256;
            const int64_t blocks = std::min<int64_t>((quads + threads - 1) / threads, (int64_t)sms * 8);
            cudaLaunchConfig_t cfg{};
            cudaLaunchAttribute attr[2]{};
            cfg.gridDim = dim3((unsigned)blocks);
            cfg.blockDim = dim3(threads);
            cfg.stream = st;
            cfg.attrs = attr;
            cfg.numAttrs = launch_attrs(attr, 1);
            e = cudaLaunchKernelEx(&cfg, splitk_reduce_kernel, (const float*)ws, splits, ldw,
                                   reinterpret_cast<__nv_bfloat16*>(C), ldc, (int)c_rows, (int)c_cols);
            if (e == cudaSuccess) e = cudaGetLastError();
        }
        const cudaError_t f = cudaFreeAsync(ws, st);
        if (e == cudaSuccess) e = f;
    }
    return release(e);
}

extern "C" const char* hkjit_gemm_bf16_error(int code) {
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
