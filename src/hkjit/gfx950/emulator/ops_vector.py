"""Vector ALU instructions (VOP1/VOP2/VOP3/VOPC), vectorized over the 64 lanes with numpy, as tables of data.

Semantics from AMD's CDNA3/CDNA4 ISA pseudocode (tinygrad/runtime/autogen/amd/cdna/str_pcode.py, read, not
imported).  Each table entry is a function of the sources as uint32 rows; the generic handler applies the
float source modifiers (neg/abs) and the EXEC mask.  Adding an opcode is one entry.

Precision note: float ops are computed with numpy float32 (correctly rounded).  Where the hardware is an
approximation (v_rcp_f32, v_rcp_iflag_f32, v_sqrt_f32, v_rsq_f32, v_exp_f32, v_log_f32: about 1 ulp), the
emulator gives the correctly rounded value; code relying on the exact hardware ulp is not modelled.
"""
from __future__ import annotations

import numpy as np

from .errors import UnknownInstructionError

U32 = np.uint32
_R31 = U32(31)
_SIGN = U32(0x80000000)
_ABS = U32(0x7FFFFFFF)
_REV8 = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], np.uint8)


def I(x):  # noqa: E743 - the ISA's .i32 view
    return x.view(np.int32)


def F(x):
    return x.view(np.float32)


def u(x):
    return np.asarray(x).astype(np.uint32, copy=False) if np.asarray(x).dtype != np.uint32 else x


def fu(x):  # float32 result -> uint32 pattern
    return np.asarray(x, np.float32).view(np.uint32)


_LANE = np.arange(64, dtype=np.uint64)
_LANES_BELOW_LO = ((np.uint64(1) << np.minimum(_LANE, 32)) - np.uint64(1)).astype(U32)        # lanes < l, of 0..31
_LANES_BELOW_HI = ((np.uint64(1) << np.clip(_LANE, 32, 64) - np.uint64(32)) - np.uint64(1)).astype(U32)  # of 32..63


def _popcount(x):
    b = np.ascontiguousarray(np.broadcast_to(x, (64,)), U32).view(np.uint8).reshape(64, 4)
    return np.unpackbits(b, axis=1).sum(1).astype(U32)


def _bfrev(a):
    b = np.ascontiguousarray(np.broadcast_to(a, (64,))).view(np.uint8).reshape(64, 4)
    return _REV8[b[:, ::-1]].reshape(-1).view(np.uint32).copy()


def _wide(a, b, dt):
    """High 32 bits of the 64-bit product (dt: np.int64 signed, np.uint64 unsigned)."""
    p = np.asarray(a).astype(dt) * np.asarray(b).astype(dt)
    return (p >> dt(32)).astype(np.int64).astype(U32)


def _med3(a, b, c):
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _low_bits(n):
    return ((np.uint64(1) << np.asarray(n).astype(np.uint64)) - np.uint64(1)).astype(U32)


def _funnel(a, b, shift):
    """({a, b} >> shift)[31:0] (a the high word)."""
    ab = (np.asarray(a).astype(np.uint64) << np.uint64(32)) | np.asarray(b).astype(np.uint64)
    return (ab >> np.asarray(shift).astype(np.uint64)).astype(U32)


def _bfe_u(a, b, c):
    off, w = b & _R31, c & _R31
    mask = ((np.uint64(1) << w.astype(np.uint64)) - np.uint64(1)).astype(np.uint32)
    return (a >> off) & mask


def _bfe_i(a, b, c):
    off, w = (b & _R31).astype(np.int64), (c & _R31).astype(np.int64)
    v = (a.astype(np.int64) >> off) & ((np.int64(1) << w) - 1)
    sign = (v >> np.maximum(w - 1, 0)) & 1
    v = np.where((w > 0) & (sign == 1), v - (np.int64(1) << w), v)
    return np.where(w == 0, 0, v).astype(np.int64).astype(np.uint32)


