"""Decode one disassembled instruction (llvm-objdump text + encoding words) into a small record, once.

Why: the interpreter runs each instruction thousands of times; parsing its operands (register ranges, inline
constants, literals, modifiers) once up front keeps the per-step cost to a dict lookup and a few numpy calls.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from .errors import UnknownInstructionError

# SGPR numbers of the special scalar registers (gfx9 operand encoding; AMD CDNA3/CDNA4 ISA "Scalar operands")
M0 = 124
VCC = 106
EXEC = 126
SPECIAL_SGPRS = {"vcc": (VCC, 2), "vcc_lo": (VCC, 1), "vcc_hi": (VCC + 1, 1), "exec": (EXEC, 2),
                 "exec_lo": (EXEC, 1), "exec_hi": (EXEC + 1, 1), "m0": (M0, 1),
                 "flat_scratch": (102, 2), "flat_scratch_lo": (102, 1), "flat_scratch_hi": (103, 1),
                 "xnack_mask": (104, 2), "xnack_mask_lo": (104, 1), "xnack_mask_hi": (105, 1)}
SGPR_FILE = 128  # s0..s101, flat_scratch, xnack_mask, vcc, (ttmp not modelled), m0, exec

# The aperture registers (read as a 64-bit {hi, lo} or, as a 32-bit operand, the high word): fixed values of this
# model, above every global allocation (< 2^48); no flat access through them is modelled.
APERTURES = {"src_shared_base": (0x10000, 0), "src_shared_limit": (0x10000, 0xFFFFFFFF),
             "src_private_base": (0x20000, 0), "src_private_limit": (0x20000, 0xFFFFFFFF)}

# Register namespaces in one integer space, for hazard sets: VGPR n -> n, AGPR n -> AGPR_BASE + n, SGPR n -> ...
AGPR_BASE = 1 << 10
SGPR_BASE = 1 << 11

# Inline floating-point constants (ISA "Inline constants"): text -> (f32 bits, f64 bits)
_FLOAT_INLINE = {}
for _t, _v in (("0.5", 0.5), ("-0.5", -0.5), ("1.0", 1.0), ("-1.0", -1.0), ("2.0", 2.0), ("-2.0", -2.0),
               ("4.0", 4.0), ("-4.0", -4.0), ("0.15915494", 0.15915494309189532)):
    _FLOAT_INLINE[_t] = (struct.unpack("<I", struct.pack("<f", _v))[0], struct.unpack("<Q", struct.pack("<d", _v))[0])


@dataclass(frozen=True)
class Operand:
    """kind: 'v' VGPR, 'a' AGPR, 's' SGPR (incl. vcc/exec/m0), 'i' constant, 'scc', 'off'.
    For registers: index, count.  For constants: v32 (32-bit pattern), v64 (64-bit pattern), literal flag."""
    kind: str
    index: int = 0
    count: int = 1
    v32: int = 0
    v64: int = 0
    literal: bool = False
    neg: bool = False
    abs: bool = False
    text: str = ""

    def regs(self) -> tuple:
        base = {"v": 0, "a": AGPR_BASE, "s": SGPR_BASE}.get(self.kind)
        if base is None:
            return ()
        return tuple(base + self.index + k for k in range(self.count))


@dataclass
class Instruction:
    addr: int
    size: int
    mnemonic: str          # as printed, e.g. v_cndmask_b32_e64
    op: str                # without the _e32/_e64/_vop3 suffix, e.g. v_cndmask_b32
    enc: str               # 'e32', 'e64' or ''
    operands: list
    mods: dict
    text: str
    words: list
    regs: frozenset = field(default_factory=frozenset)  # every register the instruction names (hazard checks)
    error: str = ""        # why it could not be decoded (raised if executed)

    def __str__(self) -> str:
        return self.text


_REG = re.compile(r"^([vas])(\d+)$|^([vas])\[(\d+):(\d+)\]$")


def parse_operand(tok: str) -> Operand:
    t = tok.strip()
    neg = ab = False
    if t.startswith("neg(") and t.endswith(")"):
        neg, t = True, t[4:-1]
    if t.startswith("-") and not re.fullmatch(r"-\d+|-0x[0-9a-fA-F]+|-\d+\.\d+", t):
        neg, t = True, t[1:]
    if t.startswith("abs(") and t.endswith(")"):
        ab, t = True, t[4:-1]
    if t.startswith("|") and t.endswith("|"):
        ab, t = True, t[1:-1]
    m = _REG.match(t)
    if m:
        if m.group(1):
            return Operand(m.group(1), int(m.group(2)), 1, neg=neg, abs=ab, text=tok)
        lo, hi = int(m.group(4)), int(m.group(5))
        return Operand(m.group(3), lo, hi - lo + 1, neg=neg, abs=ab, text=tok)
    if t in SPECIAL_SGPRS:
        i, n = SPECIAL_SGPRS[t]
        return Operand("s", i, n, neg=neg, abs=ab, text=tok)
    if t in APERTURES:
        hi, lo = APERTURES[t]
        return Operand("i", v32=hi, v64=hi << 32 | lo, text=tok)
    if t in ("scc", "src_scc"):
        return Operand("scc", text=tok)
    if t == "off":
        return Operand("off", text=tok)
    if re.fullmatch(r"-?\d+", t):
        v = int(t)
        return Operand("i", v32=v & 0xFFFFFFFF, v64=v & 0xFFFFFFFFFFFFFFFF, literal=not -16 <= v <= 64,
                       neg=neg, abs=ab, text=tok)
    if re.fullmatch(r"-?0x[0-9a-fA-F]+", t):
        v = int(t, 16)
        # A 32-bit literal in a 64-bit integer operand is zero-extended (what LLVM relies on when it prints
        # `v_mov_b64 v[6:7], 0x80000000` for the uint64 value 0x80000000).
        return Operand("i", v32=v & 0xFFFFFFFF, v64=v & 0xFFFFFFFFFFFFFFFF, literal=True, neg=neg, abs=ab, text=tok)
    if t in _FLOAT_INLINE:
        a, b = _FLOAT_INLINE[t]
        return Operand("i", v32=a, v64=b, neg=neg, abs=ab, text=tok)
    raise UnknownInstructionError(f"operand {tok!r} not understood", text=tok)


def _split_top(s: str) -> list[str]:
    """Split on commas outside [] and ()."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


