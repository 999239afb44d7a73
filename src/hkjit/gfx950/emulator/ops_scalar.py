"""Scalar ALU (SOP1/SOP2/SOPK/SOPC) and program control (SOPP) instructions, as tables of data.

Semantics from AMD's CDNA3/CDNA4 ISA pseudocode (tinygrad/runtime/autogen/amd/cdna/str_pcode.py, read, not
imported): each entry gives D0 and SCC as functions of S0, S1 and SCC.  Adding an opcode is one entry.
"""
from __future__ import annotations

from typing import Callable

from .decode import sop_simm16_signed
from .errors import UnknownInstructionError

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


def sx32(x: int) -> int:
    x &= M32
    return x - (1 << 32) if x & 0x80000000 else x


def sx64(x: int) -> int:
    x &= M64
    return x - (1 << 64) if x >> 63 else x


def _ovf_add(a, b, r):  # signed overflow of a 32-bit add (pseudocode: sign bits)
    return int((a >> 31) == (b >> 31) and (a >> 31) != ((r >> 31) & 1))


def _ovf_sub(a, b, r):
    return int((a >> 31) != (b >> 31) and (a >> 31) != ((r >> 31) & 1))


def _bfe(x, s1, width):
    off = s1 & (width - 1)
    w = (s1 >> 16) & 0x7F
    return (x >> off) & ((1 << w) - 1) if w < width else x >> off


def _brev32(x):
    return int(f"{x & M32:032b}"[::-1], 2)


def _ff1(x, width):
    if x == 0:
        return M32
    return (x & -x).bit_length() - 1


# SOP2 32-bit: name -> f(a, b, scc) -> (d, scc or None); a, b are unsigned 32-bit Python ints
SOP2_32 = {
    "s_add_u32": lambda a, b, c: ((a + b) & M32, int(a + b > M32)),
    "s_sub_u32": lambda a, b, c: ((a - b) & M32, int(b > a)),
    "s_addc_u32": lambda a, b, c: ((a + b + c) & M32, int(a + b + c > M32)),
    "s_subb_u32": lambda a, b, c: ((a - b - c) & M32, int(b + c > a)),
    "s_add_i32": lambda a, b, c: ((a + b) & M32, _ovf_add(a, b, (a + b) & M32)),
    "s_sub_i32": lambda a, b, c: ((a - b) & M32, _ovf_sub(a, b, (a - b) & M32)),
    "s_min_i32": lambda a, b, c: (a, 1) if sx32(a) < sx32(b) else (b, 0),
    "s_min_u32": lambda a, b, c: (a, 1) if a < b else (b, 0),
    "s_max_i32": lambda a, b, c: (a, 1) if sx32(a) >= sx32(b) else (b, 0),
    "s_max_u32": lambda a, b, c: (a, 1) if a >= b else (b, 0),
    "s_cselect_b32": lambda a, b, c: (a if c else b, None),
    "s_and_b32": lambda a, b, c: (a & b, int(a & b != 0)),
    "s_or_b32": lambda a, b, c: (a | b, int(a | b != 0)),
    "s_xor_b32": lambda a, b, c: (a ^ b, int(a ^ b != 0)),
    "s_andn2_b32": lambda a, b, c: (a & ~b & M32, int(a & ~b & M32 != 0)),
    "s_orn2_b32": lambda a, b, c: ((a | ~b) & M32, int((a | ~b) & M32 != 0)),
    "s_nand_b32": lambda a, b, c: (~(a & b) & M32, int(~(a & b) & M32 != 0)),
    "s_nor_b32": lambda a, b, c: (~(a | b) & M32, int(~(a | b) & M32 != 0)),
    "s_xnor_b32": lambda a, b, c: (~(a ^ b) & M32, int(~(a ^ b) & M32 != 0)),
    "s_lshl_b32": lambda a, b, c: ((a << (b & 31)) & M32, int((a << (b & 31)) & M32 != 0)),
    "s_lshr_b32": lambda a, b, c: (a >> (b & 31), int(a >> (b & 31) != 0)),
    "s_ashr_i32": lambda a, b, c: ((sx32(a) >> (b & 31)) & M32, int(sx32(a) >> (b & 31) != 0)),
    "s_bfe_u32": lambda a, b, c: (_bfe(a, b, 32) & M32, int(_bfe(a, b, 32) != 0)),
    "s_bfe_i32": lambda a, b, c: _sbfe32(a, b),
    "s_bfm_b32": lambda a, b, c: ((((1 << (a & 31)) - 1) << (b & 31)) & M32, None),
    "s_mul_i32": lambda a, b, c: ((sx32(a) * sx32(b)) & M32, None),
    "s_mul_hi_u32": lambda a, b, c: ((a * b) >> 32, None),
    "s_mul_hi_i32": lambda a, b, c: (((sx32(a) * sx32(b)) >> 32) & M32, None),
    "s_absdiff_i32": lambda a, b, c: (abs(sx32(a) - sx32(b)) & M32, int(abs(sx32(a) - sx32(b)) & M32 != 0)),
    "s_lshl1_add_u32": lambda a, b, c: (((a << 1) + b) & M32, int((a << 1) + b > M32)),
    "s_lshl2_add_u32": lambda a, b, c: (((a << 2) + b) & M32, int((a << 2) + b > M32)),
    "s_lshl3_add_u32": lambda a, b, c: (((a << 3) + b) & M32, int((a << 3) + b > M32)),
    "s_lshl4_add_u32": lambda a, b, c: (((a << 4) + b) & M32, int((a << 4) + b > M32)),
    "s_pack_ll_b32_b16": lambda a, b, c: ((a & 0xFFFF) | (b & 0xFFFF) << 16, None),
    "s_pack_lh_b32_b16": lambda a, b, c: ((a & 0xFFFF) | (b & 0xFFFF0000), None),
    "s_pack_hh_b32_b16": lambda a, b, c: ((a >> 16) | (b & 0xFFFF0000), None),
}


