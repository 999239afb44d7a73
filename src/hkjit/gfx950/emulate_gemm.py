"""kernels/gemm_gfx950.hip on the gfx950 emulator: the real code object, launched as the host launcher does.

What a run is: the code object (compiled here with clang-22 by `build_code_object`, or taken out of a built module
by bundle.extract_code_object) is loaded by the emulator; the kernel's `Args` struct is packed by the layout of
`struct Args` in the .hip file, checked against the code object's metadata; the grid is the launcher's
(tiles_m * tiles_n workgroups of kThreads work-items, dynamic LDS = the plan's kLdsBytes). A case chooses which
output blocks run: the kernel maps a workgroup id to a block (bm, bn) itself, so `workgroup_for_block` inverts that
map, and the check then demands that exactly those blocks were written (a changed block order fails loudly).

Memory: A, Bt and C sit in their own allocations with 128-byte guards; everything of A and Bt that is not a matrix
element (guards, the columns between K and the leading dimension, the columns before a strided A's first) holds
NaN, and all of C (with its guards and the columns past N) starts as a NaN bit pattern (POISON). So a read of an
element the kernel must not use, a block not written, a write outside the matrix or into a block that was not
launched all show up.

The bound (float64 reference ``ref = A @ Bt^T`` of the same bf16 inputs), per element::

    |c - ref| <= E + h(|ref| + E),    E = K * 2^-24 * sum_k |a_mk| |b_nk|

E bounds fp32 accumulation of exact products (a bf16 x bf16 product is exact in fp32) in any order; h(x) is half
a bf16 ulp at magnitude x, the most one round-to-nearest step to bf16 can add (`rounding="directed"` allows a
whole ulp, for kernels that truncate, such as the seed). With ``data="integers"`` every partial sum is an integer
multiple of one power of two below 2^24, so the fp32 sum is exact in any order and equals ref: the stored bits
must then be exactly RNE(fp32(ref)) (`bit_mismatch`), which pins the kernel's rounding to nearest-even.
"""
from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

from . import hipcheck, schedule

if TYPE_CHECKING:      # the emulator is imported when a kernel is loaded into it
    from .emulator import CodeObject

POISON = 0x7FC1              # a quiet-NaN bf16 bit pattern: C starts as this everywhere
NAN_IN = 0x7FC3              # the NaN that fills A and Bt wherever the kernel must not read
GUARD = 64                   # elements of poison before and after every matrix allocation
NUM_XCDS = 8                 # HipKittens' NUM_XCDS (kernel's block order)
GROUP_M = 8                  # the kernel's GROUP_M
KERNEL_MATCH = "gemm_bf16_kernel"
#: Latency/interleaving seeds: every seed draws its own wave interleaving and, by default, how eagerly memory
#: operations land by themselves (the emulator's complete_prob); seeds named here instead get that probability,
#: and 0 is the laziest legal memory: nothing lands before an s_waitcnt (or the end of the wave) forces it, so a
#: wait that covers too little is seen even when, with any realistic latency, the data would have arrived.
LAZY_TIMING = {1: 0.0}
#: Seed 1: laziest memory; seed 2: the emulator's starvation mode (seed % 3 == 2: groups of waves held back for
#: thousands of the others' instructions); seed 3: plain random interleaving.
SEEDS = (1, 2, 3)


def _np():
    import numpy
    return numpy


# --------------------------------------------------------------------------------------------------- the kernel
def default_source() -> Path:
    from ..specs import kernels_dir
    return kernels_dir() / "gemm_gfx950.hip"


def build_code_object(source: Path | str | None = None, out: Path | str | None = None,
                      extra_flags: Sequence[str] = (), toolchain_dir=None) -> bytes:
    """Compile the kernel (default kernels/gemm_gfx950.hip; its folder is on the include path, so a copy next to a
    modified gemm_gfx950_plan.h uses that plan) device-only for gfx950 and return the code object's bytes."""
    import tempfile
    source = Path(source) if source else default_source()
    flags = ["-DHKJIT_NOGPULIB_SHIMS", f"-I{source.parent}", *extra_flags]
    if out is not None:
        return hipcheck.compile_code_object(source, out, "gfx950", toolchain_dir=toolchain_dir,
                                            extra_flags=flags).read_bytes()
    with tempfile.TemporaryDirectory(prefix="hkjit-emu-") as td:
        return hipcheck.compile_code_object(source, Path(td) / "k.co", "gfx950", toolchain_dir=toolchain_dir,
                                            extra_flags=flags).read_bytes()


