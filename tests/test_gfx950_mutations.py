"""The emulator catches what the other gfx950 checks miss (issue 12, item 3).

Each mutant is one deliberate one-line breakage of a temporary copy of kernels/gemm_gfx950.hip or its plan
(kernels/gemm_gfx950_plan.h), compiled to a code object by clang-22 and run on one workgroup of a case that exposes
it: the corner block (1, 1) of 456 x 488 x 200 (ragged M, N and K: 200 x 232 valid elements, every wave's
fragments; 7 K tiles, so the 4-stage LDS ring wraps). It must fail, with wrong numbers (bound, poison, stray
writes) or a hazard, under one of the three latency / interleaving seeds of emulate_gemm.SEEDS (the first: the
laziest memory, nothing lands before a wait forces it; the second: starvation episodes, a random subset of
the waves falling up to thousands of instructions behind); the unmodified kernel passes the same case under all.
The eight breakages the issue lists as passing every check CI had before the emulator are all among these.
Each mutation's original text must occur the expected number of times (else the test says the kernel
changed and the mutation must be re-targeted) and the mutant must compile to different instructions (or LDS size), so a
kernel edit can never silently turn a mutant into a no-op.
The user's seed kernel (the device part of ../shared/seed's prompt, built at test time, never copied into the
repo) fails at K = 192 and passes at K = 128 (with a truncation allowance: it rounds toward zero, a separate
known defect).
"""
from __future__ import annotations

import re
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hkjit.gfx950 import hipcheck  # noqa: E402
from hkjit.gfx950.emulate_gemm import SEEDS, build_code_object  # noqa: E402

KERNELS = REPO / "kernels"
HIP, PLAN = "gemm_gfx950.hip", "gemm_gfx950_plan.h"

@dataclass(frozen=True)
class Mutant:
    """One deliberate breakage: `old` (which must occur exactly `count` times in `file`, else the kernel changed
    under the mutation and it must be re-targeted) becomes `new`; `what` names the kind of bug."""
    name: str
    file: str
    old: str
    new: str
    what: str
    count: int = 1


# What the issue names, each a one-line change (`old` may carry a neighbouring line, unchanged, to be unique).
MUTANTS = [
    Mutant("read-wrong-stage", PLAN,
           "    {Op::ReadA, 1, 0},",
           "    {Op::ReadA, 1, 1},",
           "stage index: A half 1 read from the stage of tile t+1"),
    Mutant("prefetch-into-read-stage", HIP,
           "la.template issue<B, MASK_COLS>(t + A, plan::stage_of(t + A));",
           "la.template issue<B, MASK_COLS>(t + A, plan::stage_of(t));",
           "stage index: A of tile t+3 DMAed into the stage tile t is read from"),
    Mutant("b-prefetch-one-tile-too-far", PLAN,
           "    {Op::LoadB, kPrefetch, 0},",
           "    {Op::LoadB, kPrefetch + 1, 0},",
           "prefetch distance: B half 0 issued one tile too far"),
    Mutant("swapped-b-fragment", HIP,
           "mma_ABt(c[A][B], a[A], b[B], c[A][B]);",
           "mma_ABt(c[A][B], a[A], b[1 - B], c[A][B]);",
           "fragment index: each MMA takes the other B half"),
    Mutant("ragged-k-mask", HIP,
           "if constexpr (MASK_COLS) v = kshift + t * BK + gcol[i] >= 0 ? v : OOB;",
           "if constexpr (MASK_COLS) v = kshift + t * BK + gcol[i] > 0 ? v : OOB;",
           "K mask: the partial first tile drops column 0"),
    Mutant("overlapping-dma-addresses", HIP,
           "const uint32_t l = lds + stage * plan::kStageBytes + i * plan::kWaves * plan::kBytesPerLoad * "
           "plan::kWaveSize;",
           "const uint32_t l = lds + stage * plan::kStageBytes + i * plan::kBytesPerLoad * plan::kWaveSize;",
           "LDS address: a thread's second DMA overlaps the next wave's first"),
    Mutant("store-row-past-m", HIP,
           "const uint32_t cext = ((uint32_t)(rows_valid - 1) * (uint32_t)g.ldc + (uint32_t)cols_valid) * 2u;",
           "const uint32_t cext = ((uint32_t)rows_valid * (uint32_t)g.ldc + (uint32_t)cols_valid) * 2u;",
           "store bound: C's range reaches row M"),
    Mutant("store-column-past-n", HIP,
           "voff[jj][j] = col_in_tile < cols_valid - wave_col * FRAG_N - col0 ? lane_base : OOB;",
           "voff[jj][j] = col_in_tile <= cols_valid - wave_col * FRAG_N - col0 ? lane_base : OOB;",
           "store bound: column N written"),
    Mutant("vmcnt-too-high", PLAN,
           "constexpr int kVmcntSteady = (kPrefetch - 1) * kLoadsPerTile;",
           "constexpr int kVmcntSteady = kPrefetch * kLoadsPerTile;",
           "wait count: the vmcnt wait leaves the tile about to be read in flight"),
    Mutant("lgkmcnt-too-high", PLAN,
           "    {Op::WaitLgkm, kLgkmAll, 0},\n    {Op::SetPrio, 1, 0},",
           "    {Op::WaitLgkm, kReadsPerA, 0},\n    {Op::SetPrio, 1, 0},",
           "wait count: the first MFMA cluster starts with A half 0's reads in flight"),
    Mutant("barrier-removed", PLAN,
           "    {Op::WaitVm, kVmcntSteady, 0},\n    {Op::Barrier, 0, 0},\n    // compute: A half 1",
           "    {Op::WaitVm, kVmcntSteady, 0},\n    // compute: A half 1",
           "removed barrier: the one publishing tile t+1 after the vmcnt wait"),
    Mutant("prologue-barrier-removed", PLAN,
           "    {Op::WaitVm, kVmcntSteady, 0},\n    {Op::Barrier, 0, 0},\n};",
           "    {Op::WaitVm, kVmcntSteady, 0},\n};",
           "removed barrier: the prologue's, so wave group 0 reads B rows group 1's DMAs may not have written"),
    Mutant("lds-allocation-too-small", PLAN,
           "constexpr int kLdsBytes = kStages * kStageBytes;",
           "constexpr int kLdsBytes = (kStages - 1) * kStageBytes;",
           "LDS size: one stage short"),
    Mutant("truncating-bf16-store", HIP,
           "return __builtin_bit_cast(uint32_t, __builtin_convertvector(f32x2_t{lo, hi}, bf16x2_t));",
           "return (__builtin_bit_cast(uint32_t, lo) >> 16) | (__builtin_bit_cast(uint32_t, hi) & 0xFFFF0000u);",
           "rounding: bf16 by truncation"),
]
CAUGHT: dict[str, str] = {}


