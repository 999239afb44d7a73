"""Instruction semantics of the gfx950 emulator (hkjit.gfx950.emulator), on tiny hand-written kernels assembled by
llvm-mc-22 and linked by ld.lld-22 into real code objects, and on the real compiled GEMM kernel.

Expectations come from the CDNA3/CDNA4 ISA pseudocode (written out here in Python/numpy), not from the emulator.
Every kernel below starts with the same prologue: kernarg = {out ptr, in ptr, out bytes, in bytes}; s[16:19] is a
raw buffer resource over `out`, s[20:23] over `in`, v1 = lane * 4 (lane = the wave's lane, by v_mbcnt), s2 = workgroup
id x.
Results are stored as rows of 64 dwords (row r at byte r * 256 of `out`, through soffset s30).
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hkjit.gfx950.emulator import (CodeObject, EmulatorError, GlobalMemory, Launch, UnknownInstructionError, run,
                                   supported_opcodes)

LLVM = Path("/usr/lib/llvm-22/bin")
MC, LLD = LLVM / "llvm-mc", LLVM / "ld.lld"
pytestmark = pytest.mark.skipif(not (MC.is_file() and LLD.is_file() and (LLVM / "llvm-objdump").is_file()),
                                reason="llvm-mc-22 / ld.lld-22 / llvm-objdump-22 not installed "
                                       "(apt-get install llvm-22 lld-22)")

PROLOGUE = """
  s_load_dwordx4 s[4:7], s[0:1], 0x0
  s_load_dwordx2 s[12:13], s[0:1], 0x10
  s_waitcnt lgkmcnt(0)
  s_mov_b32 s16, s4
  s_and_b32 s17, s5, 0xffff
  s_mov_b32 s18, s12
  s_mov_b32 s19, 0x27000
  s_mov_b32 s20, s6
  s_and_b32 s21, s7, 0xffff
  s_mov_b32 s22, s13
  s_mov_b32 s23, 0x27000
  v_mbcnt_lo_u32_b32 v1, -1, 0
  v_mbcnt_hi_u32_b32 v1, -1, v1
  v_lshlrev_b32 v1, 2, v1
"""

TEMPLATE = """
.amdgcn_target "amdgcn-amd-amdhsa--gfx950"
.text
.globl k
.p2align 8
.type k,@function
k:
{prologue}
{body}
  s_endpgm
.Lend:
.size k, .Lend-k
.rodata
.p2align 6
.amdhsa_kernel k
  .amdhsa_user_sgpr_kernarg_segment_ptr 1
  .amdhsa_system_sgpr_workgroup_id_x 1
  .amdhsa_system_vgpr_workitem_id {vid}
  .amdhsa_next_free_vgpr 256
  .amdhsa_next_free_sgpr 96
  .amdhsa_accum_offset 256
  .amdhsa_group_segment_fixed_size {lds}
  .amdhsa_kernarg_size 24
.end_amdhsa_kernel
.amdgpu_metadata
---
amdhsa.version: [1, 2]
amdhsa.target: amdgcn-amd-amdhsa--gfx950
amdhsa.kernels:
  - .name: k
    .symbol: k.kd
    .kernarg_segment_size: 24
    .kernarg_segment_align: 8
    .group_segment_fixed_size: {lds}
    .private_segment_fixed_size: 0
    .wavefront_size: 64
    .sgpr_count: 96
    .vgpr_count: 256
    .max_flat_workgroup_size: 1024
    .args:
      - {{.offset: 0, .size: 8, .value_kind: global_buffer, .address_space: global}}
      - {{.offset: 8, .size: 8, .value_kind: global_buffer, .address_space: global}}
      - {{.offset: 16, .size: 4, .value_kind: by_value}}
      - {{.offset: 20, .size: 4, .value_kind: by_value}}
