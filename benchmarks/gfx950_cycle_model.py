"""A cycle model of one gfx950 CU replaying the compiled GEMM main loop: ours against upstream HipKittens.

THIS IS A MODEL, NOT A MEASUREMENT. It predicts how our kernel's main loop compares with upstream HipKittens'
bf16 GEMM (kernels/gemm/bf16fp32/mi350x/256_256_64_32_with16x32.cpp, the kernel behind the published 1610
TFLOP/s at 8192^3 on an MI355X) when no MI355X is at hand. Its absolute numbers are calibrated on that one
published figure; the ratio ours/upstream is what it is for, and only as far as its assumptions hold.

What it does
  1. Compiles both kernels device-only with clang-22 (src/hkjit/gfx950/hipcheck.py's command line; upstream
     needs two shims, written to a temporary folder: `pyutils/pyutils.cuh` replaced by a stand-in for its
     pybind11 binding macros, which are host code, and the ockl work-item queries HIP's threadIdx / blockIdx /
     gridDim / blockDim call under -nogpulib defined inline, as the device library does; without the second,
     clang saves the register file around opaque calls and the loop fills with scratch spills, 147 VGPRs,
     whose vmcnt waits are not the kernel's). `--ours` also takes a ready .s file.
  2. Extracts the innermost loop (hipcheck.main_loop) and replays it on one CU: 4 SIMDs, 8 waves of one
     workgroup, wave w on SIMD w % 4 (2 waves per SIMD), every wave running the same instruction stream.
  3. Turns cycles per K into TFLOP/s for M = N = K in {4096, 8192, 16384}, scales by one efficiency factor per
     variant so that upstream at 8192^3 is 1610 TFLOP/s, and prints ours, upstream and their ratio, with
     upstream's published figures at 4096 / 16384 as a check of the model's error on shapes it was not fitted to.

The CU model (per instruction; t in cycles of the 2.4 GHz engine clock)
  * Issue: SIMD s gets an issue slot every 4 cycles (t % 4 == s). In one slot each of its two waves may issue
    one instruction, in program order, if the ports differ: VALU port (VALU and MFMA), SALU, VMEM, LDS;
    s_waitcnt / s_barrier / s_setprio / s_nop / branches take the wave's slot but no port. A wave issues at
    most once per slot (every 4 cycles): wave64 on a 16-lane SIMD takes 4 cycles per VALU op.
  * MFMA: the SIMD's matrix pipe is a separate resource, busy 2*m*n*k / 1024 cycles (16 for
    v_mfma_f32_16x16x32_bf16: 1024 bf16 FLOP per clock per SIMD is the 2.5 PFLOP/s dense peak of 256 CUs x
    4 SIMDs at 2.4 GHz). An MFMA issues when the pipe is free; the other wave's VALU / memory instructions
    issue meanwhile. Accumulator dependencies between MFMAs are not modelled (the kernels interleave 8-16
    independent accumulators).
  * ds_read: one LDS port per CU, `lds_bw` bytes per clock (128 or 256: the variants), shared by the 8 waves
    in issue order; data is back `lds_latency` cycles after its transfer ends. lgkmcnt counts them in order.
  * buffer_load ... lds (global -> LDS DMA): one memory port per CU of `global_bw` bytes per clock, then
    `global_latency` cycles (1000 or 2000: the variants); vmcnt counts them in order. Its write into LDS takes
    LDS port time too (charged at issue: the totals per iteration are right, their timing is not).
    global_bw = min(an L2 -> CU share of 64 B/clk, the CU's share of HBM, 8 TB/s / 256 CUs / 2.4 GHz = 13 B/clk,
    divided by the fraction of requests that miss L2 over one wave of 256 concurrent tiles, 8 block-rows per
    group as both kernels order their blocks). For these shapes it is 64 B/clk: bandwidth does not bind.
  * s_waitcnt vmcnt(n) / lgkmcnt(n): the wave waits until at most n of its own are outstanding.
    s_barrier: the wave waits until all 8 waves have arrived at the same barrier (counted per wave since the
    start), then `barrier_cost` more cycles (16 or 64: the variants). s_setprio: of two waves ready in a slot,
    the higher priority issues first (ties: the one that issued least recently).
  * Upstream staggers its waves before the loop (`if (warp_row == 1) s_barrier()`, a barrier behind a
    conditional branch): such barriers found before the loop put waves 4..7 (one per SIMD) that many barriers
    ahead, which is what makes its ping-pong schedule work. `--stagger` overrides the detection.
  * Steady state: the loop is replayed for about `warm_k` of K, then measured over `measure_k` more (several
    trips of upstream's 9-times-unrolled loop, K = 1152 per trip; ours is K = 32 per trip).

Per tile and per GPU
  tile cycles = K / k_per_cycle-of-the-loop + pipeline fill (one global latency) + epilogue (the C stores
  after the loop: 4 cycles per store instruction per wave, 2 waves per SIMD, or the C bytes at global_bw,
  whichever is longer). K outside the loop (upstream peels 2 K tiles) is counted at the loop's rate.
  One workgroup per CU (both kernels: 8 waves, >= 192 VGPRs, most of the LDS); tiles = ceil(M/256) *
  ceil(N/256), run in ceil(tiles / 256) rounds over 256 CUs; TFLOP/s = 2 M N K / (rounds * tile cycles /
  2.4 GHz) * efficiency, with the efficiency fitted per variant on upstream at 8192^3.

Sources for the machine figures: MI355X 256 CUs (8 XCDs x 32 CUs, AMD at ISSCC 2026, e.g.
news.lavx.hu/article/isscc-2026-amd-s-mi355x-...), 2.4 GHz peak engine clock (AMD at Hot Chips 2025,
wccftech.com's report), 8 TB/s HBM3E (AMD's MI355X specifications, e.g. boston-uk blog 2025-08-14), 160 KiB
LDS per CU (upstream's mi350x README). The LDS bandwidth, the latencies, the barrier cost and the L2 share are
assumptions, hence the variants. Published timings: HipKittens analysis/bf16_gemm/mi350x/mi355x_bf16_gemm.json.

Usage
  python benchmarks/gfx950_cycle_model.py [--ours kernels/gemm_gfx950.hip | X.s] [--hipkittens-root DIR]
                                          [--upstream X.s] [--json] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hkjit.gfx950 import hipcheck  # noqa: E402

UPSTREAM_KERNEL = Path("kernels/gemm/bf16fp32/mi350x/256_256_64_32_with16x32.cpp")
PUBLISHED = Path("analysis/bf16_gemm/mi350x/mi355x_bf16_gemm.json")
CALIBRATION_SIZE = 8192
SIZES = (4096, 8192, 16384)

# ---- machine (MI355X) ----
CUS = 256
CLOCK_HZ = 2.4e9
SIMDS = 4
WAVES = 8
ISSUE_INTERVAL = 4
MFMA_FLOP_PER_CLK_PER_SIMD = 1024  # bf16 dense
HBM_BYTES_PER_S = 8e12
L2_TO_CU_BYTES_PER_CLK = 64.0
TILE = 256  # both kernels: 256 x 256 output block per workgroup
GROUP_M = 8  # both kernels order blocks in groups of 8 block-rows
LANES = 64


@dataclasses.dataclass(frozen=True)
class Variant:
    lds_bw: float  # bytes per clock per CU
    barrier_cost: int  # cycles after the last arrival
    global_latency: int  # cycles
    lds_latency: int = 64
    global_bw: float = L2_TO_CU_BYTES_PER_CLK

    @property
    def name(self) -> str:
        return f"lds{self.lds_bw:g} bar{self.barrier_cost} lat{self.global_latency}"


def default_variants() -> list[Variant]:
    return [Variant(l, b, g) for l, b, g in itertools.product((256, 128), (16, 64), (1000, 2000))]


# ---------------------------------------------------------------------------------------------------------------
# Decoding the loop
# ---------------------------------------------------------------------------------------------------------------
# op codes of the decoded stream: (code, port, arg0, arg1)
MFMA, VALU, SALU, NOP, LDS_READ, LDS_WRITE, DMA, VMEM_LOAD, STORE, WAIT, BARRIER, SETPRIO, OTHER = range(13)
P_NONE, P_VALU, P_SALU, P_VMEM, P_LDS = range(5)
_DS_BYTES = {"b128": 16, "b96": 12, "b64": 8, "b32": 4, "u16": 2, "i16": 2, "u8": 1, "i8": 1, "b16": 2, "b8": 1}
_BUF_BYTES = {"dwordx4": 16, "dwordx3": 12, "dwordx2": 8, "dword": 4, "short": 2, "ushort": 2, "ubyte": 1,
              "sbyte": 1, "byte": 1, "sshort": 2, "b128": 16, "b96": 12, "b64": 8, "b32": 4, "b16": 2, "b8": 1}


def _width(op: str, table: dict) -> int:
    for k in sorted(table, key=len, reverse=True):
        if op.endswith("_" + k) or op.endswith(k):
            return table[k]
    return 4


def decode(instructions: Sequence[str]) -> list[tuple]:
    """The loop as (code, port, a, b) tuples; labels dropped. Unknown instructions count as VALU (v_*) or SALU."""
    out = []
    for ins in instructions:
        if ins.endswith(":"):
            continue
        op = ins.split(None, 1)[0]
        m = re.match(r"v_mfma_\w*?_(\d+)x(\d+)x(\d+)", op)
        if m:
            mm, nn, kk = (int(x) for x in m.groups())
            out.append((MFMA, P_VALU, max(ISSUE_INTERVAL, 2 * mm * nn * kk // MFMA_FLOP_PER_CLK_PER_SIMD), 0))
        elif op.startswith("ds_read") or op.startswith("ds_load"):
            out.append((LDS_READ, P_LDS, _width(op, _DS_BYTES) * LANES, 0))
        elif op.startswith("ds_write") or op.startswith("ds_store"):
            out.append((LDS_WRITE, P_LDS, _width(op, _DS_BYTES) * LANES, 0))
        elif re.match(r"(buffer|global)_load", op):
            code = DMA if re.search(r"\blds\b", ins) else VMEM_LOAD
            out.append((code, P_VMEM, _width(op, _BUF_BYTES) * LANES, 0))
        elif re.match(r"(buffer|global)_store", op):
            out.append((STORE, P_VMEM, _width(op, _BUF_BYTES) * LANES, 0))
        elif op == "s_waitcnt":
            vm = re.search(r"vmcnt\((\d+)\)", ins)
            lg = re.search(r"lgkmcnt\((\d+)\)", ins)
            out.append((WAIT, P_NONE, int(vm.group(1)) if vm else -1, int(lg.group(1)) if lg else -1))
        elif op == "s_waitcnt_vmcnt":
            out.append((WAIT, P_NONE, int(ins.split()[-1], 0), -1))
        elif op == "s_waitcnt_lgkmcnt":
            out.append((WAIT, P_NONE, -1, int(ins.split()[-1], 0)))
        elif op == "s_barrier":
            out.append((BARRIER, P_NONE, 0, 0))
        elif op == "s_setprio":
            out.append((SETPRIO, P_NONE, int(ins.split()[-1], 0), 0))
        elif op == "s_nop":
            out.append((NOP, P_NONE, int(ins.split()[-1], 0) + 1, 0))
        elif op.startswith("s_cbranch") or op.startswith("s_branch") or op.startswith("s_sched"):
            out.append((OTHER, P_NONE, 0, 0))
        elif op.startswith("v_"):
            out.append((VALU, P_VALU, 0, 0))
        else:
            out.append((SALU, P_SALU, 0, 0))
    return out


def mfma_flops(stream: Sequence[tuple]) -> int:
    return sum(c[2] * MFMA_FLOP_PER_CLK_PER_SIMD for c in stream if c[0] == MFMA)


# ---------------------------------------------------------------------------------------------------------------
# The one-CU simulation
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LoopResult:
    cycles_per_trip: float
    k_per_trip: float
    matrix_busy: float  # fraction of the measured cycles the matrix pipes were busy (mean over SIMDs)

    @property
    def cycles_per_k32(self) -> float:
        return self.cycles_per_trip / self.k_per_trip * 32


class _Wave:
    __slots__ = ("id", "simd", "pc", "ready", "prio", "vm", "lgkm", "bar", "wait_gen", "last_issue", "trips",
                 "trip_end")

    def __init__(self, wid: int, bar0: int, vm0: list):
        self.id, self.simd, self.pc, self.ready, self.prio = wid, wid % SIMDS, 0, 0, 0
        self.vm, self.lgkm = list(vm0), []  # completion times, in order (non-decreasing)
        self.bar, self.wait_gen, self.last_issue, self.trips, self.trip_end = bar0, None, -1, 0, []


def simulate(stream: Sequence[tuple], v: Variant, trips: int, warm: int, stagger: int = 0,
             prologue_dma: int = 0) -> LoopResult:
    """Replay `stream` (one loop trip) `trips` times on every wave; measure the trips after the first `warm`."""
    if not stream:
        raise ValueError("empty loop body")
    flop = mfma_flops(stream)
    if flop == 0:
        raise ValueError("the loop has no MFMA: nothing to model")
    k_per_trip = flop * WAVES / (2 * TILE * TILE)
    n = len(stream)
    INF = math.inf
    # in-flight prologue loads (issued at t=0, spaced by the memory port)
    vm0, free = [], 0.0
    for _ in range(prologue_dma):
        free += 1024 / v.global_bw
        vm0.append(free + v.global_latency)
    waves = [_Wave(w, stagger if w >= WAVES // 2 else 0, vm0) for w in range(WAVES)]
    arrivals: dict[int, int] = {}
    release: dict[int, float] = {}
    for g in range(stagger):
        arrivals[g] = WAVES // 2  # the staggered waves passed these before the loop
    mfma_free = [0.0] * SIMDS
    mfma_busy = [0.0] * SIMDS
    busy_mark: Optional[float] = None
    lds_free = 0.0
    mem_free = 0.0
    by_simd = [[w for w in waves if w.simd == s] for s in range(SIMDS)]

    def earliest(w: _Wave) -> float:
        """Lower bound on when w can issue its next instruction (INF: waits for a barrier not yet complete)."""
        e = w.ready  # a wave done with its trips keeps replaying until all are (the CU stays in steady state)
        if w.wait_gen is not None:
            r = release.get(w.wait_gen)
            if r is None:
                return INF
            e = max(e, r)
        code, _, a, b = stream[w.pc]
        if code == WAIT:
            if a >= 0 and len(w.vm) > a:
                e = max(e, w.vm[len(w.vm) - a - 1])
            if b >= 0 and len(w.lgkm) > b:
                e = max(e, w.lgkm[len(w.lgkm) - b - 1])
        elif code == MFMA:
            e = max(e, mfma_free[w.simd])
        return e

    t = 0
    while True:
        s = t % SIMDS
        ready = []
        for w in by_simd[s]:
            if earliest(w) <= t:
                ready.append(w)
        ready.sort(key=lambda w: (-w.prio, w.last_issue))
        used = set()
        for w in ready:
            code, port, a, b = stream[w.pc]
            if port != P_NONE and port in used:
                continue
            if code == MFMA and mfma_free[s] > t:
                continue
            used.add(port)
            w.wait_gen = None
            w.ready = t + ISSUE_INTERVAL
            w.last_issue = t
            # retire completed memory operations
            if w.vm and w.vm[0] <= t:
                w.vm = [x for x in w.vm if x > t]
            if w.lgkm and w.lgkm[0] <= t:
                w.lgkm = [x for x in w.lgkm if x > t]
            if code == MFMA:
                mfma_free[s] = t + a
                if busy_mark is not None:
                    mfma_busy[s] += a
            elif code == LDS_READ or code == LDS_WRITE:
                start = max(t, lds_free)
                lds_free = start + a / v.lds_bw
                done = lds_free + v.lds_latency
                if w.lgkm:
                    done = max(done, w.lgkm[-1])
                w.lgkm.append(done)
            elif code in (DMA, VMEM_LOAD, STORE):
                start = max(t, mem_free)
                mem_free = start + a / v.global_bw
                done = mem_free + v.global_latency
                if code == DMA:
                    lds_free = max(t, lds_free) + a / v.lds_bw  # the DMA's LDS write
                if w.vm:  # gfx9's vmcnt counts loads and stores, returned in order
                    done = max(done, w.vm[-1])
                w.vm.append(done)
            elif code == BARRIER:
                g = w.bar
                w.bar += 1
                arrivals[g] = arrivals.get(g, 0) + 1
                w.wait_gen = g
                if arrivals[g] == WAVES:
                    release[g] = t + v.barrier_cost
            elif code == SETPRIO:
                w.prio = a
            elif code == NOP:
                w.ready = t + max(ISSUE_INTERVAL, a)
            w.pc += 1
            if w.pc == n:
                w.pc = 0
                w.trips += 1
                w.trip_end.append(t)
                if busy_mark is None and min(x.trips for x in waves) >= warm:
                    busy_mark = float(t)
        if all(w.trips >= trips for w in waves):
            break
        nxt = INF
        for w in waves:
            e = earliest(w)
            if e == INF:
                continue
            e = max(e, t + 1)
            e = math.ceil(e)
            e += (w.simd - e) % SIMDS
            nxt = min(nxt, e)
        if nxt == INF:
            raise RuntimeError("deadlock: every wave waits for a barrier the others never reach "
                               "(unbalanced barriers in the loop body, or a wrong --stagger)")
        t = int(nxt)
    start = max(w.trip_end[warm - 1] for w in waves) if warm > 0 else 0
    end = max(w.trip_end[trips - 1] for w in waves)
    meas = trips - warm
    span = max(end - start, 1)
    busy = sum(mfma_busy) / SIMDS / (end - busy_mark) if busy_mark is not None and end > busy_mark else float("nan")
    return LoopResult(cycles_per_trip=span / meas, k_per_trip=k_per_trip, matrix_busy=min(busy, 1.0))


# ---------------------------------------------------------------------------------------------------------------
# Kernels: compile, split into prologue / loop / epilogue
# ---------------------------------------------------------------------------------------------------------------
_PYUTILS_SHIM = """#pragma once
// hkjit cycle model: stand-in for HipKittens' pyutils (pybind11 binding macros, host code only)
#include "kittens.cuh"
struct hkjit_shim_module { const char* d; const char*& doc() { return d; } };
#define PYBIND11_MODULE(name, m) [[maybe_unused]] static void hkjit_shim_module_##name(hkjit_shim_module& m)
namespace py { template <auto F, typename... Args> void bind_function(hkjit_shim_module&, Args...) {} }
"""
_OCKL_SHIM = """#pragma once
// hkjit cycle model: the ockl work-item queries HIP calls, inline (clang -nogpulib links no device library)
#include <hip/hip_runtime.h>
extern "C" __device__ __attribute__((always_inline, const)) size_t __ockl_get_local_id(unsigned int d) {
    return d == 0 ? __builtin_amdgcn_workitem_id_x() : d == 1 ? __builtin_amdgcn_workitem_id_y()
                                                              : __builtin_amdgcn_workitem_id_z(); }
