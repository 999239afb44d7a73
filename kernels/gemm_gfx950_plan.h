// gemm_gfx950_plan.h - the software pipeline of kernels/gemm_gfx950.hip, as data.
//
// The kernel executes these tables step by step (compile-time unrolled: see run_steps() in gemm_gfx950.hip), and
// src/hkjit/gfx950/schedule.py parses this very file (the `constexpr int` definitions and the step tables) to
// model the schedule for 1..64 K tiles, one trace per wave group. tests/test_gfx950_kernel.py then checks the
// compiled assembly against it.
// Keep the format simple: every `constexpr int NAME = EXPR;` uses only integers, names defined above it,
// + - * / % ( ); every step is one `{Op::Kind, EXPR, EXPR},` line.
//
// Pipeline (one 256x256 output block per workgroup of 8 waves, K consumed in tiles of BLOCK_K):
//   * kStages LDS stages; tile t lives in stage t % kStages (stage_of); A and B of a stage each in two 128-row
//     halves, one DMA per thread per half.  Prologue issues tiles 0 .. kPrefetch-1; iteration t issues tile
//     t+kPrefetch into the stage that held tile t-1.  Tiles >= num_tiles are still "issued" with an empty buffer
//     range (zeros, no memory touched), so the per-wave count of DMAs in flight is the same in every iteration
//     and one wait count is right for every K (no tail special case).
//   * Ping-pong: the waves of wave row g form group g (kGroups); group 1 runs kStagger barriers behind group 0
//     (one extra s_barrier at entry; group 0 takes its one at exit).  An iteration is four barrier-separated
//     clusters: memory (LDS reads of B and A half 0), compute (16 MFMAs at raised priority), memory (A half 1,
//     the prefetch DMAs, the vmcnt wait for tile t+1), compute (16 MFMAs).  With the stagger, each SIMD's
//     wave of one group runs its MFMA cluster while its partner of the other group issues loads and reads.
//   * Cross-group rules (what src/hkjit/gfx950/schedule.py checks): a group reads tile t+1 two barriers after
//     the other group's vmcnt wait for it (that wait is in the second memory cluster of iteration t, the read
//     in the first of iteration t+1); a stage is reloaded two barriers after the last wait retiring the
//     other group's reads of it (tile t-1's A half 1 is retired at the end of iteration t-1's third cluster,
//     the reload is in iteration t's third).
//   * Between a barrier and the MFMAs it releases there is only s_setprio where the reads are already back:
//     the second memory cluster waits for its A half 1 reads before its barrier (the first one keeps its wait
//     after the barrier, where it overlaps the other group's LDS traffic when LDS bandwidth is the limit).
#pragma once