...
.end_amdgpu_metadata
"""


def assemble(body: str, tmp_path: Path, lds: int = 0, vid: int = 0, prologue: bool = True) -> CodeObject:
    src = tmp_path / "k.s"
    src.write_text(TEMPLATE.format(prologue=PROLOGUE if prologue else "", body=body, lds=lds, vid=vid))
    obj, co = tmp_path / "k.o", tmp_path / "k.co"
    r = subprocess.run([str(MC), "-triple=amdgcn-amd-amdhsa", "-mcpu=gfx950", "-filetype=obj", str(src), "-o",
                        str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(LLD), "-shared", str(obj), "-o", str(co)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return CodeObject.from_file(co)


def store_row(reg: str, row: int) -> str:
    """Store VGPR `reg` of every lane as row `row` of out."""
    return f"  s_mov_b32 s30, {row * 256}\n  buffer_store_dword {reg}, v1, s[16:19], s30 offen\n"


def store_srow(sreg: str, row: int) -> str:
    return f"  v_mov_b32 v250, {sreg}\n" + store_row("v250", row)


POISON = 0xDEADBEEF


def launch(co: CodeObject, inp: np.ndarray | None = None, out_words: int = 64 * 32, block=(64, 1, 1), grid=(1, 1, 1),
           seed: int = 0, out_records: int | None = None, in_records: int | None = None, **kw):
    """Run kernel k; returns (out as uint32 array, report)."""
    mem = GlobalMemory()
    inp = np.zeros(64, np.uint32) if inp is None else np.ascontiguousarray(inp).view(np.uint32).reshape(-1)
    pin = mem.alloc(inp.nbytes)
    mem.write(pin, inp)
    pout = mem.alloc(out_words * 4)
    mem.write(pout, np.full(out_words, POISON, np.uint32))
    ka = struct.pack("<QQII", pout, pin, out_words * 4 if out_records is None else out_records,
                     inp.nbytes if in_records is None else in_records)
    rep = run(co, Launch(kernel="k", grid=grid, block=block, kernarg=ka, seed=seed, **kw), mem)
    return mem.read_array(pout, np.uint32, out_words), rep


def rows(out: np.ndarray, n: int) -> np.ndarray:
    return out[:64 * n].reshape(n, 64)


M32 = 0xFFFFFFFF


def sx(x):
    x &= M32
    return x - (1 << 32) if x >> 31 else x


# --------------------------------------------------------------------------------------------------------- SALU
def test_salu_arithmetic_carry_compare_shift(tmp_path):
    """SOP2/SOP1/SOPK/SOPC samples against the ISA pseudocode, including SCC (read back with s_cselect)."""
    cases = [  # (asm computing s40 (and SCC), expected s40, expected SCC or None)
        ("s_mov_b32 s8, 0xffffffff\n  s_add_u32 s40, s8, 2", 1, 1),
        ("s_mov_b32 s8, 5\n  s_add_u32 s40, s8, 7", 12, 0),
        ("s_mov_b32 s8, 0xffffffff\n  s_add_u32 s9, s8, 1\n  s_addc_u32 s40, 0, 0", 1, 0),
        ("s_mov_b32 s8, 3\n  s_sub_u32 s40, s8, 5", (3 - 5) & M32, 1),
        ("s_mov_b32 s8, 0x7fffffff\n  s_add_i32 s40, s8, 1", 0x80000000, 1),
        ("s_mov_b32 s8, -7\n  s_ashr_i32 s40, s8, 1", (-4) & M32, 1),
        ("s_mov_b32 s8, 0x80000000\n  s_lshr_b32 s40, s8, 31", 1, 1),
        ("s_mov_b32 s8, 0x80000001\n  s_lshl_b32 s40, s8, 1", 2, 1),
        ("s_mov_b32 s8, -5\n  s_abs_i32 s40, s8", 5, 1),
        ("s_mov_b32 s8, -5\n  s_min_i32 s40, s8, 3", (-5) & M32, 1),
        ("s_mov_b32 s8, -5\n  s_min_u32 s40, s8, 3", 3, 0),
        ("s_mov_b32 s8, -5\n  s_max_i32 s40, s8, 3", 3, 0),
        ("s_mov_b32 s8, 0x12345678\n  s_mov_b32 s9, 0x9abcdef1\n  s_mul_hi_u32 s40, s8, s9",
         (0x12345678 * 0x9abcdef1) >> 32, None),
        ("s_mov_b32 s8, -3\n  s_mov_b32 s9, 0x40000001\n  s_mul_hi_i32 s40, s8, s9",
         ((-3 * 0x40000001) >> 32) & M32, None),
        ("s_mov_b32 s8, -3\n  s_mul_i32 s40, s8, 7", (-21) & M32, None),
        ("s_movk_i32 s40, 0x8000", 0xFFFF8000, None),
        ("s_mov_b32 s40, 10\n  s_addk_i32 s40, 0xfff0", (10 - 16) & M32, 0),
        ("s_mov_b32 s8, 0xf0f0\n  s_bfe_u32 s40, s8, (8 << 16) | 4", 0x0F, 1),
        ("s_mov_b32 s8, -1\n  s_cmp_lt_i32 s8, 0\n  s_cselect_b32 s40, 11, 22", 11, None),
        ("s_mov_b32 s8, -1\n  s_cmp_lt_u32 s8, 0\n  s_cselect_b32 s40, 11, 22", 22, None),
        ("s_mov_b32 s8, 4\n  s_cmp_ge_u32 s8, 4\n  s_cselect_b32 s40, 1, 2", 1, None),
        ("s_mov_b32 s8, 4\n  s_cmp_lg_u32 s8, 4\n  s_cselect_b32 s40, 1, 2", 2, None),
        ("s_mov_b64 s[8:9], 0x80000000\n  s_lshl_b64 s[40:41], s[8:9], 1", 0, 1),  # low word of 2^32
        ("s_mov_b32 s8, 0xff00ff00\n  s_xor_b32 s40, s8, 0xff00ff00", 0, 0),
        ("s_mov_b32 s8, 1\n  s_brev_b32 s40, s8", 0x80000000, None),
        ("s_mov_b32 s8, 0x80000000\n  s_sub_i32 s40, s8, 1", 0x7FFFFFFF, 1),
        ("s_mov_b32 s8, 5\n  s_sub_i32 s40, s8, 7", (-2) & M32, 0),
        ("s_mov_b32 s8, -3\n  s_cmp_ge_i32 s8, -3\n  s_cselect_b32 s40, 1, 2", 1, None),
        ("s_mov_b32 s8, -3\n  s_cmp_ge_i32 s8, 0\n  s_cselect_b32 s40, 1, 2", 2, None),
        ("s_mov_b32 s8, 0xf0\n  s_and_b32 s40, s8, 0x0f", 0, 0),
        ("s_mov_b64 s[8:9], -1\n  s_mov_b32 s10, 0\n  s_mov_b32 s11, 1\n  s_and_b64 s[40:41], s[8:9], s[10:11]", 0, 1),
        ("s_load_dwordx8 s[56:63], s[0:1], 0x0\n  s_waitcnt lgkmcnt(0)\n  s_mov_b32 s40, s61", 256, None),
        ("s_mov_b32 s8, 0xf00\n  s_mov_b32 s9, 0\n  s_bfe_i64 s[40:41], s[8:9], (4 << 16) | 8", M32, 1),
        ("s_mov_b32 s8, 0xf00\n  s_mov_b32 s9, 0\n  s_bfe_i64 s[40:41], s[8:9], (4 << 16) | 8\n"
         "  s_mov_b32 s40, s41", M32, None),                                    # sign-extended into the high word
        ("s_mov_b32 s8, 0xf00\n  s_mov_b32 s9, 0\n  s_bfe_u64 s[40:41], s[8:9], (4 << 16) | 8", 0xF, 1),
        ("s_mov_b64 s[40:41], src_shared_base\n  s_mov_b32 s40, s40", 0, None),  # the aperture's low word
    ]
    body = ""
    for r, (asm, _, scc) in enumerate(cases):
        body += f"  {asm}\n" + store_srow("s40", 2 * r)
        if scc is not None:
            body += "  s_cselect_b32 s41, 1, 0\n" + store_srow("s41", 2 * r + 1)
    co = assemble(body, tmp_path)
    out, rep = launch(co, out_words=64 * 2 * len(cases))
    res = rows(out, 2 * len(cases))
    assert rep.ok, rep.summary()
    for r, (asm, want, scc) in enumerate(cases):
        assert (res[2 * r] == want).all(), f"{asm}: got 0x{int(res[2 * r][0]):x}, want 0x{want:x}"
        if scc is not None:
            assert (res[2 * r + 1] == scc).all(), f"{asm}: SCC {int(res[2 * r + 1][0])}, want {scc}"


def test_salu_64bit_pair_and_saveexec(tmp_path):
    body = """
  s_mov_b64 s[8:9], -1
  s_add_u32 s10, s8, 1
  s_addc_u32 s11, s9, 0
  s_mov_b64 s[24:25], exec
  s_mov_b32 s26, 0x0000ffff
  s_mov_b32 s27, 0
  s_and_saveexec_b64 s[28:29], s[26:27]
  s_cselect_b32 s40, 1, 0
  s_mov_b64 s[42:43], exec
  s_mov_b64 exec, s[28:29]
""" + store_srow("s10", 0) + store_srow("s11", 1) + store_srow("s40", 2) + store_srow("s42", 3) + \
        store_srow("s43", 4) + store_srow("s28", 5)
    co = assemble(body, tmp_path)
    out, rep = launch(co, out_words=64 * 6)
    r = rows(out, 6)
    assert rep.ok, rep.summary()
    assert (r[0] == 0).all() and (r[1] == 0).all()      # 0xffffffff_ffffffff + 1 wraps through the carry
    assert (r[2] == 1).all()                            # SCC = EXEC != 0
    assert (r[3] == 0xFFFF).all() and (r[4] == 0).all()  # EXEC = S0 & EXEC
    assert (r[5] == M32).all()                          # the saved EXEC


# --------------------------------------------------------------------------------------------------------- VALU
def _valu_inputs(rng):
    a = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    c = rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32)
    a[:4] = [0, 0xFFFFFFFF, 0x80000000, 7]
    b[:4] = [0, 1, 0x80000000, 0xFFFFFFF9]
    return a, b, c


LOAD3 = """
  buffer_load_dword v10, v1, s[20:23], 0 offen
  buffer_load_dword v11, v1, s[20:23], 0 offen offset:256
  buffer_load_dword v12, v1, s[20:23], 0 offen offset:512
  s_waitcnt vmcnt(0)
