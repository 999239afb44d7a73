"""The dispatch policy: when hkjit.gemm runs its kernel and when it hands the product to torch.matmul.

The policy is a table (data): per arch, rules tried in order, the first whose metric is below its bound sends
the call where it says; no rule matched means the kernel. The bounds are where the kernel is expected to win
(measured on the H100 for sm_90a; from HipKittens' published MI355X numbers for gfx950). ``HKJIT_DISPATCH``
(auto|kernel|torch, read once per process) or ``with hkjit.dispatch("torch"):`` override it; the context manager
wins over the variable.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import NamedTuple

from .config import env_choice
from .specs import get_spec

MODES = ("auto", "kernel", "torch")


class Rule(NamedTuple):
    name: str
    metric: str      # "mnk" (M*N*K), "m", "n", "k", "fill" (useful fraction of the block tiles' area), or
                     # "aligned" (1 when N and K are multiples of 8, i.e. BLAS libraries get 16-byte rows, else 0)
    below: float     # the rule applies when metric < below
    path: str        # "torch" or "kernel"
    why: str


class ArchPolicy(NamedTuple):
    rules: tuple[Rule, ...]
    default_reason: str


POLICY: dict[str, ArchPolicy] = {
    # The CPU kernel is hkjit's portable reference: it runs every non-empty product so that the whole path is
    # exercised wherever hkjit is installed. For CPU speed, HKJIT_DISPATCH=torch.
    "cpu": ArchPolicy((), "the CPU runs hkjit's reference kernel (for speed on CPU set HKJIT_DISPATCH=torch)"),
    # Measured on an H100 80GB HBM3 against cuBLAS (`python -m hkjit bench`, kernel forced, three runs on
    # 2026-11-25; the kernel alone: benchmarks/sm90a_standalone/NOTES.md). The kernel wins clearly where cuBLAS
    # leaves its fast path (N or K not a multiple of 8: 5.6-5.7x) and consistently, by a little, from 2^38
    # multiply-adds up (8192x8192x4096 1.02x twice, 8192^3 1.01-1.15x). Below that, on full tiles, it is at parity
    # within run-to-run noise (4096^3 0.99x; 6144^3 1.04x then 0.97x; K = 1024 1.00x then 1.08x), and it loses on
    # few tiles (1024^3 0.5x, 2048^3 0.5-0.6x, M = 256 0.5-0.7x). Parity goes to cuBLAS: a win must be measured.
    "sm_90a": ArchPolicy((
        Rule("tiny", "mnk", 2 ** 35, "torch", "under 2^35 multiply-adds (2048^3: 0.64x in hkjit's bench) there are "
             "too few 128x256 tiles for 132 SMs and the launch costs more host time: cuBLAS wins"),
        Rule("skinny-m", "m", 2048, "torch", "M < 2048: too few row tiles (M=256: 0.71x), cuBLAS's split-K/GEMV "
             "paths win"),
        Rule("skinny-n", "n", 2048, "torch", "N < 2048: too few column tiles (N=1024: 0.98x), cuBLAS wins"),
        Rule("shallow-k", "k", 2048, "torch", "K < 2048: the epilogue is not hidden behind a short main loop "
             "(16384x8192x1024: 1.00-1.08x, no consistent win), cuBLAS kept"),
        Rule("unaligned", "aligned", 1, "kernel", "N or K is not a multiple of 8: cuBLAS leaves its fast paths "
             "(4097x4095x4096: 105 TFLOP/s), hkjit pads the row strides and keeps TMA (597 TFLOP/s, 5.7x)"),
        Rule("parity", "mnk", 2 ** 38, "torch", "under 2^38 multiply-adds the kernel is at parity with cuBLAS "
             "within run-to-run noise (4096^3: 0.99x, 6144^3: 0.97-1.04x), cuBLAS kept"),
        Rule("ragged", "fill", 0.99, "torch", "over 1% of the 128x256 tiles' area is padding: cuBLAS wins"),
    ), "at least 2^38 multiply-adds on full tiles: the kernel beats cuBLAS here (H100: 8192^3 1.01-1.15x)"),
    # Not measured (no MI350X available to us): conservative bounds in the same shape as the H100's, scaled to
    # the 256x256 block; `python -m hkjit bench` on an MI350X tells where to move them.
    "gfx950": ArchPolicy((
        Rule("tiny", "mnk", 2048 ** 3, "torch", "under 2048^3 there are too few 256x256 blocks to fill 256 CUs"),
        Rule("skinny-m", "m", 1024, "torch", "M < 1024: too few row blocks, hipBLASLt wins"),
        Rule("skinny-n", "n", 1024, "torch", "N < 1024: too few column blocks, hipBLASLt wins"),
        Rule("shallow-k", "k", 512, "torch", "K < 512: under 16 K tiles, the pipeline never reaches steady state"),
        Rule("ragged", "fill", 0.97, "torch", "over 3% of the 256x256 blocks' area is padding"),
    ), "large enough and block-aligned for the kernel (bounds not yet measured on MI350X)"),
}

#: Row strides (elements) a kernel cannot address, per arch: the gfx950 launcher keeps every row offset of a
#: 256-row block inside the 32-bit buffer range (256 * ld * 2 bytes < 2^31, kernels/gemm_gfx950.hip), so a product
#: whose own rows need ld >= 2^22 (N, or K rounded up to 8) goes to torch even when the kernel is forced, and an
#: operand whose row stride alone is that wide is copied to compact rows (plan.make_plan).
MAX_LEADING_DIM: dict[str, int] = {"gfx950": 1 << 22}

_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar("hkjit_dispatch", default=None)


@functools.lru_cache(maxsize=1)
def env_mode() -> str:
    """HKJIT_DISPATCH, read once per process (an environment lookup costs microseconds on every call's path);
    ``hkjit.dispatch()`` changes the mode at run time."""
    return env_choice("HKJIT_DISPATCH", MODES, "auto")


def current_mode() -> str:
    return _mode.get() or env_mode()


@contextlib.contextmanager
def dispatch(mode: str):
    """``with hkjit.dispatch("torch"): ...`` forces a path for the calls inside (auto, kernel or torch)."""
    if mode not in MODES:
        raise ValueError(f"hkjit.dispatch({mode!r}): use one of {', '.join(MODES)}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


class Decision(NamedTuple):
    path: str     # "kernel" | "torch" | "empty"
    rule: str
    reason: str


def tile_fill(m: int, n: int, block_m: int, block_n: int) -> float:
    return (m * n) / (-(-m // block_m) * block_m * -(-n // block_n) * block_n)


_EMPTY = Decision("empty", "empty", "a zero-size dimension: the result is empty or all zeros, no kernel needed")
_decided: dict[tuple[str, int, int, int], Decision] = {}    # auto decisions: a dict hit on every later call


def decide(arch: str, m: int, n: int, k: int) -> Decision:
    if m == 0 or n == 0 or k == 0:
        return _EMPTY
    mode = current_mode()
    if mode != "auto":
        if mode == "kernel" and (wide := _too_wide(arch, n, k)) is not None:
            return wide
        return Decision(mode, f"forced-{mode}", f"forced by {'hkjit.dispatch' if _mode.get() else 'HKJIT_DISPATCH'}")
    key = (arch, m, n, k)
    decision = _decided.get(key)
    if decision is None:
        if len(_decided) > 65536:       # bounded: a model sees a few hundred shapes, a sweep may see millions
            _decided.clear()
        decision = _decided[key] = _decide_auto(arch, m, n, k)
    return decision


def _too_wide(arch: str, n: int, k: int) -> Decision | None:
    """The torch route for a product whose rows (N for C, K for A and Bᵀ) the arch's kernel cannot address."""
    limit = MAX_LEADING_DIM.get(arch)
    if limit is None or -(-max(n, k) // 8) * 8 < limit:
        return None
    return Decision("torch", "leading-dim", f"N or K reaches {limit} (2^{limit.bit_length() - 1}): row offsets "
                    f"past the kernel's 32-bit buffer range, torch.matmul computes it (even when the kernel is "
                    f"forced)")


def _decide_auto(arch: str, m: int, n: int, k: int) -> Decision:
    if (wide := _too_wide(arch, n, k)) is not None:
        return wide
    c = get_spec(arch).constraints
    metrics = {"mnk": m * n * k, "m": m, "n": n, "k": k, "fill": tile_fill(m, n, c.block_m, c.block_n),
               "aligned": int(n % 8 == 0 and k % 8 == 0)}
    policy = POLICY[arch]
    for rule in policy.rules:
        if metrics[rule.metric] < rule.below:
            return Decision(rule.path, rule.name, rule.why)
    return Decision("kernel", "default", policy.default_reason)