namespace hkjit_gfx950_plan {

// ---- geometry ----
constexpr int kBlockM = 256;
constexpr int kBlockN = 256;
constexpr int kBlockK = 32;
constexpr int kWavesM = 2;
constexpr int kWavesN = 4;
constexpr int kWaves = kWavesM * kWavesN;
constexpr int kWaveSize = 64;
constexpr int kThreads = kWaves * kWaveSize;
constexpr int kElemBytes = 2;
// ---- pipeline ----
constexpr int kStages = 4;
constexpr int kPrefetch = kStages - 1;
// ---- wave groups: the waves of wave row g form group g; group g runs g * kStagger barriers behind group 0 ----
constexpr int kGroups = kWavesM;
constexpr int kStagger = 1;
// ---- load-instruction accounting (what s_waitcnt vmcnt counts) ----
constexpr int kBytesPerLoad = 16;
constexpr int kLoadsPerA = kBlockM * kBlockK * kElemBytes / (kBytesPerLoad * kThreads);
constexpr int kLoadsPerB = kBlockN * kBlockK * kElemBytes / (kBytesPerLoad * kThreads);
constexpr int kLoadsPerTile = kLoadsPerA + kLoadsPerB;
constexpr int kHalves = 2;  // A and B each in two 128-row halves; a load step issues one half
constexpr int kLoadsPerHalfA = kLoadsPerA / kHalves;
constexpr int kLoadsPerHalfB = kLoadsPerB / kHalves;
// Once iteration t has issued tile t+kPrefetch, tile t+1 is complete when at most the loads of tiles
// t+2 .. t+kPrefetch are still in flight (and, in the prologue, tile 0 when at most tiles 1 .. kPrefetch-1 are).
constexpr int kVmcntSteady = (kPrefetch - 1) * kLoadsPerTile;
constexpr int kVmcntDrain = 0;
// ---- LDS reads (what s_waitcnt lgkmcnt counts): ds_read_b128 per lane per register fragment ----
constexpr int kBytesPerRead = 16;
constexpr int kReadsPerA = (kBlockM / kWavesM / 2) * kBlockK * kElemBytes / (kBytesPerRead * kWaveSize);
constexpr int kReadsPerB = (kBlockN / kWavesN / 2) * kBlockK * kElemBytes / (kBytesPerRead * kWaveSize);
constexpr int kLgkmAll = 0;
// ---- LDS footprint ----
constexpr int kStageBytes = (kBlockM + kBlockN) * kBlockK * kElemBytes;
constexpr int kLdsBytes = kStages * kStageBytes;

enum class Op : int {
    WaitVm = 0,    // s_waitcnt vmcnt(a)                      a: instructions left in flight
    WaitLgkm = 1,  // s_waitcnt lgkmcnt(a)
    Barrier = 2,   // s_barrier
    LoadA = 3,     // issue half b (rows b*128 ..+128) of A of tile t+a into stage_of(t+a) (kLoadsPerHalfA per thread)
    LoadB = 4,     // issue half b of B of tile t+a into stage_of(t+a)  (kLoadsPerHalfB buffer_load ... lds per thread)
    ReadA = 5,     // ds_read this wave's A fragment, half a (rows a*128 + wave_row*64 ..+64) of tile t+b
    ReadB = 6,     // ds_read this wave's B fragment, half a (cols a*128 + wave_col*32 ..+32) of tile t+b
    Mma = 7,       // C[a][b] += A[a] * B[b]^T
    SetPrio = 8,   // s_setprio a (wave priority for instruction issue: raised around an MFMA cluster)
};
struct Step { Op op; int a; int b; };

// Before the loop (t = 0), then (group g) g * kStagger barriers.
constexpr Step kPrologue[] = {
    {Op::LoadA, 0, 0},
    {Op::LoadA, 0, 1},
    {Op::LoadB, 0, 0},
    {Op::LoadB, 0, 1},
    {Op::LoadA, 1, 0},
    {Op::LoadA, 1, 1},
    {Op::LoadB, 1, 0},
    {Op::LoadB, 1, 1},
    {Op::LoadA, 2, 0},
    {Op::LoadA, 2, 1},
    {Op::LoadB, 2, 0},
    {Op::LoadB, 2, 1},
    {Op::WaitVm, kVmcntSteady, 0},
    {Op::Barrier, 0, 0},
};
// One K tile t (the main loop body): four clusters, each ended by a barrier.
constexpr Step kIter[] = {
    // memory: this tile's B fragments and A half 0
    {Op::ReadB, 0, 0},
    {Op::ReadB, 1, 0},
    {Op::ReadA, 0, 0},
    {Op::Barrier, 0, 0},
    // compute: A half 0 x both B halves
    {Op::WaitLgkm, kLgkmAll, 0},
    {Op::SetPrio, 1, 0},
    {Op::Mma, 0, 0},
    {Op::Mma, 0, 1},
    {Op::SetPrio, 0, 0},
    {Op::Barrier, 0, 0},
    // memory: A half 1, the prefetch of tile t+kPrefetch, then retire tile t+1
    {Op::ReadA, 1, 0},
    {Op::LoadA, kPrefetch, 0},
    {Op::LoadA, kPrefetch, 1},
    {Op::LoadB, kPrefetch, 0},
    {Op::LoadB, kPrefetch, 1},
    {Op::WaitLgkm, kLgkmAll, 0},  // A half 1 is back before the barrier: the MFMAs start right after it
    {Op::WaitVm, kVmcntSteady, 0},
    {Op::Barrier, 0, 0},
    // compute: A half 1 x both B halves
    {Op::SetPrio, 1, 0},
    {Op::Mma, 1, 0},
    {Op::Mma, 1, 1},
    {Op::SetPrio, 0, 0},
    {Op::Barrier, 0, 0},
};
// After the loop and (group g) (kGroups - 1 - g) * kStagger barriers: retire the out-of-range loads still in
// flight before the wave ends.
constexpr Step kEpilogue[] = {
    {Op::WaitVm, kVmcntDrain, 0},
};

constexpr int stage_of(int t) { return t % kStages; }

static_assert(kLoadsPerA * kBytesPerLoad * kThreads == kBlockM * kBlockK * kElemBytes, "A tile splits evenly");
static_assert(kLoadsPerB * kBytesPerLoad * kThreads == kBlockN * kBlockK * kElemBytes, "B tile splits evenly");
static_assert(kVmcntSteady <= 63, "gfx950 vmcnt is 6 bits");
static_assert(kLdsBytes <= 160 * 1024, "gfx950 has 160 KiB of LDS per CU");
static_assert(kGroups == kWavesM, "the kernel's wave groups are its wave rows (one wave of each per SIMD)");
static_assert(kLoadsPerHalfA * kHalves == kLoadsPerA && kLoadsPerHalfB * kHalves == kLoadsPerB, "halves split evenly");

}  // namespace hkjit_gfx950_plan