"""


def test_valu_integer_ops_against_pseudocode(tmp_path):
    rng = np.random.default_rng()
    a, b, c = _valu_inputs(rng)
    A, B, C = (x.astype(np.uint64) for x in (a, b, c))
    i32 = lambda x: x.astype(np.uint32).view(np.int32).astype(np.int64)  # noqa: E731
    m = np.uint64(M32)
    ops = [  # (asm writing v20, expected uint32 per lane)
        ("v_add_u32_e32 v20, v10, v11", (A + B) & m),
        ("v_or_b32_e32 v20, v10, v11", A | B),
        ("v_sub_u32_e32 v20, v10, v11", (A - B) & m),
        ("v_add_co_u32_e32 v20, vcc, v10, v11\n  v_cndmask_b32_e64 v20, 0, 1, vcc", (A + B) >> np.uint64(32)),
        ("v_sub_co_u32_e32 v20, vcc, v10, v11\n  v_cndmask_b32_e64 v20, 0, 1, vcc", (B > A).astype(np.uint64)),
        ("v_add_co_u32_e64 v21, s[40:41], v10, v11\n  v_addc_co_u32_e64 v20, s[42:43], 0, 0, s[40:41]",
         (A + B) >> np.uint64(32)),
        ("v_mul_lo_u32 v20, v10, v11", (A * B) & m),
        ("v_mul_hi_u32 v20, v10, v11", (A * B) >> np.uint64(32)),
        ("v_lshlrev_b32_e32 v20, v11, v10", (A << (B & np.uint64(31))) & m),
        ("v_lshrrev_b32_e32 v20, v11, v10", A >> (B & np.uint64(31))),
        ("v_ashrrev_i32_e32 v20, v11, v10", (i32(a) >> (B & np.uint64(31)).astype(np.int64)).astype(np.uint64) & m),
        ("v_bfe_u32 v20, v10, v11, v12",
         (A >> (B & np.uint64(31))) & ((np.uint64(1) << (C & np.uint64(31))) - np.uint64(1))),
        ("v_add3_u32 v20, v10, v11, v12", (A + B + C) & m),
        ("v_lshl_add_u32 v20, v10, 3, v12", ((A << np.uint64(3)) + C) & m),
        ("v_add_lshl_u32 v20, v10, v11, 2", ((A + B) << np.uint64(2)) & m),
        ("v_lshl_or_b32 v20, v10, 5, v12", ((A << np.uint64(5)) & m) | C),
        ("v_bfrev_b32_e32 v20, v10", np.array([int(f"{int(x):032b}"[::-1], 2) for x in a], np.uint64)),
        ("v_bitop3_b32 v20, v10, v11, v12 bitop3:0x96", A ^ B ^ C),               # 0x96: odd parity
        ("v_bitop3_b32 v20, v10, v11, v12 bitop3:0xe8", (A & B) | (A & C) | (B & C)),  # 0xe8: majority
        ("v_max_i32_e32 v20, v10, v11", np.maximum(i32(a), i32(b)).astype(np.uint64) & m),
        ("v_mul_hi_i32 v20, v10, v11", ((i32(a) * i32(b)) >> 32).astype(np.uint64) & m),
        ("v_med3_i32 v20, v10, v11, v12",
         np.median(np.stack([i32(a), i32(b), i32(c)]), 0).astype(np.int64).astype(np.uint64) & m),
        ("v_med3_u32 v20, v10, v11, v12", np.median(np.stack([A, B, C]).astype(np.float64), 0).astype(np.uint64)),
        ("v_alignbit_b32 v20, v10, v11, v12", (((A << np.uint64(32)) | B) >> (C & np.uint64(31))) & m),
        ("v_alignbyte_b32 v20, v10, v11, v12", (((A << np.uint64(32)) | B) >> (np.uint64(8) * (C & np.uint64(3)))) & m),
        ("v_bfm_b32 v20, v10, v11",
         (((np.uint64(1) << (A & np.uint64(31))) - np.uint64(1)) << (B & np.uint64(31))) & m),
        ("v_mul_hi_u32_u24_e32 v20, v10, v11",
         ((A & np.uint64(0xFFFFFF)) * (B & np.uint64(0xFFFFFF))) >> np.uint64(32)),
        ("v_mbcnt_lo_u32_b32 v20, v10, 0",
         np.array([bin(int(x) & ((1 << min(lane, 32)) - 1)).count("1") for lane, x in enumerate(a)])),
        ("v_min_u32_e32 v20, v10, v11", np.minimum(A, B)),
        ("v_cmp_gt_i32_e32 vcc, v10, v11\n  v_cndmask_b32_e32 v20, v12, v11, vcc", np.where(i32(a) > i32(b), B, C)),
        ("v_cmp_gt_u32_e64 s[40:41], v10, v11\n  v_cndmask_b32_e64 v20, v12, v11, s[40:41]", np.where(A > B, B, C)),
        ("v_cmp_lt_i32_e32 vcc, 0, v10\n  v_cndmask_b32_e64 v20, 0, 1, vcc", (i32(a) > 0).astype(np.uint64)),
        ("v_readfirstlane_b32 s40, v10\n  v_mov_b32 v20, s40", np.full(64, A[0])),
        ("v_mov_b32 v20, v11\n  s_mov_b64 s[40:41], exec\n  s_mov_b32 exec_lo, 0xf0f0f0f0\n  s_mov_b32 exec_hi, 0\n"
         "  v_readfirstlane_b32 s42, v10\n  v_mov_b32 v20, s42\n  s_mov_b64 exec, s[40:41]",
         np.where(np.arange(64) < 32, np.where((0xF0F0F0F0 >> np.arange(64) % 32) & 1, A[4], B), B)),
    ]
    body = LOAD3
    for r, (asm, _) in enumerate(ops):
        body += f"  {asm}\n" + store_row("v20", r)
    co = assemble(body, tmp_path)
    out, rep = launch(co, np.concatenate([a, b, c]), out_words=64 * len(ops))
    res = rows(out, len(ops))
    assert rep.ok, rep.summary()
    for r, (asm, want) in enumerate(ops):
        want = np.asarray(want, np.uint64).astype(np.uint32)
        bad = np.nonzero(res[r] != want)[0]
        assert not bad.size, f"`{asm}` lane {bad[0]}: a=0x{int(a[bad[0]]):x} b=0x{int(b[bad[0]]):x} " \
                             f"c=0x{int(c[bad[0]]):x}: got 0x{int(res[r][bad[0]]):x}, want 0x{int(want[bad[0]]):x}"


def _bf16_rne(x: np.ndarray) -> np.ndarray:
    """Reference f32 -> bf16 round to nearest even, by exact rational arithmetic on the float64 values."""
    out = []
    for v in np.asarray(x, np.float32):
        u = int(np.float32(v).view(np.uint32))
        if np.isnan(v):
            out.append(((u >> 16) | 0x40) & 0xFFFF)
            continue
        lo, hi = u >> 16, (u >> 16) + 1
        def f(h):  # the bf16 value of bit pattern h; the pattern past the largest finite counts as 2^128 (IEEE)
            if (h & 0x7FFF) == 0x7F80:
                return float(2.0 ** 128) * (-1 if h & 0x8000 else 1)
            return float(np.uint32(h << 16).view(np.float32))
        if np.isinf(v):
            out.append(lo & 0xFFFF)
            continue
        d_lo, d_hi = abs(float(v) - f(lo)), abs(f(hi) - float(v))
        if d_lo < d_hi or (d_lo == d_hi and lo % 2 == 0):
            out.append(lo & 0xFFFF)
        else:
            out.append(hi & 0xFFFF)
    return np.array(out, np.uint32)


def test_valu_float_and_conversions(tmp_path):
    rng = np.random.default_rng()
    x = (rng.standard_normal(64) * 1000).astype(np.float32)
    y = (rng.standard_normal(64) * 3).astype(np.float32)
    # bf16 rounding corner cases: exact ties (even / odd), above/below a tie, NaN, inf, -0, max finite
    x[:8] = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0x7FC00001, 0x7F800000, 0x80000000,
                      0x7F7FFFFF], np.uint32).view(np.float32)
    y[:6] = [-1.5, 0.0, 4.0e9, -2.0, np.nan, 3.7]
    z = np.arange(64, dtype=np.uint32) * np.uint32(0x1234567)
    u32 = lambda v: np.asarray(v, np.float32).view(np.uint32)  # noqa: E731
    with np.errstate(all="ignore"):
        cvt_u = np.where(np.isnan(y), 0, np.clip(np.trunc(y.astype(np.float64)), 0, 2**32 - 1)).astype(np.uint32)
        ops = [
            ("v_mul_f32_e32 v20, v10, v11", u32(x * y)),
            ("v_add_f32_e32 v20, v10, v11", u32(x + y)),
            ("v_sub_f32_e64 v20, v10, -v11", u32(x + y)),          # a VOP3 neg source modifier
            ("v_mul_f32_e64 v20, |v10|, v11", u32(np.abs(x) * y)),  # a VOP3 abs source modifier
            ("v_fma_f32 v20, v10, v11, 1.0", u32((x.astype(np.float64) * y + 1.0).astype(np.float32))),
            ("v_cvt_u32_f32_e32 v20, v11", cvt_u),
            ("v_cvt_f32_u32_e32 v20, v12", u32(z.astype(np.float32))),
            ("v_cvt_pk_bf16_f32 v20, v10, v11", _bf16_rne(x) | (_bf16_rne(y) << np.uint32(16))),
            ("v_rcp_iflag_f32_e32 v20, v11", u32(np.float32(1) / y)),
        ]
    body = LOAD3
    for r, (asm, _) in enumerate(ops):
        body += f"  {asm}\n" + store_row("v20", r)
    co = assemble(body, tmp_path)
    out, rep = launch(co, np.concatenate([u32(x), u32(y), z]), out_words=64 * len(ops))
    res = rows(out, len(ops))
    assert rep.ok, rep.summary()
    for r, (asm, want) in enumerate(ops):
        bad = np.nonzero(res[r] != want)[0]
        assert not bad.size, f"`{asm}` lane {bad[0]}: x={x[bad[0]]!r} y={y[bad[0]]!r}: got 0x{int(res[r][bad[0]]):x}," \
                             f" want 0x{int(want[bad[0]]):x}"


def test_exec_masking_and_initial_state(tmp_path):
    """VALU writes only EXEC lanes; v0 holds the packed work-item ids (x | y << 10 | z << 20); s2 the group id."""
    body = """
  v_mov_b32 v20, 7
  s_mov_b64 s[40:41], exec
  s_mov_b32 exec_lo, 0x5555aaaa
  s_mov_b32 exec_hi, 0x1
  v_mov_b32 v20, 9
  s_mov_b64 exec, s[40:41]
  v_mov_b32 v21, s2