def _cvt_u32_f32(a):
    x = F(a).astype(np.float64)
    return np.where(np.isnan(x), 0, np.clip(np.trunc(x), 0, 4294967295.0)).astype(np.uint32)


def _cvt_i32_f32(a):
    x = F(a).astype(np.float64)
    return np.where(np.isnan(x), 0, np.clip(np.trunc(x), -2147483648.0, 2147483647.0)).astype(np.int32).view(U32)


_C7FFF, _C16, _C1, _CINF, _C40, _CFFFF = U32(0x7FFF), U32(16), U32(1), U32(0x7F800000), U32(0x40), U32(0xFFFF)


def f32_to_bf16_rne(a):
    """Round-to-nearest-even float32 -> bf16 (uint16 pattern in a uint32); NaN stays NaN (quieted)."""
    a = np.asarray(a, U32)
    hi = a >> _C16
    r = (a + _C7FFF + (hi & _C1)) >> _C16
    nan = (a & _ABS) > _CINF
    if nan.any():
        r = np.where(nan, hi | _C40, r)
    return r & _CFFFF


def _perm(a, b, sel):
    data = (a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64)
    out = np.zeros(np.broadcast(a, b, sel).shape, np.uint32)
    for i in range(4):
        s = (sel >> U32(8 * i)) & U32(0xFF)
        byte = (data >> (np.minimum(s, 7).astype(np.uint64) * np.uint64(8))) & np.uint64(0xFF)
        sign = lambda k: ((data >> np.uint64(8 * k + 7)) & np.uint64(1)) * np.uint64(0xFF)
        v = np.where(s <= 7, byte, 0)
        v = np.where(s == 8, sign(1), v)
        v = np.where(s == 9, sign(3), v)
        v = np.where(s == 10, sign(5), v)
        v = np.where(s == 11, sign(7), v)
        v = np.where(s == 12, 0, v)
        v = np.where(s >= 13, 0xFF, v)
        out |= (v.astype(np.uint32) << U32(8 * i))
    return out


def _f(fn):
    """Wrap a float32 -> float32 function as uint32 -> uint32."""
    def g(*xs):
        with np.errstate(all="ignore"):
            return fu(fn(*(F(np.ascontiguousarray(np.broadcast_to(x, (64,)))) for x in xs)))
    g.float_op = True
    return g