def _sbfe32(a, b):
    off, w = b & 31, (b >> 16) & 0x7F
    if w == 0:
        return 0, 0
    v = (a >> off) & ((1 << w) - 1)
    if w < 32 and v >> (w - 1) & 1:
        v -= 1 << w
    return v & M32, int(v != 0)


# SOP2 64-bit (S1 of shifts is 32-bit): name -> f(a, b, scc) -> (d, scc)
SOP2_64 = {
    "s_and_b64": lambda a, b, c: (a & b, int(a & b != 0)),
    "s_or_b64": lambda a, b, c: (a | b, int(a | b != 0)),
    "s_xor_b64": lambda a, b, c: (a ^ b, int(a ^ b != 0)),
    "s_andn2_b64": lambda a, b, c: (a & ~b & M64, int(a & ~b & M64 != 0)),
    "s_orn2_b64": lambda a, b, c: ((a | ~b) & M64, int((a | ~b) & M64 != 0)),
    "s_nand_b64": lambda a, b, c: (~(a & b) & M64, int(~(a & b) & M64 != 0)),
    "s_nor_b64": lambda a, b, c: (~(a | b) & M64, int(~(a | b) & M64 != 0)),
    "s_xnor_b64": lambda a, b, c: (~(a ^ b) & M64, int(~(a ^ b) & M64 != 0)),
    "s_cselect_b64": lambda a, b, c: (a if c else b, None),
    "s_lshl_b64": lambda a, b, c: ((a << (b & 63)) & M64, int((a << (b & 63)) & M64 != 0)),
    "s_lshr_b64": lambda a, b, c: (a >> (b & 63), int(a >> (b & 63) != 0)),
    "s_ashr_i64": lambda a, b, c: ((sx64(a) >> (b & 63)) & M64, int(sx64(a) >> (b & 63) != 0)),
    "s_bfm_b64": lambda a, b, c: ((((1 << (a & 63)) - 1) << (b & 63)) & M64, None),
    "s_bfe_u64": lambda a, b, c: _bfe64(a, b, False),
    "s_bfe_i64": lambda a, b, c: _bfe64(a, b, True),
}


def _bfe64(a, b, signed):
    """S_BFE_[UI]64: (S0 >> S1[5:0]) & ((1 << S1[22:16]) - 1), sign-extended from the field's top bit for I64
    (signext_from_bit); SCC = D != 0."""
    off, width = b & 63, (b >> 16) & 0x7F
    v = (sx64(a) if signed else a) >> off
    v &= (1 << width) - 1 if width < 64 else M64
    if signed and 0 < width < 64 and v >> (width - 1) & 1:
        v -= 1 << width
    return v & M64, int(v & M64 != 0)
_SHIFT64 = {"s_lshl_b64", "s_lshr_b64", "s_ashr_i64", "s_bfm_b64", "s_bfe_u64", "s_bfe_i64"}  # S1 is 32-bit