""" + store_row("v20", 0) + store_row("v0", 1) + store_row("v21", 2)
    co = assemble(body, tmp_path, vid=2)
    out, rep = launch(co, block=(4, 4, 4), grid=(3, 1, 1), workgroups=[(2, 0, 0)])
    r = rows(out, 3)
    mask = np.array([(0x5555AAAA | (1 << 32)) >> i & 1 for i in range(64)], bool)
    assert (r[0] == np.where(mask, 9, 7)).all()
    t = np.arange(64)
    assert (r[1] == (t % 4) | ((t // 4) % 4) << 10 | (t // 16) << 20).all()
    assert (r[2] == 2).all()
    assert rep.ok and rep.workgroups == 1


def test_valu_64bit_and_wide_multiply(tmp_path):
    """64-bit moves/compares/shifts (a 32-bit literal in a 64-bit operand is zero-extended) and v_mad_u64_u32."""
    rng = np.random.default_rng()
    a, b, c = _valu_inputs(rng)
    A, B, C = (x.astype(np.uint64) for x in (a, b, c))
    m = np.uint64(M32)
    body = LOAD3 + """
  v_mov_b64_e32 v[20:21], 0x80000000
  v_mov_b32 v22, v10
  v_mov_b32 v23, v11
  v_cmp_lt_u64_e32 vcc, v[22:23], v[20:21]
  v_cndmask_b32_e64 v24, 0, 1, vcc
  v_lshlrev_b64 v[26:27], 3, v[22:23]
  v_mad_u64_u32 v[28:29], s[40:41], v10, v11, v[22:23]
  v_mov_b32 v30, s40
  v_mov_b32 v31, s41
""" + "".join(store_row(f"v{r}", i) for i, r in enumerate((20, 21, 24, 26, 27, 28, 29)))
    co = assemble(body, tmp_path)
    out, rep = launch(co, np.concatenate([a, b, c]), out_words=64 * 7)
    r = rows(out, 7)
    assert rep.ok, rep.summary()
    x = A | (B << np.uint64(32))
    assert (r[0] == 0x80000000).all() and (r[1] == 0).all()
    assert (r[2] == (x < np.uint64(0x80000000))).all()
    sh = x << np.uint64(3)
    assert (r[3] == (sh & m)).all() and (r[4] == (sh >> np.uint64(32))).all()
    full = [int(p) * int(q) + int(z) for p, q, z in zip(a, b, x)]
    assert (r[5] == np.array([f & M32 for f in full], np.uint32)).all()
    assert (r[6] == np.array([(f >> 32) & M32 for f in full], np.uint32)).all()


def test_branches_and_loops(tmp_path):
    """A counted SALU loop (s_cbranch_scc0 back), a VCC-conditional skip and an EXEC-zero skip."""
    body = """
  s_mov_b32 s40, 0
  s_mov_b32 s41, 5
.Lloop:
  s_add_i32 s40, s40, s41
  s_sub_u32 s41, s41, 1
  s_cmp_eq_u32 s41, 0
  s_cbranch_scc0 .Lloop
  v_mov_b32 v20, s40
  v_cmp_gt_u32_e32 vcc, 100, v0
  s_cbranch_vccnz .Lskip
  v_mov_b32 v20, 999
.Lskip:
  s_mov_b64 s[42:43], exec
  v_cmp_gt_u32_e32 vcc, 0, v0
  s_and_saveexec_b64 s[44:45], vcc
  s_cbranch_execz .Lnone
  v_mov_b32 v20, 777
.Lnone:
  s_mov_b64 exec, s[42:43]
""" + store_row("v20", 0)
    co = assemble(body, tmp_path)
    out, rep = launch(co)
    assert rep.ok, rep.summary()
    assert (rows(out, 1)[0] == 15).all()


# --------------------------------------------------------------------------------------------------------- memory
def test_buffer_loads_and_stores_range_checked(tmp_path):
    """num_records bounds a raw buffer: out-of-range loads read 0, out-of-range stores are dropped (the poison
    past the range survives), per dword for the x4 form."""
    body = """
  buffer_load_dword v20, v1, s[20:23], 0 offen
  v_lshlrev_b32 v2, 4, v0
  buffer_load_dwordx4 v[24:27], v2, s[20:23], 0 offen
  s_waitcnt vmcnt(0)
""" + store_row("v20", 0) + "".join(store_row(f"v{24 + k}", 1 + k) for k in range(4)) + """
  v_add_u32 v30, 1000, v0
  v_add_u32 v32, 0x500, v1
  buffer_store_dword v30, v32, s[16:19], 0 offen
  buffer_store_short v30, v1, s[16:19], 0 offen offset:0x600
  v_lshlrev_b32 v31, 16, v30
  buffer_store_short_d16_hi v31, v1, s[16:19], 0 offen offset:0x702