def toolchain() -> Path:
    return hipcheck.toolchain_root()


def need_toolchain():
    if hipcheck.find_clang() is None:
        pytest.skip(f"clang-22 not found ({hipcheck.DEFAULT_CLANG} or $HKJIT_HIP_CLANG); apt-get install clang-22")
    tc = toolchain()
    if not (tc / "HipKittens" / "include" / "kittens.cuh").is_file():
        pytest.skip(f"toolchain dir {tc} (HipKittens headers) absent; set HKJIT_TOOLCHAIN_DIR")


def exposing_case():
    from hkjit.gfx950.emulate_gemm import GemmCase
    return GemmCase(456, 488, 200, blocks=((1, 1),))


def _kernel_copy(dst: Path, mutant: Mutant | None = None) -> Path:
    for name in (HIP, PLAN, "hkjit_gemm.h"):
        shutil.copy(KERNELS / name, dst / name)
    if mutant:
        text = (dst / mutant.file).read_text()
        found = text.count(mutant.old)
        assert found == mutant.count, (
            f"mutant {mutant.name}: its original text occurs {found} time(s) in kernels/{mutant.file}, expected "
            f"{mutant.count}: the kernel changed, re-target this mutation at the current code (else it would "
            f"test nothing).\n  text: {mutant.old!r}")
        (dst / mutant.file).write_text(text.replace(mutant.old, mutant.new))
    return dst / HIP


def _run_until_caught(kernel, case):
    from hkjit.gfx950.emulate_gemm import run_case
    outs = []
    for s in SEEDS:
        o = run_case(kernel, case, s)
        outs.append(o)
        if not o.passed:
            break
    return outs


@pytest.fixture(scope="module")
def unmodified_kernel(tmp_path_factory):
    need_toolchain()
    from hkjit.gfx950.emulate_gemm import GemmKernel
    src = _kernel_copy(tmp_path_factory.mktemp("unmodified"))
    return GemmKernel.from_code_object(build_code_object(src, toolchain_dir=toolchain()), src)


def _what_runs(kernel) -> tuple:
    """The kernel as the emulator runs it: its instructions and its launch's LDS size (the ELF's bytes differ
    with the build directory, so they cannot tell a no-op mutant)."""
    return tuple(i.text for i in kernel.code_object.instructions), kernel.lds_bytes


def test_unmodified_kernel_passes_the_exposing_case(unmodified_kernel):
    from hkjit.gfx950.emulate_gemm import run_case
    kernel = unmodified_kernel
    for s in SEEDS:
        o = run_case(kernel, exposing_case(), s)
        print(o.summary())
        assert o.passed, o.summary()