_MOD = re.compile(r"^([a-z_0-9]+):(.+)$")
_FLAG_MODS = {"offen", "idxen", "lds", "glc", "slc", "dlc", "sc0", "sc1", "nt", "tfe", "clamp", "gds", "addr64"}


def _parse_mod(tok: str, mods: dict) -> bool:
    if tok in _FLAG_MODS:
        mods[tok] = True
        return True
    m = _MOD.match(tok)
    if m:
        k, v = m.group(1), m.group(2)
        if v.startswith("["):
            mods[k] = [int(x, 0) for x in v[1:-1].split(",")]
        else:
            try:
                mods[k] = int(v, 0)
            except ValueError:
                mods[k] = v
        return True
    return False


def _split_suffix(mnemonic: str) -> tuple[str, str]:
    for suf in ("_e32", "_e64", "_vop3", "_sdwa", "_dpp"):
        if mnemonic.endswith(suf):
            return mnemonic[: -len(suf)], suf[1:]
    return mnemonic, ""


def decode_line(mnemonic: str, ops: str, addr: int, words: list) -> Instruction:
    text = f"{mnemonic} {ops}".strip()
    op, enc = _split_suffix(mnemonic)
    if enc in ("sdwa", "dpp"):
        raise UnknownInstructionError(f"{mnemonic}: SDWA/DPP forms are not supported (at 0x{addr:x}: {text})",
                                      mnemonic, text, addr)
    mods: dict = {}
    operands: list = []
    if op == "s_waitcnt" or op.startswith("s_cbranch") or op in ("s_branch", "s_nop", "s_setprio", "s_sleep"):
        # SOPP: the 16-bit immediate is the low half of the encoding (waitcnt fields, branch offset, ...)
        mods["simm16"] = words[0] & 0xFFFF
    elif ops:
        parts = _split_top(ops)
        # trailing space-separated modifiers live in the last comma field ("0 offen lds", "v148 offset:1024")
        last = parts[-1].split()
        tail = []
        while last and _parse_mod(last[-1], mods):
            tail.append(last.pop())
        parts[-1] = " ".join(last)
        if not parts[-1]:
            parts.pop()
        for p in parts:
            sub = p.split()
            for x in sub[1:]:
                if not _parse_mod(x, mods):
                    raise UnknownInstructionError(f"{mnemonic}: operand text {p!r} not understood (at 0x{addr:x}: "
                                                  f"{text})", mnemonic, text, addr)
            try:
                operands.append(parse_operand(sub[0]))
            except UnknownInstructionError as e:
                raise UnknownInstructionError(f"{mnemonic}: {e} (at 0x{addr:x}: {text})", mnemonic, text,
                                              addr) from None
    regs = set()
    for o in operands:
        regs.update(o.regs())
    return Instruction(addr=addr, size=4 * len(words), mnemonic=mnemonic, op=op, enc=enc, operands=operands,
                       mods=mods, text=text, words=words, regs=frozenset(regs))


def sop_simm16_signed(ins: Instruction) -> int:
    v = ins.mods["simm16"]
    return v - 0x10000 if v & 0x8000 else v


def waitcnt_fields(simm16: int) -> tuple[int, int, int]:
    """(vmcnt, expcnt, lgkmcnt) of an s_waitcnt immediate on gfx9: vmcnt = [3:0] | [15:14] << 4,
    expcnt = [6:4], lgkmcnt = [11:8] (AMD CDNA3 ISA, S_WAITCNT)."""
    vm = (simm16 & 0xF) | ((simm16 >> 14) & 3) << 4
    return vm, (simm16 >> 4) & 7, (simm16 >> 8) & 0xF