"""
    co = assemble(body, tmp_path)
    inp = np.arange(1, 257, dtype=np.uint32)
    out, rep = launch(co, inp, out_words=64 * 8, in_records=100 * 4)  # only dwords 0..99 of `in` are in range
    r = rows(out, 8)
    assert rep.ok, rep.summary()
    assert (r[0] == np.where(np.arange(64) < 100, inp[:64], 0)).all()
    for k in range(4):
        idx = np.arange(64) * 4 + k
        assert (r[1 + k] == np.where(idx < 100, inp[idx % 256], 0)).all(), k
    t = np.arange(64)
    assert (r[5] == 1000 + t).all()
    # the short stores: the low half written, the high half keeps its poison; d16_hi stores bits 31:16
    assert (r[6] == (np.uint32(POISON) & np.uint32(0xFFFF0000)) | (1000 + t)).all()
    assert (r[7] == (np.uint32(POISON) & np.uint32(0xFFFF)) | ((1000 + t) << 16)).all()
    # out of range: num_records 0x520 keeps lanes 0..7 of row 5 and drops every short store; rows 0..4, stored
    # with v1 (< 0x100) as the checked offset and the row in soffset (not range-checked), all land
    out2, rep2 = launch(co, inp, out_words=64 * 8, in_records=100 * 4, out_records=0x520)
    r2 = rows(out2, 8)
    assert rep2.ok, rep2.summary()
    assert (r2[5] == np.where(t < 8, 1000 + t, POISON)).all()
    assert (r2[6] == POISON).all() and (r2[7] == POISON).all()
    assert (r2[:5] == r[:5]).all()
    out3, _ = launch(co, inp, out_words=64 * 8, in_records=100 * 4, out_records=0x100)
    assert (rows(out3, 8)[:5] == r[:5]).all() and (rows(out3, 8)[5:] == POISON).all()


def test_access_outside_every_allocation_is_a_fault(tmp_path):
    """A resource whose num_records reaches past its allocation: the in-range lanes past the allocation fault
    (reported, read as 0) instead of reading a neighbour."""
    body = """
  v_lshlrev_b32 v2, 8, v0
  buffer_load_dword v20, v2, s[20:23], 0 offen
  s_waitcnt vmcnt(0)
""" + store_row("v20", 0)
    co = assemble(body, tmp_path)
    inp = np.arange(1, 65, dtype=np.uint32)            # 256 bytes: lane l reads byte 256 l, so lanes 1.. fault
    out, rep = launch(co, inp, in_records=1 << 20)
    assert [h.kind for h in rep.hazards] == ["global-fault"], rep.summary()
    assert (rows(out, 1)[0] == np.where(np.arange(64) == 0, 1, 0)).all()


def test_global_loads_stores_and_lds_dma(tmp_path):
    """GLOBAL_* forms: saddr + 32-bit VGPR offset, and the 64-bit VGPR address (saddr off), offset applied;
    global_load_lds_dwordx4 to M0 + 16 l; global_store_dword."""
    body = """
  v_lshlrev_b32 v2, 4, v0
  global_load_dwordx4 v[24:27], v2, s[6:7] offset:16
  v_mov_b32 v4, s6
  v_mov_b32 v5, s7
  v_lshlrev_b32 v6, 2, v0
  v_add_co_u32 v4, vcc, v4, v6
  v_addc_co_u32 v5, vcc, v5, 0, vcc
  global_load_dword v28, v[4:5], off
  s_movk_i32 m0, 0x0
  global_load_lds_dwordx4 v2, s[6:7]
  s_waitcnt vmcnt(0)
  ds_read_b128 v[32:35], v2
  s_waitcnt lgkmcnt(0)
  v_mov_b32 v8, s4
  v_mov_b32 v9, s5
  v_add_co_u32 v8, vcc, v8, v6
  v_addc_co_u32 v9, vcc, v9, 0, vcc
  global_store_dword v[8:9], v28, off offset:2048
""" + "".join(store_row(f"v{24 + k}", k) for k in range(4)) + "".join(store_row(f"v{32 + k}", 4 + k) for k in range(4))
    co = assemble(body, tmp_path, lds=1024)
    inp = np.arange(300, dtype=np.uint32) * 7 + 3
    out, rep = launch(co, inp, out_words=64 * 9)
    r = rows(out, 9)
    assert rep.ok, rep.summary()
    t = np.arange(64)
    for k in range(4):
        assert (r[k] == inp[4 * t + 4 + k]).all(), k          # 16 l + 16 bytes, dword k
        assert (r[4 + k] == inp[4 * t + k]).all(), k
    assert (r[8] == inp[t]).all()                             # the dword at 4 l, stored at out + 2048 + 4 l


def test_lds_dma_and_ds_read_b128(tmp_path):
    """buffer_load_dwordx4 ... lds writes lane l's 16 bytes at M0 + 16 l; ds_read_b128 reads them back at a
    permuted address; an out-of-range DMA lane writes zeros."""
    body = """
  v_lshlrev_b32 v2, 4, v0
  s_movk_i32 m0, 0x400
  buffer_load_dwordx4 v2, s[20:23], 0 offen lds
  s_waitcnt vmcnt(0)
  v_xor_b32 v3, 63, v0
  v_lshlrev_b32 v3, 4, v3
  ds_read_b128 v[24:27], v3 offset:1024
  s_waitcnt lgkmcnt(0)
""" + "".join(store_row(f"v{24 + k}", k) for k in range(4))
    co = assemble(body, tmp_path, lds=4096)
    inp = np.arange(256, dtype=np.uint32) * 3 + 1
    out, rep = launch(co, inp, out_words=64 * 4, in_records=200 * 4)
    r = rows(out, 4)
    assert rep.ok, rep.summary()
    src_lane = 63 - np.arange(64)
    for k in range(4):
        idx = src_lane * 4 + k
        assert (r[k] == np.where(idx < 200, inp[idx], 0)).all(), k


def test_ds_write_and_read_widths(tmp_path):
    """ds_write_b32/b64/b128/b16 and ds_read_b32/b64/u16/i16 at offsets, through one wave's in-order LDS pipe (no
    wait between a write and a read of the same bytes is needed within a wave)."""
    body = LOAD3 + """
  v_lshlrev_b32 v2, 4, v0
  v_mov_b32 v13, v11
  v_mov_b32 v14, v12
  v_mov_b32 v15, v10
  ds_write_b128 v2, v[12:15]
  ds_write_b64 v2, v[10:11] offset:1024
  ds_write_b32 v2, v12 offset:2048
  ds_write_b16 v2, v11 offset:2052
  ds_read_b64 v[20:21], v2 offset:8
  ds_read_b32 v22, v2 offset:1028
  ds_read_u16 v23, v2 offset:2050
  ds_read_i16 v24, v2 offset:2052
  ds_read_b128 v[26:29], v2
  s_waitcnt lgkmcnt(0)
