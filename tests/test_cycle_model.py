"""Smoke test of benchmarks/gfx950_cycle_model.py: it parses loops and produces finite numbers.

No speed assertions (the model's predictions are the benchmark's business): only that the replay runs on a
synthetic loop and on our compiled kernel, respects the one bound no schedule can beat (the matrix pipe), and
that barriers, waits and the stagger detection do what they say (each check fails if its semantics is removed).
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hkjit.gfx950 import hipcheck  # noqa: E402

_spec = importlib.util.spec_from_file_location("gfx950_cycle_model", REPO / "benchmarks" / "gfx950_cycle_model.py")
model = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = model  # dataclasses look their module up there
_spec.loader.exec_module(model)

VARIANT = model.Variant(lds_bw=256, barrier_cost=16, global_latency=1000)
MFMA = "v_mfma_f32_16x16x32_bf16 v[0:3], v[4:7], v[8:11], v[0:3]"


def synthetic_loop(barriers: int = 1) -> list[str]:
    """One K=32 step of a 256x256 block per wave: 32 MFMAs (the matrix pipe's 1024 cycles per SIMD), 4 DMAs,
    12 LDS reads, the usual waits."""
    return (["s_waitcnt vmcnt(8)"] + ["s_barrier"] * barriers
            + ["buffer_load_dwordx4 v1, s[0:3], s4 offen lds"] * 4
            + ["ds_read_b128 v[4:7], v2"] * 12
            + ["s_waitcnt lgkmcnt(4)", "s_setprio 1"] + [MFMA] * 16
            + ["s_waitcnt lgkmcnt(0)", "s_nop 1"] + [MFMA] * 16 + ["s_setprio 0", "v_add_u32_e32 v2, 64, v2",
                                                                   "s_add_i32 s4, s4, 64"])


def test_synthetic_loop_runs_and_respects_the_matrix_pipe_bound():
    stream = model.decode(synthetic_loop())
    r = model.simulate(stream, VARIANT, trips=12, warm=4, prologue_dma=12)
    assert r.k_per_trip == 32
    assert math.isfinite(r.cycles_per_k32) and r.cycles_per_k32 > 0
    # 2 waves per SIMD x 32 MFMAs x 16 cycles: no replay can be faster than its matrix pipe
    assert r.cycles_per_k32 >= 2 * 32 * 16
    assert 0 < r.matrix_busy <= 1
    kern = model.Kernel("synthetic", stream, synthetic_loop(), 0, 12, 128, 0)
    for size in model.SIZES:
        t = model.model_tflops(kern, r, VARIANT, size)
        assert math.isfinite(t) and t > 0


def test_decode_counts_and_waits():
    stream = model.decode(synthetic_loop() + ["s_waitcnt vmcnt(3) lgkmcnt(2)", ".LBB0_1:"])
    assert model.mfma_flops(stream) == 32 * 2 * 16 * 16 * 32
    assert stream[-1] == (model.WAIT, model.P_NONE, 3, 2)  # the label is dropped
    assert [c for c in stream if c[0] == model.MFMA][0][2] == 16
    assert [c for c in stream if c[0] == model.LDS_READ][0][2] == 16 * 64


def test_barrier_and_waitcnt_block():
    # a barrier releases only after its cost; a vmcnt(0) wait only after the global latency
    stream = model.decode(synthetic_loop())
    slow_barrier = model.simulate(stream, model.Variant(256, 20000, 1000), trips=3, warm=1)
    assert slow_barrier.cycles_per_trip >= 20000
    waiting = model.decode(["buffer_load_dwordx4 v1, s[0:3], s4 offen lds", "s_waitcnt vmcnt(0)", MFMA])
    r = model.simulate(waiting, model.Variant(256, 16, 5000), trips=3, warm=1)
    assert r.cycles_per_trip >= 5000


def test_stagger_detection():
    before = ["s_and_b32 s0, s1, 4", "s_cbranch_execz .LBB0_4", "s_barrier", ".LBB0_4:", "s_barrier"]
    assert model.conditional_barriers(before) == 1
    assert model.conditional_barriers([x for x in before if not x.startswith("s_cbranch")]) == 0


def test_compiled_kernel_parses_and_models():
    if hipcheck.find_clang() is None:
        pytest.skip(f"clang-22 not found ({hipcheck.DEFAULT_CLANG} or $HKJIT_HIP_CLANG); apt-get install clang-22")
    hk, tc = model.default_hipkittens_root(), model.toolchain_dir()
    if not (hk / "include" / "kittens.cuh").is_file() or not (tc / "rocm" / "include" / "hip").is_dir():
        pytest.skip(f"HipKittens headers ({hk}) or the toolchain's HIP headers ({tc}/rocm) absent; "
                    f"set HIPKITTENS_ROOT / HKJIT_TOOLCHAIN_DIR")
    kern = model.analyse(model.compile_ours(REPO / "kernels" / "gemm_gfx950.hip", hk), "ours")
    assert kern.loop and model.mfma_flops(kern.loop) > 0
    kt = model.mfma_flops(kern.loop) * model.WAVES / (2 * model.TILE * model.TILE)
    r = model.simulate(kern.loop, VARIANT, trips=max(2, int(256 // kt)), warm=1, stagger=kern.stagger,
                       prologue_dma=kern.prologue_dma)
    assert math.isfinite(r.cycles_per_k32) and r.cycles_per_k32 > 0
    assert math.isfinite(model.model_tflops(kern, r, VARIANT, 8192))
