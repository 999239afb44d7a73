// gemm_gfx950_plan.h - the software pipeline of kernels/gemm_gfx950.hip, as data.
//
// The kernel executes these tables step by step (compile-time unrolled: see run_steps() in gemm_gfx950.hip), and
// src/hkjit/schedule.py parses this very file (the `constexpr int` definitions and the step tables) to simulate
// the schedule for 1..64 K tiles. tests/test_gfx950_kernel.py then checks the compiled assembly against it.
// Keep the format simple: every `constexpr int NAME = EXPR;` uses only integers, names defined above it,
// + - * / % ( ); every step is one `{Op::Kind, EXPR, EXPR},` line.
//
// Pipeline (one 256x256 output block per workgroup of 8 waves, K consumed in tiles of BLOCK_K):
//   * kStages LDS stages; tile t lives in stage t % kStages (stage_of).
//   * Prologue issues tiles 0 .. kPrefetch-1.  Iteration t waits for tile t, barriers, issues tile t+kPrefetch
//     into the stage that held tile t-1 (every wave finished reading it before this barrier), then reads tile t
//     from LDS and runs the MFMAs.  Tiles >= num_tiles are still "issued" with every lane out of range: the
//     buffer unit returns zeros without touching memory, and the per-wave count of load instructions in flight
//     is then the same in every iteration, so one wait count is right for every K (no tail special case).
//   * Wait counts are derived from the number of buffer_load ... lds instructions a tile costs per thread.
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
constexpr int kGroups = 1;
constexpr int kStagger = 0;
// ---- load-instruction accounting (what s_waitcnt vmcnt counts) ----
constexpr int kBytesPerLoad = 16;
constexpr int kLoadsPerA = kBlockM * kBlockK * kElemBytes / (kBytesPerLoad * kThreads);
constexpr int kLoadsPerB = kBlockN * kBlockK * kElemBytes / (kBytesPerLoad * kThreads);
constexpr int kLoadsPerTile = kLoadsPerA + kLoadsPerB;
constexpr int kHalves = 2;  // A and B each in two 128-row halves; a load step issues one half
constexpr int kLoadsPerHalfA = kLoadsPerA / kHalves;
constexpr int kLoadsPerHalfB = kLoadsPerB / kHalves;
// At the top of iteration t this wave has issued tiles 0 .. t+kPrefetch-1; tile t is complete once at most the
// loads of tiles t+1 .. t+kPrefetch-1 are still in flight.
constexpr int kVmcntSteady = (kPrefetch - 1) * kLoadsPerTile;
constexpr int kVmcntDrain = 0;
// ---- LDS reads (what s_waitcnt lgkmcnt counts): ds_read_b128 per lane per register fragment ----
constexpr int kBytesPerRead = 16;
constexpr int kReadsPerA = (kBlockM / kWavesM / 2) * kBlockK * kElemBytes / (kBytesPerRead * kWaveSize);
constexpr int kReadsPerB = (kBlockN / kWavesN / 2) * kBlockK * kElemBytes / (kBytesPerRead * kWaveSize);
// After issuing the reads B0 B1 A0 A1 in that order, A1's reads may stay in flight for the first two MFMA groups.
constexpr int kLgkmAllButA1 = kReadsPerA;
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

// Before the loop (t = 0).
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
};
// One K tile t (the main loop body).
constexpr Step kIter[] = {
    {Op::WaitVm, kVmcntSteady, 0},
    {Op::Barrier, 0, 0},
    {Op::LoadA, kPrefetch, 0},
    {Op::LoadA, kPrefetch, 1},
    {Op::LoadB, kPrefetch, 0},
    {Op::LoadB, kPrefetch, 1},
    {Op::ReadB, 0, 0},
    {Op::ReadB, 1, 0},
    {Op::ReadA, 0, 0},
    {Op::ReadA, 1, 0},
    {Op::WaitLgkm, kLgkmAllButA1, 0},
    {Op::Mma, 0, 0},
    {Op::Mma, 0, 1},
    {Op::WaitLgkm, kLgkmAll, 0},
    {Op::Mma, 1, 0},
    {Op::Mma, 1, 1},
};
// After the loop: retire the out-of-range loads still in flight before the wave ends.
constexpr Step kEpilogue[] = {
    {Op::WaitVm, kVmcntDrain, 0},
};

constexpr int stage_of(int t) { return t % kStages; }

static_assert(kLoadsPerA * kBytesPerLoad * kThreads == kBlockM * kBlockK * kElemBytes, "A tile splits evenly");
static_assert(kLoadsPerB * kBytesPerLoad * kThreads == kBlockN * kBlockK * kElemBytes, "B tile splits evenly");
static_assert(kVmcntSteady <= 63, "gfx950 vmcnt is 6 bits");
static_assert(kLgkmAllButA1 <= 15, "gfx950 lgkmcnt is 4 bits");
static_assert(kLdsBytes <= 160 * 1024, "gfx950 has 160 KiB of LDS per CU");
static_assert(sizeof(kPrologue) / sizeof(Step) == 2 * kHalves * kPrefetch, "prologue issues tiles 0 .. kPrefetch-1");
static_assert(kLoadsPerHalfA * kHalves == kLoadsPerA && kLoadsPerHalfB * kHalves == kLoadsPerB, "halves split evenly");

}  // namespace hkjit_gfx950_plan