# SOP1 32-bit: name -> f(a, scc) -> (d, scc or None)
SOP1_32 = {
    "s_mov_b32": lambda a, c: (a, None),
    "s_not_b32": lambda a, c: (~a & M32, int(~a & M32 != 0)),
    "s_abs_i32": lambda a, c: (abs(sx32(a)) & M32, int(abs(sx32(a)) & M32 != 0)),
    "s_brev_b32": lambda a, c: (_brev32(a), None),
    "s_ff1_i32_b32": lambda a, c: (_ff1(a, 32), None),
    "s_flbit_i32_b32": lambda a, c: (M32 if a == 0 else 31 - (a.bit_length() - 1), None),
    "s_bcnt1_i32_b32": lambda a, c: (bin(a).count("1"), int(a != 0)),
    "s_sext_i32_i8": lambda a, c: (sx32((a & 0xFF) - ((a & 0x80) << 1)) & M32, None),
    "s_sext_i32_i16": lambda a, c: (sx32((a & 0xFFFF) - ((a & 0x8000) << 1)) & M32, None),
    "s_cmov_b32": None,  # handled specially (no write when SCC == 0)
}
SOP1_64 = {
    "s_mov_b64": lambda a, c: (a, None),
    "s_not_b64": lambda a, c: (~a & M64, int(~a & M64 != 0)),
    "s_brev_b64": lambda a, c: (int(f"{a:064b}"[::-1], 2), None),
}
# S_*_SAVEEXEC_B64: saveexec = EXEC; EXEC = f(S0, EXEC); D0 = saveexec; SCC = EXEC != 0
SAVEEXEC = {
    "s_and_saveexec_b64": lambda s, e: s & e,
    "s_or_saveexec_b64": lambda s, e: s | e,
    "s_xor_saveexec_b64": lambda s, e: s ^ e,
    "s_andn2_saveexec_b64": lambda s, e: s & ~e & M64,
    "s_orn2_saveexec_b64": lambda s, e: (s | ~e) & M64,
    "s_nand_saveexec_b64": lambda s, e: ~(s & e) & M64,
    "s_nor_saveexec_b64": lambda s, e: ~(s | e) & M64,
    "s_xnor_saveexec_b64": lambda s, e: ~(s ^ e) & M64,
    "s_andn1_saveexec_b64": lambda s, e: ~s & e & M64,
    "s_orn1_saveexec_b64": lambda s, e: (~s | e) & M64,
}
# SOPC: name -> f(a, b) -> bool (SCC)
SOPC: dict[str, Callable[..., bool]] = {}
for _t, _cv in (("i32", sx32), ("u32", lambda x: x)):
    SOPC[f"s_cmp_eq_{_t}"] = lambda a, b, f=_cv: f(a) == f(b)
    SOPC[f"s_cmp_lg_{_t}"] = lambda a, b, f=_cv: f(a) != f(b)
    SOPC[f"s_cmp_gt_{_t}"] = lambda a, b, f=_cv: f(a) > f(b)
    SOPC[f"s_cmp_ge_{_t}"] = lambda a, b, f=_cv: f(a) >= f(b)
    SOPC[f"s_cmp_lt_{_t}"] = lambda a, b, f=_cv: f(a) < f(b)
    SOPC[f"s_cmp_le_{_t}"] = lambda a, b, f=_cv: f(a) <= f(b)
SOPC["s_bitcmp0_b32"] = lambda a, b: (a >> (b & 31) & 1) == 0
SOPC["s_bitcmp1_b32"] = lambda a, b: (a >> (b & 31) & 1) == 1
SOPC_64 = {"s_cmp_eq_u64": lambda a, b: a == b, "s_cmp_lg_u64": lambda a, b: a != b,
           "s_bitcmp0_b64": lambda a, b: (a >> (b & 63) & 1) == 0,
           "s_bitcmp1_b64": lambda a, b: (a >> (b & 63) & 1) == 1}

# SOPK: the signed 16-bit immediate comes from the encoding (low 16 bits of the first word)
def _simm16(ins) -> int:
    v = ins.words[0] & 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def h_sop2_32(w, ins):
    d, a, b = ins.operands
    r, scc = SOP2_32[ins.op](w.sval(a), w.sval(b), w.scc)
    w.set_s(d.index, r)
    if scc is not None:
        w.scc = scc


def h_sop2_64(w, ins):
    d, a, b = ins.operands
    f = SOP2_64[ins.op]
    if ins.op in _SHIFT64:
        av = w.sval(a) if ins.op == "s_bfm_b64" else w.sval64(a)
        r, scc = f(av, w.sval(b), w.scc)
    else:
        r, scc = f(w.sval64(a), w.sval64(b), w.scc)
    w.set_s64(d.index, r)
    if scc is not None:
        w.scc = scc


def h_sop1_32(w, ins):
    d, a = ins.operands
    if ins.op == "s_cmov_b32":
        if w.scc:
            w.set_s(d.index, w.sval(a))
        return
    r, scc = SOP1_32[ins.op](w.sval(a), w.scc)
    w.set_s(d.index, r)
    if scc is not None:
        w.scc = scc


def h_sop1_64(w, ins):
    d, a = ins.operands
    r, scc = SOP1_64[ins.op](w.sval64(a), w.scc)
    w.set_s64(d.index, r)
    if scc is not None:
        w.scc = scc


def h_saveexec(w, ins):
    d, a = ins.operands
    s0 = w.sval64(a)
    save = w.exec
    w.set_exec(SAVEEXEC[ins.op](s0, save))
    w.set_s64(d.index, save)
    w.scc = int(w.exec != 0)


