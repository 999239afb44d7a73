"""Matrix-core instructions (MFMA): gather A/B/C from the 64 lanes per AMD's register layout, multiply, scatter D.

Layout source: AMD's Matrix Instruction Calculator (github.com/ROCm/amd_matrix_instruction_calculator,
matrix_calculator.py at 2ef9189, the CDNA ("gfx9") input/output layout functions `__get_input_reg_lanes` and
`__get_output_reg_lanes`), which give for a dense M x K input with B blocks:
    elements per lane  E = K / (64 / (M * B));   element (i, k) of block b is in
    lane = b * M + (k // E) * M * B + i,   item k % E of that lane's E consecutive packed values,
and for a 32-bit output, with N columns:  D[i][j] is in register (i % 4) + 4 * (i // (4 * 64 / N)) ... i.e. for
16x16: register i % 4, lane (i // 4) * 16 + j.  CDNA4's v_mfma_f32_16x16x32_bf16 (new in gfx950, not in that
calculator's tables) is the K=32 member of the same family as CDNA3's v_mfma_f32_16x16x16_bf16: with M=16,
K=32, B=1 the formula gives E = 8 bf16 per lane (4 VGPRs), lane = (k // 8) * 16 + i -- the K range split across
the four 16-lane groups, each lane holding 8 consecutive k.  (The
calculator's own v_smfmac_f32_16x16x32_bf16 entry, the CDNA3 sparse K=32 form, places its dense B operand the
same way.)  The same formula is
used for 32x32x16 (E = 8, lane = (k // 8) * 32 + i; D register 4 * (i // 8) + i % 4, lane ((i // 4) % 2) * 32 + j).

Arithmetic: the products of two bf16 values are exact in float64 and their sum over the whole K extent is
accumulated in float64, then added to C in float64 and rounded once to float32.  The hardware accumulates in
fp32 with its own internal order and rounding; bit-exactness of the MFMA's internal rounding is NOT claimed
(results agree to fp32 accumulation error, a few ulp of the sum's magnitude).
"""
from __future__ import annotations

import numpy as np

from .errors import UnknownInstructionError


def bf16_to_f32(u16: np.ndarray) -> np.ndarray:
    return (u16.astype(np.uint32) << np.uint32(16)).view(np.float32)


# name -> (M, N, K, input kind)
MFMA = {
    "v_mfma_f32_16x16x32_bf16": (16, 16, 32, "bf16"),
    "v_mfma_f32_32x32x16_bf16": (32, 32, 16, "bf16"),
    "v_mfma_f32_16x16x16_bf16": (16, 16, 16, "bf16"),
    "v_mfma_f32_32x32x8_bf16": (32, 32, 8, "bf16"),
    "v_mfma_f32_16x16x32_f16": (16, 16, 32, "f16"),
    "v_mfma_f32_16x16x16_f16": (16, 16, 16, "f16"),
    "v_mfma_f32_32x32x16_f16": (32, 32, 16, "f16"),
    "v_mfma_f32_32x32x8_f16": (32, 32, 8, "f16"),
}


def input_index(M: int, K: int) -> np.ndarray:
    """(M, K) flat indices into a register block viewed as uint16 (nregs, 128): element (i, k) lives in lane
    (k // E) * M + i, item k % E of the lane's packed values (register item // 2, half item % 2)."""
    E = K // (64 // M)
    i, k = np.meshgrid(np.arange(M), np.arange(K), indexing="ij")
    lane, item = (k // E) * M + i, k % E
    return (item // 2) * 128 + lane * 2 + item % 2


def output_index(M: int, N: int) -> np.ndarray:
    """(M, N) flat indices into the accumulator block (nregs, 64): 16x16: register i % 4, lane (i // 4) * 16 + j;
    32x32: register 4 (i // 8) + i % 4, lane ((i // 4) % 2) * 32 + j."""
    i, j = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    if M == 16:
        return (i % 4) * 64 + (i // 4) * 16 + j
    return (4 * (i // 8) + i % 4) * 64 + ((i // 4) % 2) * 32 + j


_LAYOUT = {name: (input_index(M, K), input_index(N, K), output_index(M, N), M * N // 64)
           for name, (M, N, K, _) in MFMA.items()}


def _to_f64(u16: np.ndarray, kind: str) -> np.ndarray:
    if kind == "bf16":
        return (u16.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    return u16.view(np.float16).astype(np.float64)


def h_mfma(w, ins):
    if ins.mods:
        k = next(iter(ins.mods))
        raise UnknownInstructionError(f"{ins.mnemonic}: modifier {k} (cbsz/abid/blgp/neg) is not supported "
                                      f"(at 0x{ins.addr:x}: {ins.text})", ins.mnemonic, ins.text, ins.addr)
    M, N, K, kind = MFMA[ins.op]
    ia, ib, io, nacc = _LAYOUT[ins.op]
    d, a, b, c = ins.operands
    nin = K * M // 128                                   # registers per input operand
    A = _to_f64(np.ascontiguousarray(w.vrows(a)[:nin]).view(np.uint16).reshape(-1)[ia], kind)
    Bt = _to_f64(np.ascontiguousarray(w.vrows(b)[:nin]).view(np.uint16).reshape(-1)[ib], kind)  # B^T (N, K)
    if c.kind == "i":
        C = np.float64(np.uint32(c.v32).view(np.float32))
    else:
        C = w.vrows(c)[:nacc].reshape(-1).view(np.float32)[io].astype(np.float64)
    D = (A @ Bt.T + C).astype(np.float32)
    out = np.empty(nacc * 64, np.float32)
    out[io.reshape(-1)] = D.reshape(-1)
    # all 64 lanes are written: a matrix op works on the whole wave (partial EXEC is not modelled)
    w.vrows(d)[:nacc] = out.view(np.uint32).reshape(nacc, 64)


HANDLERS = {k: h_mfma for k in MFMA}