extern "C" __device__ __attribute__((always_inline, const)) size_t __ockl_get_group_id(unsigned int d) {
    return d == 0 ? __builtin_amdgcn_workgroup_id_x() : d == 1 ? __builtin_amdgcn_workgroup_id_y()
                                                               : __builtin_amdgcn_workgroup_id_z(); }
extern "C" __device__ __attribute__((always_inline, const)) size_t __ockl_get_local_size(unsigned int d) {
    const unsigned short* p = (const unsigned short*)__builtin_amdgcn_dispatch_ptr();  // hsa dispatch packet
    return p[2 + (d < 3 ? d : 0)]; }
extern "C" __device__ __attribute__((always_inline, const)) size_t __ockl_get_num_groups(unsigned int d) {
    const unsigned int* p = (const unsigned int*)__builtin_amdgcn_dispatch_ptr();
    const unsigned int grid = p[3 + (d < 3 ? d : 0)], wg = (unsigned int)__ockl_get_local_size(d);
    return (grid + wg - 1) / wg; }
"""


def toolchain_dir() -> Path:
    """HKJIT_TOOLCHAIN_DIR, else the one beside this checkout (../shared/toolchain, where CI has it): a benchmark
    runs from a checkout, the package never looks there."""
    return Path(os.environ.get("HKJIT_TOOLCHAIN_DIR") or REPO.parent / "shared" / "toolchain")


def default_hipkittens_root() -> Path:
    return Path(os.environ.get("HIPKITTENS_ROOT") or (toolchain_dir() / "HipKittens"))


def compile_ours(source: Path, hk_root: Path) -> str:
    if source.suffix == ".s":
        return source.read_text()
    dc = hipcheck.compile_device(source, "gfx950", hk_root / "include", toolchain_dir(),
                                 extra_flags=["-DHKJIT_NOGPULIB_SHIMS", f"-I{source.resolve().parent}"])
    return dc.asm


def compile_upstream(hk_root: Path) -> str:
    src = hk_root / UPSTREAM_KERNEL
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found: point --hipkittens-root (or HIPKITTENS_ROOT) at a HipKittens "
                                f"checkout with kernels/gemm/bf16fp32/mi350x/")
    with tempfile.TemporaryDirectory(prefix="hkjit-cycle-") as td:
        (Path(td) / "pyutils").mkdir()
        (Path(td) / "pyutils" / "pyutils.cuh").write_text(_PYUTILS_SHIM)
        (Path(td) / "ockl_shim.h").write_text(_OCKL_SHIM)
        # the shim folder comes first in the include path, then the real HipKittens headers
        dc = hipcheck.compile_device(src, "gfx950", td, toolchain_dir(),
                                     extra_flags=[f"-I{hk_root / 'include'}", "-include", f"{td}/ockl_shim.h", "-w"])
    if dc.vgpr_spill or dc.scratch:
        print(f"warning: upstream compiled with {dc.vgpr_spill} VGPR spills, {dc.scratch} B scratch",
              file=sys.stderr)
    return dc.asm


@dataclasses.dataclass
class Kernel:
    name: str
    loop: list  # decoded
    loop_text: list
    stagger: int  # barriers behind a conditional branch before the loop
    prologue_dma: int  # buffer_load ... lds before the loop (in flight on entry)
    epilogue_stores: int  # store instructions after the loop, per wave
    epilogue_valu: int  # VALU instructions after the loop other than MFMAs (their K is counted at the loop's rate)

    def summary(self) -> str:
        counts = {}
        for c in self.loop:
            counts[c[0]] = counts.get(c[0], 0) + 1
        names = {MFMA: "mfma", LDS_READ: "ds_read", DMA: "dma", BARRIER: "barrier", WAIT: "waitcnt", VALU: "valu",
                 SALU: "salu"}
        k = mfma_flops(self.loop) * WAVES / (2 * TILE * TILE)
        return (f"{self.name}: loop of {len(self.loop)} instructions, K {k:g} per trip; " +
                ", ".join(f"{names[c]} {counts.get(c, 0)}" for c in names) +
                f"; stagger {self.stagger}; prologue DMAs {self.prologue_dma}; after the loop: stores "
                f"{self.epilogue_stores}, VALU {self.epilogue_valu}")


def _strip(lines: Sequence[str]) -> list[str]:
    return [s for s in (l.split(";", 1)[0].strip() for l in lines) if s and (s.endswith(":") or not s.startswith("."))]


def split_loop(body: str) -> tuple[list, list, list]:
    """(before, loop, after): the function's instructions around its innermost loop with the most MFMAs; the loop
    is what hipcheck.main_loop returns (labels kept as "name:" lines)."""
    lines = body.splitlines()
    best = None
    for i, line in enumerate(lines):
        m = re.match(r"^(\.LBB\w+):.*Inner Loop Header", line)
        if not m:
            continue
        back = next((j for j in range(i + 1, len(lines))
                     if re.match(rf"^\s*s_c?branch\w*\s+{re.escape(m.group(1))}\s*$", lines[j])), None)
        if back is None:
            continue
        loop = _strip(lines[i + 1:back])
        mf = sum(x.startswith("v_mfma") for x in loop)
        if best is None or mf > best[0]:
            best = (mf, i, back, loop)
    if best is None:
        raise RuntimeError("no inner loop found (no '=>This Inner Loop Header' label with a branch back)")
    _, i, back, loop = best
    return _strip(lines[:i]), loop, _strip(lines[back + 1:])


def analyse(asm: str, label: str) -> Kernel:
    metas = hipcheck.kernels_metadata(asm)
    if not metas:
        raise RuntimeError(f"{label}: no kernel metadata in the assembly")
    name = metas[0]["name"]
    body = hipcheck.function_body(asm, name) or asm
    before, loop, after = split_loop(body)
    return Kernel(name=label, loop=decode(loop), loop_text=loop, stagger=conditional_barriers(before),
                  prologue_dma=sum(1 for s in before if re.match(r"(buffer|global)_load", s) and " lds" in s),
                  epilogue_stores=sum(1 for s in after if re.match(r"(buffer|global)_store", s)),
                  epilogue_valu=sum(1 for s in after if s.startswith("v_") and not s.startswith("v_mfma")))


def conditional_barriers(before: Sequence[str]) -> int:
    """Barriers that only some waves execute before the loop: s_barrier instructions between a forward
    `s_cbranch_* L` and `L:` in a block with no MFMA and no memory operation, i.e. the stagger idiom
    `if (warp_row == 1) s_barrier();` (one or more barriers)."""
    n = 0
    for i, s in enumerate(before):
        m = re.match(r"s_cbranch_\w+\s+(\.L\w+)$", s)
        if not m:
            continue
        for j in range(i + 1, min(i + 64, len(before))):
            if before[j] == m.group(1) + ":":
                block = before[i + 1:j]
                if not any(re.match(r"v_mfma|ds_|buffer_|global_|s_load|s_buffer", x) for x in block):
                    n += sum(1 for x in block if x == "s_barrier")
                break
    return n


# ---------------------------------------------------------------------------------------------------------------
# From a loop rate to TFLOP/s
# ---------------------------------------------------------------------------------------------------------------
def l2_miss_fraction(size: int) -> float:
    """Unique / requested A and B bytes over one round of up to 256 concurrent tiles in GROUP_M order."""
    tm = tn = -(-size // TILE)
    ids = range(min(CUS, tm * tn))
    rows, cols = set(), set()
    for i in ids:
        group = GROUP_M * tn
        first = (i // group) * GROUP_M
        gm = min(tm - first, GROUP_M)
        rows.add(first + (i % group) % gm)
        cols.add((i % group) // gm)
    return (len(rows) + len(cols)) / (2 * len(ids))


def global_bw(size: int) -> float:
    hbm_share = HBM_BYTES_PER_S / CUS / CLOCK_HZ
    return min(L2_TO_CU_BYTES_PER_CLK, hbm_share / l2_miss_fraction(size))


def tile_cycles(kern: Kernel, res: LoopResult, v: Variant, size: int) -> float:
    loop = size / res.k_per_trip * res.cycles_per_trip
    waves_per_simd = WAVES // SIMDS
    stores = max(kern.epilogue_stores + kern.epilogue_valu, 0) * ISSUE_INTERVAL * waves_per_simd
    c_bytes = TILE * TILE * 2
    epilogue = max(stores, c_bytes / v.global_bw)
    return loop + v.global_latency + epilogue


def model_tflops(kern: Kernel, res: LoopResult, v: Variant, size: int) -> float:
    tiles = (-(-size // TILE)) ** 2
    rounds = -(-tiles // CUS)
    seconds = rounds * tile_cycles(kern, res, v, size) / CLOCK_HZ
    return 2.0 * size ** 3 / seconds / 1e12


# ---------------------------------------------------------------------------------------------------------------
def run(ours: Kernel, upstream: Kernel, published: dict, variants: Sequence[Variant], warm_k: float,
        measure_k: float, stagger_override: Optional[int] = None) -> dict:
    out = {"variants": [], "kernels": {"ours": ours.summary(), "upstream": upstream.summary()}}
    cache: dict = {}
    for v0 in variants:
        rows = []
        per = {}
        for size in SIZES:
            v = dataclasses.replace(v0, global_bw=global_bw(size))
            for tag, k in (("ours", ours), ("upstream", upstream)):
                key = (tag, v)
                if key not in cache:
                    kt = k.loop and mfma_flops(k.loop) * WAVES / (2 * TILE * TILE)
                    warm = max(1, math.ceil(warm_k / kt))
                    trips = warm + max(1, math.ceil(measure_k / kt))
                    st = k.stagger if stagger_override is None else stagger_override
                    cache[key] = simulate(k.loop, v, trips, warm, st, k.prologue_dma)
                per[(tag, size)] = (cache[key], v)
        up_res, up_v = per[("upstream", CALIBRATION_SIZE)]
        eff = published[str(CALIBRATION_SIZE)]["tflops"] / model_tflops(upstream, up_res, up_v, CALIBRATION_SIZE)
        for size in SIZES:
            o = model_tflops(ours, *per[("ours", size)], size) * eff
            u = model_tflops(upstream, *per[("upstream", size)], size) * eff
            pub = published.get(str(size), {}).get("tflops")
            rows.append({"size": size, "ours": o, "upstream": u, "ratio": o / u, "published_upstream": pub,
                         "model_error": (u / pub - 1) if pub else None,
                         "ours_cycles_per_k32": per[("ours", size)][0].cycles_per_k32,
                         "upstream_cycles_per_k32": per[("upstream", size)][0].cycles_per_k32,
                         "ours_matrix_busy": per[("ours", size)][0].matrix_busy,
                         "upstream_matrix_busy": per[("upstream", size)][0].matrix_busy})
        out["variants"].append({"variant": v0.name, "params": dataclasses.asdict(v0), "efficiency": eff,
                                "rows": rows})
    return out


def print_table(res: dict) -> None:
    print("MODEL, NOT A MEASUREMENT: a one-CU cycle model of the compiled main loops (see this script's docstring).")
    print("TFLOP/s at M=N=K=size, MI355X (256 CUs, 2.4 GHz); each variant scaled by one efficiency factor 'eff' so")
    print(f"that upstream at {CALIBRATION_SIZE}^3 is its published {res['calibration_tflops']:.0f} TFLOP/s; 'up err' is "
          f"the model's error against upstream's published figure on the sizes it was not fitted to.")
    print(f"ours: {res['ours_source']}    HipKittens: {res['hipkittens_root']}")
    for s in res["kernels"].values():
        print(f"  {s}")
    print()
    hdr = (f"{'variant':<22} {'size':>6} {'ours':>7} {'upstream':>9} {'ratio':>6} {'published':>9} "
           f"{'up err':>7} {'cyc/K32 ours':>12} {'upstream':>9} {'MFMA busy o/u':>14} {'eff':>5}")
    print(hdr)
    print("-" * len(hdr))
    for var in res["variants"]:
        for r in var["rows"]:
            pub = f"{r['published_upstream']:.0f}" if r["published_upstream"] else "-"
            err = f"{100 * r['model_error']:+.1f}%" if r["model_error"] is not None else "-"
            print(f"{var['variant']:<22} {r['size']:>6} {r['ours']:>7.0f} {r['upstream']:>9.0f} {r['ratio']:>5.2f}x "
                  f"{pub:>9} {err:>7} {r['ours_cycles_per_k32']:>12.0f} {r['upstream_cycles_per_k32']:>9.0f} "
                  f"{r['ours_matrix_busy']:>6.2f}/{r['upstream_matrix_busy']:<7.2f} {var['efficiency']:>5.2f}")
    ratios = [r["ratio"] for var in res["variants"] for r in var["rows"]]
    print(f"\nours / upstream over all variants and sizes: {min(ratios):.2f}x .. {max(ratios):.2f}x")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", type=Path, default=REPO / "kernels" / "gemm_gfx950.hip",
                    help="our kernel: a .hip source (compiled device-only) or a .s file")
    ap.add_argument("--hipkittens-root", type=Path, default=None,
                    help="HipKittens checkout (default $HIPKITTENS_ROOT, else ../shared/toolchain/HipKittens)")
    ap.add_argument("--upstream", type=Path, default=None, help="upstream's assembly (.s) instead of compiling it")
    ap.add_argument("--stagger", type=int, default=None,
                    help="barriers waves 4..7 start ahead (default: detected per kernel before its loop)")
    ap.add_argument("--quick", action="store_true", help="one variant, short replay (a smoke run)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)
    hk = a.hipkittens_root or default_hipkittens_root()
    pub_path = hk / PUBLISHED
    if not pub_path.is_file():
        print(f"error: {pub_path} not found (published timings); set --hipkittens-root", file=sys.stderr)
        return 2
    published = json.loads(pub_path.read_text())
    if hipcheck.find_clang() is None and (a.ours.suffix != ".s" or a.upstream is None):
        print(f"error: clang-22 not found ({hipcheck.DEFAULT_CLANG}); install clang-22 lld-22 or pass .s files",
              file=sys.stderr)
        return 2
    ours = analyse(compile_ours(a.ours, hk), "ours")
    upstream = analyse(a.upstream.read_text() if a.upstream else compile_upstream(hk), "upstream")
    variants = default_variants()[:1] if a.quick else default_variants()
    warm_k, measure_k = (1152, 1152) if a.quick else (1152, 2304)
    res = run(ours, upstream, published, variants, warm_k, measure_k, a.stagger)
    res["calibration_tflops"] = published[str(CALIBRATION_SIZE)]["tflops"]
    res["ours_source"] = str(a.ours)
    res["hipkittens_root"] = str(hk)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