""" + "".join(store_row(f"v{r}", i) for i, r in enumerate((20, 21, 22, 23, 24, 26, 29)))
    co = assemble(body, tmp_path, lds=4096)
    rng = np.random.default_rng()
    a, b, c = _valu_inputs(rng)
    for seed in range(3):
        out, rep = launch(co, np.concatenate([a, b, c]), out_words=64 * 7, seed=seed)
        r = rows(out, 7)
        assert rep.ok, rep.summary()
        # v[12:15] = (c, b, c, a): bytes 8..15 of the b128 write are v14, v15 = c, a
        assert (r[0] == c).all() and (r[1] == a).all()
        assert (r[2] == b).all()                                        # high dword of the b64 write
        assert (r[3] == (c >> np.uint32(16))).all()                     # upper half of the b32 write at 2048
        assert (r[4] == ((b & np.uint32(0xFFFF)).astype(np.int16).astype(np.int32).view(np.uint32))).all()
        assert (r[5] == c).all() and (r[6] == a).all()


def test_lds_dma_dword_and_byte_lane_strides(tmp_path):
    """DMA sizes up to a dword put lane l at M0 + offset + 4 l, dwordx3 at M0 + 16 l (LLVM's AMDGPU DMA
    documentation)."""
    body = """
  v_lshlrev_b32 v2, 4, v0
  s_movk_i32 m0, 0x0
  buffer_load_dword v1, s[20:23], 0 offen lds
  s_movk_i32 m0, 0x100
  buffer_load_ushort v1, s[20:23], 0 offen offset:2 lds
  s_movk_i32 m0, 0x200
  buffer_load_dwordx3 v2, s[20:23], 0 offen lds
  s_waitcnt vmcnt(0)
  ds_read_b32 v20, v1
  ds_read_b32 v21, v1 offset:256
  ds_read_b128 v[24:27], v2 offset:512
  s_waitcnt lgkmcnt(0)
""" + store_row("v20", 0) + store_row("v21", 1) + "".join(store_row(f"v{24 + k}", 2 + k) for k in range(4))
    co = assemble(body, tmp_path, lds=2048)
    inp = (np.arange(256, dtype=np.uint32) * 0x01010101 + 0x10203) & np.uint32(M32)
    out, rep = launch(co, inp, out_words=64 * 6)
    r = rows(out, 6)
    assert rep.ok, rep.summary()
    t = np.arange(64)
    assert (r[0] == inp[t]).all()
    # the ushort at byte 4 l + 2 of `in` (its high half) lands at LDS 0x100 + 2 + 4 l: the offset applies to
    # both addresses, so it is the high half of LDS dword 0x100 / 4 + l
    assert (r[1] == inp[t] & np.uint32(0xFFFF0000)).all()
    for k in range(3):
        assert (r[2 + k] == inp[4 * t + k]).all(), k
    assert (r[5] == 0).all()                        # the 16-byte lane slot's 4th dword is not written


def test_lds_bounds_are_checked(tmp_path):
    body = """
  v_lshlrev_b32 v2, 4, v0
  ds_read_b128 v[24:27], v2
  s_waitcnt lgkmcnt(0)
