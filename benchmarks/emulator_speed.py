"""Speed of the gfx950 emulator on the real kernel: one 256 x 256 x K workgroup of kernels/gemm_gfx950.hip.

    PYTHONPATH=src python benchmarks/emulator_speed.py [K=256] [runs=3]

Prints instructions executed, wall and CPU seconds and instructions per CPU second for each run (CPU time,
because the wall clock of a shared machine says more about the neighbours than about the emulator).
"""
from __future__ import annotations

import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hkjit.gfx950 import hipcheck
from hkjit.gfx950.emulator import CodeObject, GlobalMemory, Launch, run


def main() -> None:
    K = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    src = Path(__file__).resolve().parents[1] / "kernels" / "gemm_gfx950.hip"
    with tempfile.TemporaryDirectory() as td:
        t = time.perf_counter()
        out = hipcheck.compile_code_object(src, Path(td) / "k.co", "gfx950",
                                           extra_flags=["-DHKJIT_NOGPULIB_SHIMS", f"-I{src.parent}"])
        t_compile = time.perf_counter() - t
        t = time.perf_counter()
        co = CodeObject.from_file(out)
        t_load = time.perf_counter() - t
    name = next(n for n in co.kernels if "gemm_bf16_kernel" in n)
    print(f"compile {t_compile:.1f} s, load + disassemble {t_load:.2f} s, {len(co.kernels[name].instructions)} "
          f"instructions in the kernel")
    M = N = 256
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1 << 16, (M, K), dtype=np.uint16) & np.uint16(0xBFFF)
    b = rng.integers(0, 1 << 16, (N, K), dtype=np.uint16) & np.uint16(0xBFFF)
    for seed in range(runs):
        mem = GlobalMemory()
        pa, pb, pc = mem.alloc(a.nbytes), mem.alloc(b.nbytes), mem.alloc(M * N * 2)
        mem.write(pa, a)
        mem.write(pb, b)
        ka = struct.pack("<QQQiiiiiiii", pa, pb, pc, K, K, N, M, N, K, 1, 1)
        w, c = time.perf_counter(), time.process_time()
        rep = run(co, Launch(kernel=name, grid=(1, 1, 1), block=(512, 1, 1), kernarg=ka, dynamic_lds=131072,
                             seed=seed), mem)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        print(f"seed {seed}: 256x256x{K}: {rep.instructions} instructions, {wall:.2f} s wall, {cpu:.2f} s CPU, "
              f"{rep.instructions / cpu:,.0f} instructions per CPU second, hazards {len(rep.hazards)}")


if __name__ == "__main__":
    main()