def test_mutants_are_distinct_one_line_changes():
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names), names
    for m in MUTANTS:
        assert m.old != m.new, m.name
        old, new = m.old.splitlines(), m.new.splitlines()
        changed = sum(a != b for a, b in zip(old, new)) if len(old) == len(new) else \
            abs(len(old) - len(new))
        assert changed == 1, f"{m.name}: not a one-line change"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_fails(mutant: Mutant, tmp_path, unmodified_kernel):
    from hkjit.gfx950.emulate_gemm import GemmKernel
    src = _kernel_copy(tmp_path, mutant)
    try:
        elf = build_code_object(src, toolchain_dir=toolchain())
    except RuntimeError as e:       # a mutant the compiler rejects would prove nothing about the emulator
        pytest.fail(f"mutant {mutant.name} does not compile: {str(e)[-2000:]}")
    kernel = GemmKernel.from_code_object(elf, src)
    assert _what_runs(kernel) != _what_runs(unmodified_kernel), (
        f"mutant {mutant.name} ({mutant.what}) compiles to the unmodified kernel: re-target it")
    outs = _run_until_caught(kernel, exposing_case())
    for o in outs:
        print(f"{mutant.name}: {o.summary()}")
    failed = [o for o in outs if not o.passed]
    assert failed, f"mutant {mutant.name} ({mutant.what}) passed the emulator under seeds {SEEDS}: " + \
        outs[-1].summary()
    CAUGHT[mutant.name] = f"{failed[0].failure_kind} (seed {failed[0].seed})"
    print(f"CAUGHT {mutant.name}: {CAUGHT[mutant.name]}")


# ------------------------------------------------------------------------------------------------------- the seed
def _seed_source(dst: Path) -> Path:
    md = toolchain().parent / "seed" / "hipkittens_gemm_level2_prompt.md"
    if not md.is_file():
        pytest.skip(f"seed prompt {md} not found (../shared/seed)")
    m = re.search(r"## COMPLETE KERNEL\s*```cpp\n(.*?)```", md.read_text(), re.S)
    assert m, "seed prompt without its COMPLETE KERNEL block"
    src = m.group(1).replace("#include <torch/extension.h>\n", "")
    src = src[: src.index("torch::Tensor gemm_forward")]      # the torch host wrapper: not device code
    shim = re.search(r"#ifdef HKJIT_NOGPULIB_SHIMS\n(.*?)#endif", (KERNELS / HIP).read_text(), re.S).group(1)
    p = dst / "seed_gemm.hip"
    p.write_text("#include <hip/hip_runtime.h>\n" + shim + src)   # ockl shims as our kernel's, so no call ABI
    return p


class SeedKernel:
    """The seed's gemm_kernel(gl A, gl Bt, gl C, int M, int K, int N) launched as its gemm_forward does:
    grid (M/256, N/256), 512 threads, dynamic LDS MAX_SHARED_MEMORY (160000). A gl<bf16,-1,-1,-1,-1> is
    {bf16* ptr; size_t batch, depth, rows, cols; <empty TMA dict>} (HipKittens types/global/gl.cuh)."""
    threads, block_m, block_n, lds_bytes = 512, 256, 256, 160000

    def __init__(self, elf: bytes):
        from hkjit.gfx950.emulator import CodeObject
        self.code_object = CodeObject.from_elf(elf)
        (self.name,) = [n for n in self.code_object.kernels if "gemm_kernel" in n]
        self.info = self.code_object.kernels[self.name]

    def launch_geometry(self, tiles_m, tiles_n, blocks):
        return (tiles_m, tiles_n, 1), [(bm, bn, 0) for bm, bn in blocks]

    def kernarg(self, v: dict, grid) -> bytes:
        assert v["lda"] == v["K"] and v["ldb"] == v["K"] and v["ldc"] == v["N"], "the seed has no strides"
        buf = bytearray(self.info.kernarg_size)
        args = [a for a in self.info.args if not str(a.get(".value_kind", "")).startswith("hidden")]
        assert [a[".size"] for a in args] == [48, 48, 48, 4, 4, 4], args
        gls = [(v["A"], v["M"], v["K"]), (v["Bt"], v["N"], v["K"]), (v["C"], v["M"], v["N"])]
        for a, (ptr, rows, cols) in zip(args, gls):
            struct.pack_into("<QQQQQ", buf, a[".offset"], ptr, 1, 1, rows, cols)
        for a, val in zip(args[3:], (v["M"], v["K"], v["N"])):
            struct.pack_into("<i", buf, a[".offset"], val)
        return bytes(buf)


@pytest.fixture(scope="module")
def seed_kernel(tmp_path_factory):
    need_toolchain()
    d = tmp_path_factory.mktemp("seed")
    out = hipcheck.compile_code_object(_seed_source(d), d / "seed.co", "gfx950", toolchain_dir=toolchain())
    return SeedKernel(out.read_bytes())


@pytest.mark.parametrize("k,should_pass", [(128, True), (192, False)])
def test_seed_kernel_fails_at_k192_passes_at_k128(seed_kernel, k, should_pass):
    from hkjit.gfx950.emulate_gemm import GemmCase, run_case
    case = GemmCase(256, 256, k)
    outs = [run_case(seed_kernel, case, s, rounding="directed") for s in (SEEDS if should_pass else SEEDS[:1])]
    for o in outs:
        print(f"seed kernel: {o.summary()}")
    if should_pass:
        assert all(o.passed for o in outs), [o.summary() for o in outs]
    else:
        assert not outs[0].passed, outs[0].summary()
        print(f"CAUGHT seed kernel at K={k}: {outs[0].failure_kind}")