"""
    co = assemble(body, tmp_path, lds=512)  # lanes 32.. read past the 512-byte allocation
    _, rep = launch(co)
    assert [h.kind for h in rep.hazards] == ["lds-out-of-bounds"], rep.summary()


def test_mfma_16x16x32_bf16_against_numpy(tmp_path):
    """A (16x32) and B (32x16) bf16, C (16x16) f32 in the register layout of AMD's matrix instruction calculator
    (lane l of A holds A[l % 16][8 (l // 16) .. +7]; of B, B[8 (l // 16) .. +7][l % 16]; D[i][j] is register
    i % 4 of lane 16 (i // 4) + j), against a float64 matmul (bound: fp32 rounding of the sum)."""
    rng = np.random.default_rng()
    A = _to_bf16(rng.standard_normal((16, 32)))
    B = _to_bf16(rng.standard_normal((32, 16)))
    C = rng.standard_normal((16, 16)).astype(np.float32)
    l = np.arange(64)
    a_lane = np.stack([A[l % 16, 8 * (l // 16) + e] for e in range(8)], 1)   # (64, 8) bf16 bits
    b_lane = np.stack([B[8 * (l // 16) + e, l % 16] for e in range(8)], 1)
    c_reg = np.stack([C[4 * (l // 16) + r, l % 16] for r in range(4)], 0)    # (4, 64)
    inp = np.concatenate([a_lane.astype(np.uint16).view(np.uint32).reshape(64, 4).T.reshape(-1),
                          b_lane.astype(np.uint16).view(np.uint32).reshape(64, 4).T.reshape(-1),
                          c_reg.view(np.uint32).reshape(-1)])
    body = "".join(f"  buffer_load_dword v{40 + k}, v1, s[20:23], 0 offen offset:{256 * k}\n" for k in range(12)) + """
  s_waitcnt vmcnt(0)
  v_mfma_f32_16x16x32_bf16 v[60:63], v[40:43], v[44:47], v[48:51]
  v_mfma_f32_16x16x32_bf16 a[0:3], v[40:43], v[44:47], 0
  s_nop 7
  s_nop 7
""" + "".join(store_row(f"v{60 + r}", r) for r in range(4)) + \
        "".join(f"  v_accvgpr_read_b32 v{64 + r}, a{r}\n" + store_row(f"v{64 + r}", 4 + r) for r in range(4))
    co = assemble(body, tmp_path)
    out, rep = launch(co, inp, out_words=64 * 8)
    assert rep.ok, rep.summary()
    D = rows(out, 4).view(np.float32)
    D0 = rows(out, 8)[4:].view(np.float32)      # the same product into AGPRs with C = 0
    got0 = np.stack([D0[i % 4, 16 * (i // 4) + np.arange(16)] for i in range(16)])
    ref0 = _bf16_f64(A) @ _bf16_f64(B)
    assert (np.abs(got0 - ref0) <= 32 * 2.0 ** -24 * (np.abs(_bf16_f64(A)) @ np.abs(_bf16_f64(B))) + 1e-30).all()
    got = np.stack([D[i % 4, 16 * (i // 4) + np.arange(16)] for i in range(16)])
    ref = _bf16_f64(A) @ _bf16_f64(B) + C.astype(np.float64)
    bound = 32 * 2.0 ** -24 * (np.abs(_bf16_f64(A)) @ np.abs(_bf16_f64(B)) + np.abs(C)) + 1e-30
    assert (np.abs(got - ref) <= bound).all(), np.abs(got - ref).max()
    # a transposed read of the layout must fail the same check (the test can tell the layouts apart)
    assert not (np.abs(got.T - ref) <= bound).all()


def test_mfma_32x32x16_bf16_against_numpy(tmp_path):
    """The 32x32x16 member of the family, by the calculator's formula: lane l of A holds A[l % 32][8 (l // 32) ..
    +7]; D[i][j] is register 4 (i // 8) + i % 4 of lane 32 ((i // 4) % 2) + j."""
    rng = np.random.default_rng()
    A = _to_bf16(rng.standard_normal((32, 16)))
    B = _to_bf16(rng.standard_normal((16, 32)))
    lane = np.arange(64)
    a_lane = np.stack([A[lane % 32, 8 * (lane // 32) + e] for e in range(8)], 1)
    b_lane = np.stack([B[8 * (lane // 32) + e, lane % 32] for e in range(8)], 1)
    inp = np.concatenate([a_lane.astype(np.uint16).view(np.uint32).reshape(64, 4).T.reshape(-1),
                          b_lane.astype(np.uint16).view(np.uint32).reshape(64, 4).T.reshape(-1)])
    body = "".join(f"  buffer_load_dword v{40 + k}, v1, s[20:23], 0 offen offset:{256 * k}\n" for k in range(8)) + """
  s_waitcnt vmcnt(0)
  v_mfma_f32_32x32x16_bf16 v[64:79], v[40:43], v[44:47], 0
  s_nop 7
  s_nop 7
  s_nop 7
""" + "".join(store_row(f"v{64 + r}", r) for r in range(16))
    co = assemble(body, tmp_path)
    out, rep = launch(co, inp, out_words=64 * 16)
    assert rep.ok, rep.summary()
    D = rows(out, 16).view(np.float32)
    got = np.stack([D[4 * (i // 8) + i % 4, 32 * ((i // 4) % 2) + np.arange(32)] for i in range(32)])
    a, b = _bf16_f64(A), _bf16_f64(B)
    assert (np.abs(got - a @ b) <= 16 * 2.0 ** -24 * (np.abs(a) @ np.abs(b)) + 1e-30).all()


def _to_bf16(x: np.ndarray) -> np.ndarray:
    u = np.asarray(x, np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def _bf16_f64(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)


# --------------------------------------------------------------------------------------------------------- timing
def test_waitcnt_missing_is_a_hazard_and_present_is_not(tmp_path):
    use = """
  buffer_load_dword v20, v1, s[20:23], 0 offen
  {wait}
  v_add_u32 v21, v20, 1
""" + store_row("v21", 0)
    co = assemble(use.format(wait=""), tmp_path)
    for seed in range(3):
        _, rep = launch(co, seed=seed)
        kinds = {h.kind for h in rep.hazards}
        assert kinds == {"reg-in-flight"}, rep.summary()
        h = rep.hazards[0]
        assert "v_add_u32" in h.instruction and "v20" in h.location and h.wave == 0
    co = assemble(use.format(wait="s_waitcnt vmcnt(0)"), tmp_path)
    for seed in range(3):
        out, rep = launch(co, np.arange(64, dtype=np.uint32), seed=seed)
        assert rep.ok, rep.summary()
        assert (rows(out, 1)[0] == np.arange(64) + 1).all()


def test_waitcnt_counts_from_the_newest(tmp_path):
    """vmcnt(1) after two loads covers the older one only: reading it is fine, reading the newer is a hazard."""
    body = """
  buffer_load_dword v20, v1, s[20:23], 0 offen
  buffer_load_dword v21, v1, s[20:23], 0 offen offset:256
  s_waitcnt vmcnt(1)
  v_mov_b32 v22, v20
  {extra}
  s_waitcnt vmcnt(0)
"""
    co = assemble(body.format(extra=""), tmp_path)
    assert all(launch(co, seed=s)[1].ok for s in range(4))
    co = assemble(body.format(extra="v_mov_b32 v23, v21"), tmp_path)
    for s in range(4):
        rep = launch(co, seed=s)[1]
        assert [h.kind for h in rep.hazards] == ["reg-in-flight"] and "v21" in rep.hazards[0].location


BARRIER_KERNEL = """
  v_lshrrev_b32 v3, 6, v0
  v_and_b32 v4, 63, v0
  v_lshlrev_b32 v5, 2, v4
  v_readfirstlane_b32 s40, v3
  s_cmp_eq_u32 s40, 0
  s_cbranch_scc0 .Lreader
  v_add_u32 v6, 100, v4
  ds_write_b32 v5, v6
  {wait}
.Lreader:
  {barrier}
  s_cmp_eq_u32 s40, 1
  s_cbranch_scc0 .Ldone
  ds_read_b32 v7, v5
  s_waitcnt lgkmcnt(0)
""" + store_row("v7", 0) + """
.Ldone:
"""


def test_barrier_orders_lds_between_waves(tmp_path):
    """Wave 0 writes LDS, waits, barriers; wave 1 reads after the barrier: right data for every seed."""
    co = assemble(BARRIER_KERNEL.format(wait="s_waitcnt lgkmcnt(0)", barrier="s_barrier"), tmp_path, lds=256)
    for seed in range(6):
        out, rep = launch(co, block=(128, 1, 1), seed=seed)
        assert rep.ok, rep.summary()
        assert (rows(out, 1)[0] == 100 + np.arange(64)).all(), seed


def test_starvation_shows_a_missing_barrier_that_bursts_hide(tmp_path):
    """The reader (wave 1) reads 1000 instructions after the start, the writer (wave 0) writes within its first
    ten, no barrier between: interleaved bursts never leave the writer that far behind, a starvation episode
    (Launch.starve; on by default for seeds with seed % 3 == 2) does for some seeds."""
    text = BARRIER_KERNEL.format(wait="s_waitcnt lgkmcnt(0)", barrier="")
    text = text.replace("  ds_read_b32 v7, v5\n", "  s_nop 0\n" * 1000 + "  ds_read_b32 v7, v5\n")
    co = assemble(text, tmp_path, lds=256)

    def stale(seed: int, starve: bool) -> bool:
        out, rep = launch(co, block=(128, 1, 1), seed=seed, starve=starve)
        return not (rows(out, 1)[0] == 100 + np.arange(64)).all()
    assert not any(stale(s, False) for s in range(6)), "bursts alone left the writer 1000 instructions behind"
    assert any(stale(s, True) for s in range(12)), "no starvation episode starved the writer past the read"


def test_missing_barrier_or_wait_shows(tmp_path):
    """Without the barrier some interleaving reads stale LDS; without the wait (complete_prob=0: the write
    stays in flight) the read is reported as a race."""
    co = assemble(BARRIER_KERNEL.format(wait="s_waitcnt lgkmcnt(0)", barrier=""), tmp_path, lds=256)
    wrong = 0
    for seed in range(12):
        out, rep = launch(co, block=(128, 1, 1), seed=seed)
        wrong += not (rows(out, 1)[0] == 100 + np.arange(64)).all()
    assert wrong, "no seed interleaved the reader before the writer"
    co = assemble(BARRIER_KERNEL.format(wait="", barrier="s_barrier"), tmp_path, lds=256)
    _, rep = launch(co, block=(128, 1, 1), complete_prob=0.0)
    assert [h.kind for h in rep.hazards] == ["lds-read-during-write"], rep.summary()
    assert rep.hazards[0].wave == 1 and "ds_read_b32" in rep.hazards[0].instruction


def test_dma_races_are_reported(tmp_path):
    """A DMA into LDS another wave is still reading (WAR), and a read of LDS a DMA is still filling (RAW)."""
    war = """
  v_lshrrev_b32 v3, 6, v0
  v_readfirstlane_b32 s40, v3
  v_and_b32 v4, 63, v0
  v_lshlrev_b32 v5, 2, v4
  s_cmp_eq_u32 s40, 1
  s_cbranch_scc0 .Lw
  ds_read_b32 v7, v5
.Lw:
  s_barrier
  s_cmp_eq_u32 s40, 0
  s_cbranch_scc0 .Ld
  s_mov_b32 m0, 0
  buffer_load_dword v1, s[20:23], 0 offen lds
  s_waitcnt vmcnt(0)
.Ld:
  s_waitcnt lgkmcnt(0)
"""
    co = assemble(war, tmp_path, lds=256)
    _, rep = launch(co, block=(128, 1, 1), complete_prob=0.0)
    assert [h.kind for h in rep.hazards] == ["lds-write-during-read"], rep.summary()
    assert rep.hazards[0].wave == 0 and "lds" in rep.hazards[0].instruction and "wave [1]" in rep.hazards[0].location
    raw = war.replace("  ds_read_b32 v7, v5\n", "  s_mov_b32 m0, 0\n  buffer_load_dword v1, s[20:23], 0 offen lds\n") \
             .replace("  s_mov_b32 m0, 0\n  buffer_load_dword v1, s[20:23], 0 offen lds\n  s_waitcnt vmcnt(0)\n.Ld:",
                      "  ds_read_b32 v7, v5\n.Ld:")
    co = assemble(raw, tmp_path, lds=256)
    _, rep = launch(co, block=(128, 1, 1), complete_prob=0.0)
    assert [h.kind for h in rep.hazards] == ["lds-read-during-write"], rep.summary()


def test_scalar_load_before_lgkmcnt_is_a_hazard(tmp_path):
    body = """
  s_load_dword s50, s[0:1], 0x10
  s_add_u32 s51, s50, 1
  s_waitcnt lgkmcnt(0)
"""
    co = assemble(body, tmp_path)
    _, rep = launch(co, complete_prob=0.0)
    assert [h.kind for h in rep.hazards] == ["reg-in-flight"] and "s50" in rep.hazards[0].location, rep.summary()


def test_scalar_loads_need_lgkmcnt_zero(tmp_path):
    """Scalar loads return out of order: lgkmcnt(1) after two of them covers neither."""
    body = """
  s_load_dword s50, s[0:1], 0x10
  s_load_dword s51, s[0:1], 0x14
  s_waitcnt lgkmcnt(1)
  s_mov_b32 s52, s50
  s_waitcnt lgkmcnt(0)
  s_mov_b32 s53, s51
"""
    co = assemble(body, tmp_path)
    _, rep = launch(co)
    assert [h.kind for h in rep.hazards] == ["reg-in-flight"] and "s50" in rep.hazards[0].location, rep.summary()


def test_same_seed_same_run(tmp_path):
    co = assemble(BARRIER_KERNEL.format(wait="s_waitcnt lgkmcnt(0)", barrier=""), tmp_path, lds=256)
    runs = [launch(co, block=(128, 1, 1), seed=s) for s in (5, 5, 6)]
    assert (runs[0][0] == runs[1][0]).all() and runs[0][1].hazards == runs[1][1].hazards
    assert runs[0][1].instructions == runs[1][1].instructions


def test_barrier_ignores_ended_waves(tmp_path):
    body = """
  v_lshrrev_b32 v3, 6, v0
  v_readfirstlane_b32 s40, v3
  s_cmp_eq_u32 s40, 0
  s_cbranch_scc1 .Lstay
  s_endpgm
.Lstay:
  s_barrier
  s_barrier
""" + store_row("v3", 0)
    co = assemble(body, tmp_path)
    for seed in range(4):
        out, rep = launch(co, block=(256, 1, 1), seed=seed)
        assert rep.ok and (rows(out, 1)[0] == 0).all()


# --------------------------------------------------------------------------------------------------------- errors
def test_unknown_instruction_is_an_error_naming_it(tmp_path):
    co = assemble("  v_sin_f32 v20, v10\n", tmp_path)
    with pytest.raises(UnknownInstructionError, match="v_sin_f32"):
        launch(co)
    assert "v_sin_f32" not in supported_opcodes()


def test_undecodable_form_fails_only_when_executed(tmp_path):
    """A DPP instruction is not modelled: a kernel that jumps over it runs; executing it raises, naming it."""
    dpp = "  v_add_u32_dpp v20, v10, v11 quad_perm:[1,0,3,2] row_mask:0xf bank_mask:0xf\n"
    co = assemble("  s_branch .Lover\n" + dpp + ".Lover:\n", tmp_path)
    assert launch(co)[1].ok
    co = assemble(dpp, tmp_path)
    with pytest.raises(UnknownInstructionError, match="v_add_u32_dpp"):
        launch(co)


def test_unsupported_modifier_is_an_error_naming_it(tmp_path):
    co = assemble("  v_add_f32_e64 v20, v10, v11 clamp\n", tmp_path)
    with pytest.raises(UnknownInstructionError, match="clamp"):
        launch(co)


def test_bad_code_object_and_lds_request(tmp_path):
    with pytest.raises(EmulatorError, match="ELF"):
        CodeObject.from_elf(b"not an elf at all" * 4)
    co = assemble("", tmp_path, lds=1024)
    with pytest.raises(EmulatorError, match="LDS request"):
        launch(co, dynamic_lds=160 * 1024)


# --------------------------------------------------------------------------------------------------------- real kernel
@pytest.fixture(scope="module")
def gemm_code_object(tmp_path_factory):
    from hkjit.gfx950 import hipcheck
    repo = Path(__file__).resolve().parents[1]
    src = repo / "kernels" / "gemm_gfx950.hip"
    tc = hipcheck.toolchain_root()
    if hipcheck.find_clang() is None:
        pytest.skip("clang-22 not found (apt-get install clang-22, or set $HKJIT_HIP_CLANG)")
    if not (Path(tc) / "HipKittens" / "include").is_dir():
        pytest.skip(f"no HipKittens toolchain at {tc} (set HKJIT_TOOLCHAIN_DIR)")
    out = tmp_path_factory.mktemp("gemm") / "gemm.co"
    hipcheck.compile_code_object(src, out, "gfx950", extra_flags=["-DHKJIT_NOGPULIB_SHIMS", f"-I{src.parent}"])
    return CodeObject.from_file(out)


def test_real_gemm_kernel_one_workgroup(gemm_code_object):
    """The compiled kernels/gemm_gfx950.hip, one 256x256 block with K=64, every opcode it has executed: C against
    a float64 matmul, within one bf16 ulp (so truncation and round-to-nearest both pass) plus the fp32
    accumulation bound K * 2^-24 * sum |a||b|."""
    co = gemm_code_object
    name = next(n for n in co.kernels if "gemm_bf16_kernel" in n)
    M = N = 256
    K = 64
    rng = np.random.default_rng()
    A, Bt = _to_bf16(rng.standard_normal((M, K))), _to_bf16(rng.standard_normal((N, K)))
    mem = GlobalMemory()
    pa, pb, pc = mem.alloc(A.nbytes), mem.alloc(Bt.nbytes), mem.alloc(M * N * 2)
    mem.write(pa, A)
    mem.write(pb, Bt)
    mem.write(pc, np.full(M * N, 0x7FC1, np.uint16))
    assert co.kernels[name].kernarg_size == 56 and co.kernels[name].args[0][".value_kind"] == "by_value"
    ka = struct.pack("<QQQiiiiiiii", pa, pb, pc, K, K, N, M, N, K, 1, 1)
    rep = run(co, Launch(kernel=name, grid=(1, 1, 1), block=(512, 1, 1), kernarg=ka, dynamic_lds=4 * 32768,
                         seed=int(rng.integers(1 << 30))), mem)
    assert rep.ok, rep.summary()
    never = sorted({i.op for i in co.kernels[name].instructions} - set(rep.opcodes))
    assert not never, f"opcodes of the kernel this run did not execute: {never}"
    C = _bf16_f64(mem.read_array(pc, np.uint16, M * N).reshape(M, N))
    a, b = _bf16_f64(A), _bf16_f64(Bt)
    ref = a @ b.T
    E = K * 2.0 ** -24 * (np.abs(a) @ np.abs(b).T)
    ulp = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(ref) + E, 2.0 ** -126))) - 7)
    err = np.abs(C - ref)
    assert not np.isnan(C).any(), "some C elements were not written"
    assert (err <= E + ulp).all(), f"max error {err.max()} (bound at that element {(E + ulp).flat[err.argmax()]})"