_SCALARS = {"int": (4, "i"), "int32_t": (4, "i"), "unsigned": (4, "I"), "uint32_t": (4, "I"), "int64_t": (8, "q"),
            "uint64_t": (8, "Q"), "size_t": (8, "Q"), "float": (4, "f")}


def struct_layout(source_text: str, name: str = "Args") -> list[tuple[str, int, int, str]]:
    """(field, offset, size, struct format) of `struct name { ... };` in C source: pointers and the scalar types
    above, with C alignment. Raises ValueError for anything else (so a new field type is noticed, not mis-packed)."""
    m = re.search(rf"struct\s+{name}\s*\{{(.*?)\}};", source_text, re.S)
    if not m:
        raise ValueError(f"no `struct {name} {{...}};` in the kernel source")
    body = re.sub(r"//[^\n]*|/\*.*?\*/", "", m.group(1), flags=re.S)
    out, off = [], 0
    for decl in (d.strip() for d in body.split(";")):
        if not decl:
            continue
        first, *more = [p.strip() for p in decl.split(",")]
        fm = re.fullmatch(r"(.*?)([\s\*]+)(\w+)", first)
        if not fm:
            raise ValueError(f"struct {name}: cannot parse `{decl}`")
        base, stars = fm.group(1).strip(), "*" in fm.group(2)
        for piece_name, ptr in [(fm.group(3), stars)] + [(p.lstrip("*").strip(), stars or p.startswith("*"))
                                                           for p in more]:
            if ptr:
                size, fmt = 8, "Q"
            else:
                typ = base.replace("const", "").strip()
                if typ not in _SCALARS:
                    raise ValueError(f"struct {name}: field {piece_name} has type {typ}, unknown to the packer")
                size, fmt = _SCALARS[typ]
            off = -(-off // size) * size
            out.append((piece_name, off, size, fmt))
            off += size
    return out


def _meta(arg: dict, key: str):
    return arg.get(key, arg.get("." + key))


@dataclass
class GemmKernel:
    """A gfx950 GEMM code object ready for the emulator, with what its launcher would pass it."""
    code_object: CodeObject
    name: str                    # mangled kernel name
    args: list                   # struct_layout of Args
    kernarg_size: int
    threads: int
    block_m: int
    block_n: int
    lds_bytes: int               # the launcher's dynamic LDS request (plan kLdsBytes)

    @classmethod
    def from_code_object(cls, elf: bytes, source: Path | str | None = None,
                         plan_header: Path | str | None = None) -> "GemmKernel":
        """`elf`: the code object; `source`/`plan_header`: the .hip and plan it was built from (default: the
        installed kernels/, which is what a cached entry of this hkjit version was built from)."""
        from .emulator import CodeObject, EmulatorError
        source = Path(source) if source else default_source()
        plan_header = Path(plan_header) if plan_header else source.parent / "gemm_gfx950_plan.h"
        plan = schedule.parse_plan_text(plan_header.read_text())
        co = CodeObject.from_elf(elf)
        names = [n for n in co.kernels if KERNEL_MATCH in n]
        if len(names) != 1:
            raise EmulatorError(f"the code object has kernels {sorted(co.kernels)}, expected one named "
                                f"*{KERNEL_MATCH}*: is it hkjit's gfx950 GEMM?")
        info = co.kernels[names[0]]
        layout = struct_layout(Path(source).read_text())
        size = max(o + s for _, o, s, _ in layout)
        explicit = [a for a in info.args if not str(_meta(a, "value_kind") or "").startswith("hidden")]
        if len(explicit) != 1 or _meta(explicit[0], "size") != -(-size // 8) * 8:
            raise EmulatorError(f"kernel {names[0]}: metadata arguments {explicit} do not match struct Args "
                             f"({size} bytes) of {source}: is the code object built from this source?")
        c = plan.consts
        return cls(co, names[0], layout, info.kernarg_size, c["kThreads"], c["kBlockM"], c["kBlockN"], c["kLdsBytes"])

    @classmethod
    def from_source(cls, source: Path | str | None = None, **kw) -> "GemmKernel":
        source = Path(source) if source else default_source()
        return cls.from_code_object(build_code_object(source, **kw), source)

    def launch_geometry(self, tiles_m: int, tiles_n: int, blocks: list) -> tuple[tuple, list]:
        """The launcher's grid (tiles_m * tiles_n workgroups in x) and the workgroup ids computing `blocks`."""
        return (tiles_m * tiles_n, 1, 1), [(workgroup_for_block(bm, bn, tiles_m, tiles_n), 0, 0) for bm, bn in blocks]

    def kernarg(self, values: dict, grid: tuple[int, int, int]) -> bytes:
        """The kernarg segment: Args at offset 0 (hkjit's kernel has no other explicit argument), then the hidden
        arguments a ROCm build may add (block counts, group sizes; zero for the rest)."""
        buf = bytearray(max(self.kernarg_size, max(o + s for _, o, s, _ in self.args)))
        for fname, off, _size, fmt in self.args:
            struct.pack_into("<" + fmt, buf, off, values[fname])
        info = self.code_object.kernels[self.name]
        block = (self.threads, 1, 1)
        for a in info.args:
            kind, off, size = str(_meta(a, "value_kind") or ""), _meta(a, "offset"), _meta(a, "size")
            if not kind.startswith("hidden"):
                continue
            val = 0
            for axis, ch in enumerate("xyz"):
                if kind == f"hidden_block_count_{ch}":
                    val = grid[axis]
                elif kind == f"hidden_group_size_{ch}":
                    val = block[axis]
            if kind == "hidden_grid_dims":
                val = 1
            elif kind == "hidden_dynamic_lds_size":
                val = self.lds_bytes
            buf[off:off + size] = int(val).to_bytes(size, "little")
        return bytes(buf)


# --------------------------------------------------------------------------------------------------- block order
def block_of_workgroup(wg: int, tiles_m: int, tiles_n: int) -> tuple[int, int]:
    """The (bm, bn) output block the kernel computes in workgroup `wg` (its XCD spread, then GROUP_M grouping)."""
    nblk = tiles_m * tiles_n
    per_xcd = nblk // NUM_XCDS
    i = (wg % NUM_XCDS) * per_xcd + wg // NUM_XCDS if wg < per_xcd * NUM_XCDS else wg
    group_size = GROUP_M * tiles_n
    first_m = (i // group_size) * GROUP_M
    gm = min(tiles_m - first_m, GROUP_M)
    return first_m + (i % group_size) % gm, (i % group_size) // gm


def workgroup_for_block(bm: int, bn: int, tiles_m: int, tiles_n: int) -> int:
    for wg in range(tiles_m * tiles_n):
        if block_of_workgroup(wg, tiles_m, tiles_n) == (bm, bn):
            return wg
    raise ValueError(f"block ({bm}, {bn}) is outside the {tiles_m} x {tiles_n} grid")


# --------------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class GemmCase:
    """C[M,N] = A[M,K] Bt[N,K]^T with leading dimensions lda/ldb/ldc (default K, K, N); A starts a_col columns
    into its rows (A = X[:, a_col:a_col+K], a strided A); `blocks` = output blocks to run (None: all)."""
    m: int
    n: int
    k: int
    lda: Optional[int] = None
    ldb: Optional[int] = None
    ldc: Optional[int] = None
    a_col: int = 0
    blocks: Optional[tuple] = None
    data: str = "normal"         # "normal": randn in bf16; "integers": exact sums (bit-exact rounding check)

    @property
    def ld(self) -> tuple[int, int, int]:
        return self.lda or self.k + self.a_col, self.ldb or self.k, self.ldc or self.n

    @property
    def label(self) -> str:
        lda, ldb, ldc = self.ld
        extra = "" if (lda, ldb, ldc) == (self.k, self.k, self.n) else f" ld={lda},{ldb},{ldc}"
        extra += f" a_col={self.a_col}" if self.a_col else ""
        extra += f" blocks={list(self.blocks)}" if self.blocks is not None else ""
        return f"{self.m}x{self.n}x{self.k}{extra} {self.data}"

    def validate(self, block_m: int = 256, block_n: int = 256) -> None:
        """The launcher's argument rules (what hkjit_gemm_bf16 would reject), so a case never tests UB."""
        lda, ldb, ldc = self.ld
        if min(self.m, self.n) < 1 or self.k < 0 or self.k % 8:
            raise ValueError(f"{self.label}: needs M, N >= 1 and K % 8 == 0")
        if lda < self.k + self.a_col or ldb < self.k or lda % 8 or ldb % 8 or ldc < self.n or self.a_col % 8:
            raise ValueError(f"{self.label}: lda >= K + a_col, ldb >= K, both % 8, ldc >= N, a_col % 8 == 0")
        tm, tn = -(-self.m // block_m), -(-self.n // block_n)
        for bm, bn in self.blocks or ():
            if not (0 <= bm < tm and 0 <= bn < tn):
                raise ValueError(f"{self.label}: block ({bm}, {bn}) outside {tm} x {tn}")


@dataclass
class CaseOutcome:
    case: GemmCase
    seed: int
    input_seed: int
    workgroups: list
    hazards: list = field(default_factory=list)
    error: str = ""
    unwritten: int = 0            # elements of a launched block left as poison (or NaN)
    stray: int = 0                # elements outside the launched blocks that changed
    over_bound: int = 0           # elements past the bound
    bit_mismatch: Optional[int] = None   # "integers" data: elements whose bits differ from RNE(fp32 sum)
    worst: float = 0.0            # max |c - ref| / bound over the launched blocks
    instructions: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.hazards and not self.error and not self.wrong_numbers

    @property
    def wrong_numbers(self) -> bool:
        return bool(self.unwritten or self.stray or self.over_bound or self.bit_mismatch)

    @property
    def failure_kind(self) -> str:
        """'' if passed, else what failed, joined by '+': 'hazard', 'error' (the emulator stopped), 'numbers'."""
        kinds = [k for k, bad in (("hazard", self.hazards), ("error", self.error), ("numbers", self.wrong_numbers))
                 if bad]
        return "+".join(kinds)

    def summary(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        parts = [f"{verdict} {self.case.label} seed {self.seed} (inputs {self.input_seed}) wg {self.workgroups}:"]
        if self.error:
            parts.append(f"emulator error: {self.error}")
        if self.hazards:
            parts.append(f"{len(self.hazards)} hazard(s), first: {self.hazards[0]}")
        parts.append(f"worst {self.worst:.3g} of bound, {self.over_bound} over bound, {self.unwritten} unwritten, "
                     f"{self.stray} stray writes" + ("" if self.bit_mismatch is None else
                                                     f", {self.bit_mismatch} not bit-exact RNE"))
        parts.append(f"{self.instructions} instructions in {self.seconds:.2f} s")
        return " ".join(parts)


def bf16_bits_to_f64(bits):
    np = _np()
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def rne_bf16_bits(x32):
    """Round-to-nearest-even of float32 values to bf16 bit patterns (NaN -> a quiet NaN)."""
    np = _np()
    u = np.ascontiguousarray(x32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x32)
    return np.where(nan, np.uint16(0x7FC0), r)


def half_ulp_bf16(x):
    """Half the bf16 spacing at magnitude x (x >= 0; 8 significant bits; bf16 subnormals below 2^-126)."""
    np = _np()
    _m, e = np.frexp(np.maximum(x, 2.0 ** -126))
    return np.where(x > 0, np.ldexp(1.0, e - 9), 0.0)


def error_bound(a64, bt64, ref, k: int, rounding: str = "rne"):
    """Per-element bound of the module docstring (rounding "rne": half an ulp; "directed": a whole ulp)."""
    np = _np()
    accum = k * 2.0 ** -24 * (np.abs(a64) @ np.abs(bt64).T)
    h = half_ulp_bf16(np.abs(ref) + accum)
    return accum + (h if rounding == "rne" else 2 * h)


def make_inputs(case: GemmCase, rng):
    """bf16 bit patterns of A (M, K) and Bt (N, K): randn, or small integers times a power of two per row."""
    np = _np()
    m, n, k = case.m, case.n, case.k
    if case.data == "integers":
        a = rng.integers(-16, 17, (m, k)) * np.ldexp(1.0, rng.integers(-4, 5, (m, 1)))
        b = rng.integers(-16, 17, (n, k)) * np.ldexp(1.0, rng.integers(-4, 5, (n, 1)))
        to = lambda x: rne_bf16_bits(x.astype(np.float32))  # noqa: E731  (exact: |ints| <= 16)
        return to(a), to(b)
    if case.data != "normal":
        raise ValueError(f"data {case.data!r}: 'normal' or 'integers'")
    return rne_bf16_bits(rng.standard_normal((m, k)).astype(np.float32)), \
        rne_bf16_bits(rng.standard_normal((n, k)).astype(np.float32))


def place_matrix(mem, rows: int, ld: int, col0: int, bits, fill: int):
    """A (rows x ld) buffer of `fill` with `bits` at column col0, GUARD elements of fill before it and a whole
    row plus GUARD after it (a row past the end lands there); returns (address of element [0, col0], the
    buffer's base address, total elements)."""
    np = _np()
    total = GUARD + rows * ld + ld + GUARD
    buf = np.full(total, fill, dtype=np.uint16)
    if bits is not None and bits.size:
        view = buf[GUARD:GUARD + rows * ld].reshape(rows, ld)
        view[:, col0:col0 + bits.shape[1]] = bits
    base = mem.alloc(total * 2, align=256)
    mem.write(base, buf.tobytes())
    return base + (GUARD + col0) * 2, base, total


def run_case(kernel: GemmKernel, case: GemmCase, seed: int, input_seed: Optional[int] = None,
             rounding: str = "rne", max_instructions: Optional[int] = None,
             complete_prob: Optional[float] = None) -> CaseOutcome:
    """Run `case` on the emulator (interleaving/latency seed `seed`) and check it against float64.

    `kernel` may be any object with GemmKernel's attributes, launch_geometry and kernarg (the values dict holds
    A, Bt, C addresses, lda, ldb, ldc, M, N, K, tiles_m, tiles_n): the tests run the seed kernel that way."""
    np = _np()
    from .emulator import EmulatorError, GlobalMemory, Launch, run
    case.validate(kernel.block_m, kernel.block_n)
    input_seed = int(time.time_ns() % 2 ** 31) if input_seed is None else input_seed
    rng = np.random.default_rng(input_seed)
    a_bits, b_bits = make_inputs(case, rng)
    m, n, k = case.m, case.n, case.k
    lda, ldb, ldc = case.ld
    tm, tn = -(-m // kernel.block_m), -(-n // kernel.block_n)
    blocks = list(case.blocks) if case.blocks is not None else [(i, j) for i in range(tm) for j in range(tn)]
    grid, wgs = kernel.launch_geometry(tm, tn, blocks)
    out = CaseOutcome(case, seed, input_seed, [w[0] if w[1:] == (0, 0) else w for w in wgs])

    mem = GlobalMemory()
    a_addr, _, _ = place_matrix(mem, m, lda, case.a_col, a_bits, NAN_IN)
    b_addr, _, _ = place_matrix(mem, n, ldb, 0, b_bits, NAN_IN)
    c_addr, c_base, c_total = place_matrix(mem, m, ldc, 0, None, POISON)
    values = {"A": a_addr, "Bt": b_addr, "C": c_addr, "lda": lda if k > 0 else 8, "ldb": ldb if k > 0 else 8,
              "ldc": ldc, "M": m, "N": n, "K": k, "tiles_m": tm, "tiles_n": tn}
    launch = Launch(kernel=kernel.name, grid=grid, block=(kernel.threads, 1, 1),
                    kernarg=kernel.kernarg(values, grid), dynamic_lds=kernel.lds_bytes,
                    workgroups=wgs, seed=seed, max_instructions=max_instructions,
                    complete_prob=LAZY_TIMING.get(seed) if complete_prob is None else complete_prob)
    t0 = time.perf_counter()
    try:
        rep = run(kernel.code_object, launch, mem)
        out.hazards = [str(h) for h in rep.hazards]
        out.instructions = rep.instructions
    except EmulatorError as e:
        out.error = f"{type(e).__name__}: {e}".splitlines()[0]
    out.seconds = time.perf_counter() - t0

    c_all = np.frombuffer(mem.read(c_base, c_total * 2), dtype=np.uint16)
    c = c_all[GUARD:GUARD + m * ldc].reshape(m, ldc)
    mask = np.zeros((m, ldc), dtype=bool)
    for bm, bn in blocks:
        mask[bm * kernel.block_m:(bm + 1) * kernel.block_m, bn * kernel.block_n:(bn + 1) * kernel.block_n] = True
    mask[:, n:] = False
    outside = np.concatenate([c_all[:GUARD], c_all[GUARD + m * ldc:], c[~mask]])
    out.stray = int((outside != POISON).sum())
    if out.error:
        return out
    a64, b64 = bf16_bits_to_f64(a_bits), bf16_bits_to_f64(b_bits)
    ref = a64 @ b64.T
    got = bf16_bits_to_f64(c[:, :n])
    sel = mask[:, :n]
    out.unwritten = int((np.isnan(got) & sel).sum())
    bound = error_bound(a64, b64, ref, k, rounding)
    err = np.abs(got - ref)
    finite = sel & ~np.isnan(got)
    over = finite & ~(err <= bound)
    out.over_bound = int(over.sum())
    ratio = np.where(bound > 0, err / np.where(bound > 0, bound, 1), np.where(err > 0, np.inf, 0.0))
    out.worst = float(ratio[finite].max()) if finite.any() else 0.0
    if case.data == "integers":
        want = rne_bf16_bits(ref.astype(np.float32))        # exact: every partial sum fits fp32
        out.bit_mismatch = int((sel & (c[:, :n] != want)).sum())
    return out


def run_cases(kernel: GemmKernel, cases: Iterable[GemmCase], seeds: Sequence[int],
              input_seed: Optional[int] = None, rounding: str = "rne") -> list[CaseOutcome]:
    """Every case under every seed (fresh inputs per run unless input_seed is given)."""
    base = int(time.time_ns() % 2 ** 31) if input_seed is None else input_seed
    out = []
    for i, case in enumerate(cases):
        for j, s in enumerate(seeds):
            out.append(run_case(kernel, case, s, (base + 7919 * i + 104729 * j) % 2 ** 31, rounding))
    return out


#: The grid `selftest --emulate` runs: ragged M and N (300 x 260: the interior block and each edge), K of one
#: partial tile (8), one full and one partial (40), two (64), six (192: the 4-stage LDS ring wraps) and thirteen
#: (416, on the 200 x 232 corner of 456 x 488: wraps three times), leading dimensions past K with a strided A, a
#: tiny product, and exact-sum data for the bit-exact rounding check. One or two workgroups each, so the whole
#: grid takes seconds, not minutes.
SELFTEST_CASES = (
    GemmCase(300, 260, 8, blocks=((1, 1),)),
    GemmCase(300, 260, 40, blocks=((0, 1), (1, 0))),
    GemmCase(300, 260, 64, blocks=((0, 0),)),
    GemmCase(300, 260, 192, blocks=((1, 1), (0, 0))),
    GemmCase(456, 488, 416, blocks=((1, 1),)),
    GemmCase(300, 260, 104, lda=136, ldb=112, ldc=271, a_col=16, blocks=((1, 1), (0, 0))),
    GemmCase(1, 1, 8),
    GemmCase(300, 260, 192, blocks=((1, 1),), data="integers"),
)
