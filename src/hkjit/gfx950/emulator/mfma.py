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


def _input_matrix(rows: np.ndarray, M: int, K: int, kind: str) -> np.ndarray:
    """(M, K) float64 matrix from the (nregs, 64) register block of an A (or B^T) operand."""
    E = K // (64 // M)                         # elements per lane
    per_lane = np.ascontiguousarray(rows.T).view(np.uint16)  # (64, 2 * nregs): lane's packed values, low half first
    per_lane = per_lane[:, :E]
    if kind == "bf16":
        vals = bf16_to_f32(per_lane)
    else:
        vals = per_lane.view(np.float16).astype(np.float32)
    # lane = (k // E) * M + i  ->  vals.reshape(K // E, M, E)[kg, i, e] = X[i, kg * E + e]
    return vals.reshape(K // E, M, E).transpose(1, 0, 2).reshape(M, K).astype(np.float64)


def _acc_to_matrix(rows: np.ndarray, M: int, N: int) -> np.ndarray:
    """(M, N) view-order matrix from the accumulator registers (32-bit C/D layout)."""
    if M == 16:
        # register r, lane g*16 + j holds D[4 g + r, j]
        return rows.reshape(4, 4, 16).transpose(1, 0, 2).reshape(16, 16)
    # 32x32: register 4*q + r (q = 0..3), lane h*32 + j holds D[8 q + 4 h + r, j]
    return rows.reshape(4, 4, 2, 32).transpose(0, 2, 1, 3).reshape(32, 32)


def _matrix_to_acc(d: np.ndarray, M: int, N: int) -> np.ndarray:
    if M == 16:
        return d.reshape(4, 4, 16).transpose(1, 0, 2).reshape(4, 64)
    return d.reshape(4, 2, 4, 32).transpose(0, 2, 1, 3).reshape(16, 64)


def h_mfma(w, ins):
    bad = [k for k, v in ins.mods.items() if v and k not in ()]
    if bad:
        raise UnknownInstructionError(f"{ins.mnemonic}: modifier {bad[0]} (cbsz/abid/blgp/neg) is not supported "
                                      f"(at 0x{ins.addr:x}: {ins.text})", ins.mnemonic, ins.text, ins.addr)
    M, N, K, kind = MFMA[ins.op]
    d, a, b, c = ins.operands
    A = _input_matrix(w.vrows(a), M, K, kind)
    Bt = _input_matrix(w.vrows(b), N, K, kind)   # B (K x N) stored column j like A's row j
    nacc = M * N // 64
    if c.kind == "i":
        C = np.full((M, N), np.float32(np.uint32(c.v32).view(np.float32)), np.float64)
    else:
        C = _acc_to_matrix(w.vrows(c)[:nacc].view(np.float32), M, N).astype(np.float64)
    D = (A @ Bt.T + C).astype(np.float32)
    out = _matrix_to_acc(D, M, N).view(np.uint32)
    dst = w.vrows(d)
    if w.exec_full:
        dst[...] = out
    else:  # MFMA ignores EXEC on CDNA (it always writes all lanes); keep that
        dst[...] = out


HANDLERS = {k: h_mfma for k in MFMA}