# name -> (number of sources, function of uint32 rows -> uint32 row)
VOP32 = {
    "v_mov_b32": (1, lambda a: a),
    "v_not_b32": (1, lambda a: ~a),
    "v_bfrev_b32": (1, _bfrev),
    "v_add_u32": (2, lambda a, b: a + b),
    "v_sub_u32": (2, lambda a, b: a - b),
    "v_subrev_u32": (2, lambda a, b: b - a),
    "v_and_b32": (2, lambda a, b: a & b),
    "v_or_b32": (2, lambda a, b: a | b),
    "v_xor_b32": (2, lambda a, b: a ^ b),
    "v_xnor_b32": (2, lambda a, b: ~(a ^ b)),
    "v_lshlrev_b32": (2, lambda a, b: b << (a & _R31)),
    "v_lshrrev_b32": (2, lambda a, b: b >> (a & _R31)),
    "v_ashrrev_i32": (2, lambda a, b: (I(b) >> I(a & _R31)).view(U32)),
    "v_mul_lo_u32": (2, lambda a, b: a * b),
    "v_mul_hi_u32": (2, lambda a, b: _wide(a, b, np.uint64)),
    "v_mul_hi_i32": (2, lambda a, b: _wide(I(a), I(b), np.int64)),
    "v_mul_u32_u24": (2, lambda a, b: (a & U32(0xFFFFFF)) * (b & U32(0xFFFFFF))),
    "v_mul_hi_u32_u24": (2, lambda a, b: _wide(a & U32(0xFFFFFF), b & U32(0xFFFFFF), np.uint64)),
    "v_mul_i32_i24": (2, lambda a, b: ((I(a << U32(8)) >> 8) * (I(b << U32(8)) >> 8)).view(U32)),
    "v_mad_u32_u24": (3, lambda a, b, c: (a & U32(0xFFFFFF)) * (b & U32(0xFFFFFF)) + c),
    "v_mad_i32_i24": (3, lambda a, b, c: ((I(a << U32(8)) >> 8) * (I(b << U32(8)) >> 8)).view(U32) + c),
    "v_max_i32": (2, lambda a, b: np.maximum(I(a), I(b)).view(U32)),
    "v_min_i32": (2, lambda a, b: np.minimum(I(a), I(b)).view(U32)),
    "v_max_u32": (2, lambda a, b: np.maximum(a, b)),
    "v_min_u32": (2, lambda a, b: np.minimum(a, b)),
    "v_max3_i32": (3, lambda a, b, c: np.maximum(np.maximum(I(a), I(b)), I(c)).view(U32)),
    "v_min3_i32": (3, lambda a, b, c: np.minimum(np.minimum(I(a), I(b)), I(c)).view(U32)),
    "v_max3_u32": (3, lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    "v_min3_u32": (3, lambda a, b, c: np.minimum(np.minimum(a, b), c)),
    "v_med3_i32": (3, lambda a, b, c: _med3(I(a), I(b), I(c)).view(U32)),
    "v_med3_u32": (3, lambda a, b, c: _med3(a, b, c)),
    "v_add3_u32": (3, lambda a, b, c: a + b + c),
    "v_lshl_add_u32": (3, lambda a, b, c: (a << (b & _R31)) + c),
    "v_add_lshl_u32": (3, lambda a, b, c: (a + b) << (c & _R31)),
    "v_lshl_or_b32": (3, lambda a, b, c: (a << (b & _R31)) | c),
    "v_and_or_b32": (3, lambda a, b, c: (a & b) | c),
    "v_or3_b32": (3, lambda a, b, c: a | b | c),
    "v_xad_u32": (3, lambda a, b, c: (a ^ b) + c),
    "v_bfe_u32": (3, _bfe_u),
    "v_bfe_i32": (3, _bfe_i),
    "v_bfi_b32": (3, lambda a, b, c: (a & b) | (~a & c)),
    "v_bfm_b32": (2, lambda a, b: _low_bits(a & _R31) << (b & _R31)),
    "v_alignbit_b32": (3, lambda a, b, c: _funnel(a, b, c & _R31)),
    "v_alignbyte_b32": (3, lambda a, b, c: _funnel(a, b, (c & U32(3)) * U32(8))),
    "v_perm_b32": (3, _perm),
    "v_bcnt_u32_b32": (2, lambda a, b: _popcount(a) + b),
    # MBCNT: D = popcount(S0 & (lanes below this one, in the low / high 32 lanes)) + S1
    "v_mbcnt_lo_u32_b32": (2, lambda a, b: _popcount(a & _LANES_BELOW_LO) + b),
    "v_mbcnt_hi_u32_b32": (2, lambda a, b: _popcount(a & _LANES_BELOW_HI) + b),
    "v_cvt_f32_u32": (1, lambda a: fu(a.astype(np.float32))),
    "v_cvt_f32_i32": (1, lambda a: fu(I(a).astype(np.float32))),
    "v_cvt_u32_f32": (1, _cvt_u32_f32),
    "v_cvt_i32_f32": (1, _cvt_i32_f32),
    "v_cvt_pk_bf16_f32": (2, lambda a, b: f32_to_bf16_rne(a) | (f32_to_bf16_rne(b) << U32(16))),
    "v_cvt_f32_bf16": (1, lambda a: (a & U32(0xFFFF)) << U32(16)),
    "v_add_f32": (2, _f(lambda a, b: a + b)),
    "v_sub_f32": (2, _f(lambda a, b: a - b)),
    "v_subrev_f32": (2, _f(lambda a, b: b - a)),
    "v_mul_f32": (2, _f(lambda a, b: a * b)),
    "v_max_f32": (2, _f(np.fmax)),
    "v_min_f32": (2, _f(np.fmin)),
    "v_fma_f32": (3, _f(lambda a, b, c: (a.astype(np.float64) * b + c).astype(np.float32))),
    "v_rcp_f32": (1, _f(lambda a: np.float32(1.0) / a)),
    "v_rcp_iflag_f32": (1, _f(lambda a: np.float32(1.0) / a)),
    "v_sqrt_f32": (1, _f(np.sqrt)),
    "v_rsq_f32": (1, _f(lambda a: np.float32(1.0) / np.sqrt(a))),
    "v_exp_f32": (1, _f(np.exp2)),
    "v_log_f32": (1, _f(np.log2)),
    "v_trunc_f32": (1, _f(np.trunc)),
    "v_floor_f32": (1, _f(np.floor)),
    "v_ceil_f32": (1, _f(np.ceil)),
    "v_rndne_f32": (1, _f(np.rint)),
    "v_fract_f32": (1, _f(lambda a: a - np.floor(a))),
}
# D = S0 * S1 + D (the accumulator is the destination)
VOP32_ACC = {"v_fmac_f32": _f(lambda a, b, d: (a.astype(np.float64) * b + d).astype(np.float32)),
             "v_mac_f32": _f(lambda a, b, d: a * b + d)}

_FLOAT_OPS = {k for k, (_, f) in VOP32.items() if getattr(f, "float_op", False)} | set(VOP32_ACC)


def _mods_ok(ins, allowed=()):
    bad = [k for k in ins.mods if k not in allowed]
    if bad:
        raise UnknownInstructionError(f"{ins.mnemonic}: modifier {bad[0]} is not supported by the emulator "
                                      f"(at 0x{ins.addr:x}: {ins.text})", ins.mnemonic, ins.text, ins.addr)


def _src(w, o, is_float):
    x = w.vval(o)
    if o.neg or o.abs:
        if not is_float:
            raise UnknownInstructionError(f"neg/abs modifier on integer operand {o.text!r}", text=o.text)
        x = np.asarray(x, U32)
        if o.abs:
            x = x & _ABS
        if o.neg:
            x = x ^ _SIGN
    return x


def h_vop32(w, ins):
    n, fn = VOP32[ins.op]
    _mods_ok(ins)
    ops = ins.operands
    is_float = ins.op in _FLOAT_OPS
    srcs = [_src(w, o, is_float) for o in ops[1:1 + n]]
    if len(ops) != n + 1:
        raise UnknownInstructionError(f"{ins.mnemonic}: expected {n} sources, got {len(ops) - 1} ({ins.text})",
                                      ins.mnemonic, ins.text, ins.addr)
    if all(not isinstance(s, np.ndarray) for s in srcs):
        srcs[0] = np.full(64, srcs[0], U32)
    w.vwrite(ops[0], fn(*srcs))


def h_vop32_acc(w, ins):
    _mods_ok(ins)
    d, a, b = ins.operands
    srcs = [_src(w, a, True), _src(w, b, True), w.vval(d)]
    w.vwrite(d, VOP32_ACC[ins.op](*srcs))


def h_bitop3(w, ins):
    """D = the 3-input truth table TTBL (the bitop3: modifier): bit i of TTBL is the output for the input bits
    (S0, S1, S2) with i = S0 * 4 + S1 * 2 + S2 (CDNA4 V_BITOP3_B32 pseudocode)."""
    _mods_ok(ins, ("bitop3",))
    d, a, b, c = ins.operands
    t = ins.mods.get("bitop3", 0)
    s0, s1, s2 = (np.broadcast_to(w.vval(o), (64,)) for o in (a, b, c))
    out = np.zeros(64, U32)
    for i in range(8):
        if t >> i & 1:
            x = (s0 if i & 4 else ~s0) & (s1 if i & 2 else ~s1) & (s2 if i & 1 else ~s2)
            out |= x
    w.vwrite(d, out)


def h_cndmask(w, ins):
    """D = VCC/SSRC[lane] ? S1 : S0."""
    _mods_ok(ins)
    d, a, b, m = ins.operands
    w.vwrite(d, np.where(w.lane_mask(m), w.vval(b), w.vval(a)))


# -------------------------------------------------------------------------- carry ops: D, SDST(carry-out), ...
def _carry(w, ins, fn):
    _mods_ok(ins)
    ops = ins.operands
    d, sd, a, b = ops[:4]
    cin = w.lane_mask(ops[4]).astype(np.uint64) if len(ops) > 4 else np.uint64(0)
    av, bv = (np.broadcast_to(w.vval(o), (64,)).astype(np.uint64) for o in (a, b))
    res, cout = fn(av, bv, cin)
    w.vwrite(d, (res & np.uint64(0xFFFFFFFF)).astype(U32))
    w.sdst_mask(sd, cout)


CARRY = {
    "v_add_co_u32": lambda a, b, c: (a + b, a + b > 0xFFFFFFFF),
    "v_addc_co_u32": lambda a, b, c: (a + b + c, a + b + c > 0xFFFFFFFF),
    "v_sub_co_u32": lambda a, b, c: (a - b, b > a),
    "v_subb_co_u32": lambda a, b, c: (a - b - c, b + c > a),
    "v_subrev_co_u32": lambda a, b, c: (b - a, a > b),
    "v_subbrev_co_u32": lambda a, b, c: (b - a - c, a + c > b),
}


def h_carry(w, ins):
    _carry(w, ins, CARRY[ins.op])


# -------------------------------------------------------------------------- 64-bit
VOP64 = {
    "v_mov_b64": (1, lambda a: a),
    "v_lshlrev_b64": (2, lambda a, b: b << (a & np.uint64(63))),
    "v_lshrrev_b64": (2, lambda a, b: b >> (a & np.uint64(63))),
    "v_ashrrev_i64": (2, lambda a, b: (b.view(np.int64) >> (a & np.uint64(63)).view(np.int64)).view(np.uint64)),
    "v_lshl_add_u64": (3, lambda a, b, c: (a << (b & np.uint64(7))) + c),
}
_SHIFT_SRC0_32 = {"v_lshlrev_b64", "v_lshrrev_b64", "v_ashrrev_i64"}  # S0 is a 32-bit shift amount


def h_vop64(w, ins):
    n, fn = VOP64[ins.op]
    _mods_ok(ins)
    ops = ins.operands
    srcs = []
    for k, o in enumerate(ops[1:1 + n]):
        if (k == 0 and ins.op in _SHIFT_SRC0_32) or (k == 1 and ins.op == "v_lshl_add_u64"):
            x = w.vval(o)
            srcs.append(np.broadcast_to(np.asarray(x, U32), (64,)).astype(np.uint64))
        else:
            srcs.append(np.broadcast_to(np.asarray(w.vval64(o), np.uint64), (64,)))
    w.vwrite64(ops[0], fn(*srcs))


def h_mad_u64_u32(w, ins):
    """VOP3SD: {D1 carry, D0.u64} = S0.u32 * S1.u32 + S2.u64 (signed for _i64_i32)."""
    _mods_ok(ins)
    d, sd, a, b, c = ins.operands
    signed = ins.op == "v_mad_i64_i32"
    av, bv = (np.broadcast_to(np.asarray(w.vval(o), U32), (64,)) for o in (a, b))
    cv = np.broadcast_to(np.asarray(w.vval64(c), np.uint64), (64,))
    if signed:
        prod = [int(x) * int(y) for x, y in zip(I(av.copy()), I(bv.copy()))]
        full = [p + (int(z) - (1 << 64) if z >> 63 else int(z)) for p, z in zip(prod, cv)]
        res = np.array([x & 0xFFFFFFFFFFFFFFFF for x in full], np.uint64)
        carry = np.array([not -(1 << 63) <= x < (1 << 63) for x in full])
    else:
        full = [int(x) * int(y) + int(z) for x, y, z in zip(av, bv, cv)]
        res = np.array([x & 0xFFFFFFFFFFFFFFFF for x in full], np.uint64)
        carry = np.array([x >> 64 != 0 for x in full])
    w.vwrite64(d, res)
    w.sdst_mask(sd, carry)


# -------------------------------------------------------------------------- VOPC
_CMP_REL = {"f": lambda a, b: np.zeros(np.broadcast(a, b).shape, bool), "lt": np.less, "eq": np.equal,
            "le": np.less_equal, "gt": np.greater, "lg": np.not_equal, "ne": np.not_equal, "ge": np.greater_equal,
            "t": lambda a, b: np.ones(np.broadcast(a, b).shape, bool),
            "tru": lambda a, b: np.ones(np.broadcast(a, b).shape, bool),
            "o": lambda a, b: ~(np.isnan(a) | np.isnan(b)), "u": lambda a, b: np.isnan(a) | np.isnan(b),
            "nge": lambda a, b: ~(a >= b), "nlg": lambda a, b: ~((a < b) | (a > b)), "ngt": lambda a, b: ~(a > b),
            "nle": lambda a, b: ~(a <= b), "neq": lambda a, b: ~(a == b), "nlt": lambda a, b: ~(a < b)}
_CMP_TYPES = {"i32": (False, np.int32), "u32": (False, np.uint32), "f32": (False, np.float32),
              "i64": (True, np.int64), "u64": (True, np.uint64), "f64": (True, np.float64),
              "i16": (False, "i16"), "u16": (False, "u16")}


def _cmp_parse(op):
    parts = op.split("_")  # v_cmp[x]_<rel>_<type>
    return parts[1] == "cmpx", parts[2], parts[3]


def h_vopc(w, ins):
    parsed = ins.__dict__.get("_cmp")
    if parsed is None:
        _mods_ok(ins)
        parsed = ins.__dict__["_cmp"] = _cmp_parse(ins.op)
    x, rel, typ = parsed
    d, a, b = ins.operands
    wide, dt = _CMP_TYPES[typ]
    if wide:
        av, bv = w.vval64(a), w.vval64(b)
        av, bv = np.asarray(av).view(dt) if dt != np.uint64 else av, np.asarray(bv).view(dt) if dt != np.uint64 else bv
    elif dt in ("i16", "u16"):
        av, bv = (np.asarray(w.vval(o), U32) & U32(0xFFFF) for o in (a, b))
        if dt == "i16":
            av, bv = ((v.astype(np.int32) ^ 0x8000) - 0x8000 for v in (av, bv))
    else:
        av, bv = (np.asarray(_src(w, o, typ == "f32"), U32).view(dt) for o in (a, b))
    with np.errstate(all="ignore"):
        res = np.broadcast_to(_CMP_REL[rel](av, bv), (64,))
    w.sdst_mask(d, res)
    if x:
        w.set_exec(w.get_s64(d.index))


def h_accvgpr(w, ins):
    _mods_ok(ins)
    d, a = ins.operands
    w.vwrite(d, w.vval(a))


HANDLERS = {}
HANDLERS.update({k: h_vop32 for k in VOP32})
HANDLERS.update({k: h_vop32_acc for k in VOP32_ACC})
HANDLERS.update({k: h_carry for k in CARRY})
HANDLERS.update({k: h_vop64 for k in VOP64})
HANDLERS.update({"v_bitop3_b32": h_bitop3, "v_cndmask_b32": h_cndmask, "v_mad_u64_u32": h_mad_u64_u32,
                 "v_mad_i64_i32": h_mad_u64_u32, "v_accvgpr_read_b32": h_accvgpr, "v_accvgpr_write_b32": h_accvgpr,
                 "v_accvgpr_mov_b32": h_accvgpr})
for _x in ("cmp", "cmpx"):
    for _rel in _CMP_REL:
        for _t in _CMP_TYPES:
            HANDLERS[f"v_{_x}_{_rel}_{_t}"] = h_vopc


# -------------------------------------------------------------------------- per-instruction compilation
# The generic handlers above re-read the operand records every time; for the hot VALU shapes a closure with the
# operand access pre-bound does the same work with far less Python.  Same semantics, same tables.
def _getter(o, is_float):
    """w -> the source value (uint32 row or np.uint32), modifiers applied."""
    if o.neg or o.abs:
        if not is_float:
            raise UnknownInstructionError(f"neg/abs modifier on integer operand {o.text!r}", text=o.text)
        return lambda w: _src(w, o, True)
    i = o.index
    if o.kind == "v":
        return lambda w: w.v[i]
    if o.kind == "a":
        return lambda w: w.a[i]
    if o.kind == "s":
        return lambda w: U32(w.s[i])
    if o.kind == "i":
        c = U32(o.v32)
        return lambda w: c
    return lambda w: w.vval(o)


def _writer(d):
    if d.kind not in ("v", "a"):
        raise UnknownInstructionError(f"operand {d.text!r} is not a vector destination", text=d.text)
    i, file = d.index, d.kind

    def write(w, val):
        row = w.v[i] if file == "v" else w.a[i]
        if w.exec_full:
            row[...] = val
        else:
            np.copyto(row, val, where=w.exec_mask, casting="unsafe")
    return write


def compile_vop32(ins):
    n, fn = VOP32[ins.op]
    _mods_ok(ins)
    ops = ins.operands
    if len(ops) != n + 1:
        raise UnknownInstructionError(f"{ins.mnemonic}: expected {n} sources, got {len(ops) - 1} ({ins.text})",
                                      ins.mnemonic, ins.text, ins.addr)
    is_float = ins.op in _FLOAT_OPS
    gets = [_getter(o, is_float) for o in ops[1:]]
    write = _writer(ops[0])
    scalar_only = all(o.kind not in ("v", "a") for o in ops[1:])
    if n == 1:
        g0 = gets[0]
        if scalar_only:
            return lambda w, ins: write(w, fn(np.full(64, g0(w), U32)))
        return lambda w, ins: write(w, fn(g0(w)))
    if n == 2:
        g0, g1 = gets
        if scalar_only:
            return lambda w, ins: write(w, fn(np.full(64, g0(w), U32), g1(w)))
        return lambda w, ins: write(w, fn(g0(w), g1(w)))
    g0, g1, g2 = gets
    if scalar_only:
        return lambda w, ins: write(w, fn(np.full(64, g0(w), U32), g1(w), g2(w)))
    return lambda w, ins: write(w, fn(g0(w), g1(w), g2(w)))


def compile_vopc(ins):
    """32-bit compares (the common case); anything else goes through h_vopc."""
    _mods_ok(ins)
    x, rel, typ = _cmp_parse(ins.op)
    if typ not in ("i32", "u32", "f32") or rel not in ("lt", "eq", "le", "gt", "lg", "ne", "ge"):
        return h_vopc
    d, a, b = ins.operands
    dt = _CMP_TYPES[typ][1]
    ga, gb = _getter(a, typ == "f32"), _getter(b, typ == "f32")
    f = _CMP_REL[rel]
    di = d.index

    def run(w, ins):
        res = f(np.asarray(ga(w)).view(dt), np.asarray(gb(w)).view(dt))
        if res.shape != (64,):
            res = np.broadcast_to(res, (64,))
        w.sdst_mask(d, res)
        if x:
            w.set_exec(w.get_s64(di))
    return run


def compile_cndmask(ins):
    _mods_ok(ins)
    d, a, b, m = ins.operands
    ga, gb = _getter(a, False), _getter(b, False)
    write = _writer(d)
    return lambda w, ins: write(w, np.where(w.lane_mask(m), gb(w), ga(w)))


COMPILERS = {k: compile_vop32 for k in VOP32}
COMPILERS["v_cndmask_b32"] = compile_cndmask
for _x in ("cmp", "cmpx"):
    for _rel in _CMP_REL:
        for _t in _CMP_TYPES:
            COMPILERS[f"v_{_x}_{_rel}_{_t}"] = compile_vopc