def h_sopc(w, ins):
    a, b = ins.operands
    if ins.op in SOPC_64:
        bv = w.sval(b) if "bitcmp" in ins.op else w.sval64(b)
        w.scc = int(SOPC_64[ins.op](w.sval64(a), bv))
    else:
        w.scc = int(SOPC[ins.op](w.sval(a), w.sval(b)))


def h_sopk(w, ins):
    d = ins.operands[0]
    k = _simm16(ins)
    op = ins.op
    if op == "s_movk_i32":
        w.set_s(d.index, k)
    elif op == "s_addk_i32":
        a = w.s[d.index]
        r = (a + k) & M32
        w.set_s(d.index, r)
        w.scc = _ovf_add(a, k & M32, r)
    elif op == "s_mulk_i32":
        w.set_s(d.index, sx32(w.s[d.index]) * k)
    elif op == "s_cmovk_i32":
        if w.scc:
            w.set_s(d.index, k)
    elif op.startswith("s_cmpk_"):
        rel, typ = op[len("s_cmpk_"):].split("_")
        a = w.s[d.index]
        kk = k if typ == "i32" else k & 0xFFFF
        w.scc = int(SOPC[f"s_cmp_{rel}_{typ}"](a, kk & M32))
    else:
        raise UnknownInstructionError(f"unknown SOPK instruction {op}", op, ins.text, ins.addr)


SOPK_OPS = ["s_movk_i32", "s_addk_i32", "s_mulk_i32", "s_cmovk_i32"] + \
    [f"s_cmpk_{r}_{t}" for r in ("eq", "lg", "gt", "ge", "lt", "le") for t in ("i32", "u32")]


# ---------------------------------------------------------------- program control
def branch_target(ins) -> int:
    """Byte address a SOPP branch goes to: PC of the next instruction + simm16 * 4."""
    return ins.addr + 4 + 4 * sop_simm16_signed(ins)


_COND = {
    "s_cbranch_scc0": lambda w: w.scc == 0,
    "s_cbranch_scc1": lambda w: w.scc == 1,
    "s_cbranch_vccz": lambda w: w.vcc == 0,
    "s_cbranch_vccnz": lambda w: w.vcc != 0,
    "s_cbranch_execz": lambda w: w.exec == 0,
    "s_cbranch_execnz": lambda w: w.exec != 0,
}


def h_branch(w, ins):
    if ins.op == "s_branch" or _COND[ins.op](w):
        w.jump(branch_target(ins))


def h_nop(w, ins):
    """s_nop, s_setprio, s_sleep: no architectural effect in this model (timing is the scheduler's)."""


def h_readfirstlane(w, ins):  # VOP1 with a scalar destination
    d, a = ins.operands
    e = w.exec
    lane = 0 if e == 0 else (e & -e).bit_length() - 1
    w.set_s(d.index, int(w.vval(a)[lane]) if a.kind in ("v", "a") else int(w.vval(a)))


def h_readlane(w, ins):
    d, a, l = ins.operands
    w.set_s(d.index, int(w.vrows(a)[0][w.sval(l) & 63]))


def h_writelane(w, ins):
    d, a, l = ins.operands
    w.v[d.index][w.sval(l) & 63] = w.sval(a)


def h_getpc(w, ins):
    w.set_s64(ins.operands[0].index, ins.addr + ins.size)


def h_setpc(w, ins):
    w.jump(w.sval64(ins.operands[0]))


def h_swappc(w, ins):
    d, a = ins.operands
    tgt = w.sval64(a)
    w.set_s64(d.index, ins.addr + ins.size)
    w.jump(tgt)


HANDLERS = {}
HANDLERS.update({k: h_sop2_32 for k in SOP2_32})
HANDLERS.update({k: h_sop2_64 for k in SOP2_64})
HANDLERS.update({k: h_sop1_32 for k in SOP1_32})
HANDLERS.update({k: h_sop1_64 for k in SOP1_64})
HANDLERS.update({k: h_saveexec for k in SAVEEXEC})
HANDLERS.update({k: h_sopc for k in list(SOPC) + list(SOPC_64)})
HANDLERS.update({k: h_sopk for k in SOPK_OPS})
HANDLERS.update({k: h_branch for k in list(_COND) + ["s_branch"]})
HANDLERS.update({k: h_nop for k in ("s_nop", "s_setprio", "s_sleep", "s_icache_inv")})
HANDLERS.update({"v_readfirstlane_b32": h_readfirstlane, "v_readlane_b32": h_readlane,
                 "v_writelane_b32": h_writelane, "s_getpc_b64": h_getpc, "s_setpc_b64": h_setpc,
                 "s_swappc_b64": h_swappc})
