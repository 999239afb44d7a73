"""Standalone check and benchmark of kernels/gemm_sm90a.cu through its C ABI (ctypes), against torch.

usage: python3 check.py LIB.so [VARIANT_NAME=LIB.so ...]

The first library is checked on every correctness shape; every library (variants built with other macros) is timed.
Correctness: fresh random bf16 inputs per shape, output poisoned with NaN (padding columns included), reference in
float64 on the GPU, ||C - ref|| / ||ref|| <= 1e-2, padding columns past N must stay untouched, a second call on
the same inputs must give bit-identical output (a moving result is a race). Timing: CUDA events around every call,
median of repeats after warm-up, rotating among enough input sets to defeat the 50 MB L2, interleaved with
torch.matmul(A, Bt.T, out=C) (cuBLAS) on the same buffers.
"""
import ctypes
import math
import os
import statistics
import sys

import torch

TOL = 1e-2
INVALID_VALUE = 1  # cudaErrorInvalidValue


def load(path):
    lib = ctypes.CDLL(os.path.abspath(path))
    lib.hkjit_gemm_bf16.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                    ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                    ctypes.c_int64, ctypes.c_void_p]
    lib.hkjit_gemm_bf16.restype = ctypes.c_int
    lib.hkjit_gemm_bf16_error.argtypes = [ctypes.c_int]
    lib.hkjit_gemm_bf16_error.restype = ctypes.c_char_p
    return lib


def call(lib, A, lda, Bt, ldb, C, ldc, M, N, K, stream=None):
    s = stream if stream is not None else torch.cuda.current_stream()
    return lib.hkjit_gemm_bf16(A.data_ptr(), lda, Bt.data_ptr(), ldb, C.data_ptr(), ldc, M, N, K, s.cuda_stream)


def pad8(x):
    return max(8, (x + 7) // 8 * 8)


def padded(rows, cols, ld, gen, fill=None):
    """A rows x cols bf16 view with row stride ld (a slice of a rows x ld buffer)."""
    buf = torch.empty(rows, ld, device="cuda", dtype=torch.bfloat16)
    if fill is None:
        buf.normal_(generator=gen)
    else:
        buf.fill_(fill)
    return buf, buf[:, :cols]


def check_one(lib, M, N, K, gen, extra_ld=0, stream=None, twice=False):
    lda, ldb, ldc = pad8(K) + extra_ld, pad8(K) + extra_ld, pad8(N) + extra_ld
    Abuf, A = padded(M, K, lda, gen)
    Bbuf, Bt = padded(N, K, ldb, gen)
    Cbuf, _ = padded(M + 1, N, ldc, gen, fill=float("nan"))  # one poisoned row past M, columns past N
    C = Cbuf[:M, :N]
    rc = call(lib, A, lda, Bt, ldb, C, ldc, M, N, K, stream)
    if rc != 0:
        return dict(ok=False, err=float("nan"), note=f"rc={rc} {lib.hkjit_gemm_bf16_error(rc).decode()}")
    torch.cuda.synchronize()
    ref = A.double() @ Bt.double().T
    out = C.double()
    note = []
    finite = bool(torch.isfinite(out).all())
    if not finite:
        note.append(f"{int((~torch.isfinite(out)).sum())} unwritten/NaN")
    if ldc > N and not bool(torch.isnan(Cbuf[:, N:].float()).all()):
        note.append("wrote past N")
    if not bool(torch.isnan(Cbuf[M].float()).all()):
        note.append("wrote past M")
    refn = ref.norm().item()
    err = (out - ref).norm().item() / refn if refn > 0 else (0.0 if finite and out.abs().max().item() == 0 else 1.0)
    if K == 0:
        err = 0.0 if finite and out.abs().max().item() == 0 else 1.0
    if twice:
        first = C.clone()
        Cbuf.fill_(float("nan"))
        rc = call(lib, A, lda, Bt, ldb, C, ldc, M, N, K, stream)
        torch.cuda.synchronize()
        if rc != 0 or not torch.equal(first.view(torch.int16), C.view(torch.int16)):
            note.append("second call differs (race?)")
    ok = finite and err <= TOL and not note
    return dict(ok=ok, err=err, note="; ".join(note))


def correctness(lib):
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1234)
    shapes = [(1, 1, 1), (3, 70, 5), (257, 193, 255), (64, 192, 300), (4096, 4096, 4096), (8192, 8192, 8192)]
    for K in (64, 128, 192, 256, 4160):
        shapes += [(128, 256, K), (300, 520, K)]
    shapes += [(129, 257, 64), (1000, 1000, 1000), (4097, 4095, 333), (1, 4096, 4096), (4096, 1, 4096),
               (7, 9, 4160), (2048, 3000, 8), (130, 260, 0), (5, 7, 0), (1, 1, 4097), (16384, 128, 96),
               (128, 16384, 96), (1536, 1536, 17)]
    rows = []
    for (M, N, K) in shapes:
        r = check_one(lib, M, N, K, gen, twice=(M * N * K >= 4096 ** 3))
        rows.append((f"{M}x{N}x{K}", r))
    # strides well past the row length, a side stream
    r = check_one(lib, 300, 500, 200, gen, extra_ld=64)
    rows.append(("300x500x200 ld+64", r))
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        r = check_one(lib, 1024, 768, 512, gen, stream=side)
    rows.append(("1024x768x512 side stream", r))
    # misaligned pointer / stride must be refused, with no launch
    A = torch.randn(64, 72, device="cuda", dtype=torch.bfloat16)
    Bt = torch.randn(64, 72, device="cuda", dtype=torch.bfloat16)
    C = torch.full((64, 64), float("nan"), device="cuda", dtype=torch.bfloat16)
    rc1 = lib.hkjit_gemm_bf16(A.data_ptr() + 2, 72, Bt.data_ptr(), 72, C.data_ptr(), 64, 64, 64, 64, None)
    rc2 = lib.hkjit_gemm_bf16(A.data_ptr(), 70, Bt.data_ptr(), 72, C.data_ptr(), 64, 64, 64, 64, None)
    rc3 = lib.hkjit_gemm_bf16(A.data_ptr(), 72, Bt.data_ptr(), 72, C.data_ptr(), 64, -1, 64, 64, None)
    torch.cuda.synchronize()
    refused = rc1 == rc2 == rc3 == INVALID_VALUE and bool(torch.isnan(C.float()).all())
    rows.append(("misaligned/neg refused", dict(ok=refused, err=0.0, note=f"rc={rc1},{rc2},{rc3}")))
    return rows


def bench(libs, shapes, reps=40, warm=10):
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    results = []
    for (M, N, K) in shapes:
        set_bytes = 2 * (M * K + N * K + M * N)
        nsets = max(3, math.ceil(3 * l2 / set_bytes))
        sets = []
        for _ in range(nsets):
            A = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            Bt = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
            C = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
            sets.append((A, Bt, C))
        flops = 2.0 * M * N * K

        def run_hk(lib, A, Bt, C):
            rc = lib.hkjit_gemm_bf16(A.data_ptr(), K, Bt.data_ptr(), K, C.data_ptr(), N, M, N, K,
                                     torch.cuda.current_stream().cuda_stream)
            assert rc == 0, rc

        def run_torch(_, A, Bt, C):
            torch.matmul(A, Bt.T, out=C)

        cands = [("torch", None, run_torch)] + [(name, lib, run_hk) for name, lib in libs]
        times = {name: [] for name, _, _ in cands}
        g = 0  # every call takes the next input set, whichever candidate makes it
        for i in range(warm):
            for name, lib, fn in cands:
                fn(lib, *sets[g % nsets]); g += 1
        torch.cuda.synchronize()
        for half in range(2):  # candidates interleaved call by call, so they see the same clocks
            ev = {name: [] for name, _, _ in cands}
            for i in range(reps):
                for name, lib, fn in cands:
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record(); fn(lib, *sets[g % nsets]); b.record(); g += 1
                    ev[name].append((a, b))
            torch.cuda.synchronize()
            for name in ev:
                times[name] += [a.elapsed_time(b) for a, b in ev[name]]
        med = {name: statistics.median(t) for name, t in times.items()}
        spread = {name: (statistics.median(t[:reps]), statistics.median(t[reps:])) for name, t in times.items()}
        results.append(((M, N, K), {n: flops / (ms * 1e-3) / 1e12 for n, ms in med.items()}, med, spread))
        del sets
        torch.cuda.empty_cache()
    return results


def main():
    libs = []
    for i, arg in enumerate(sys.argv[1:]):
        name, _, path = arg.rpartition("=")
        libs.append((name or ("hk" if i == 0 else f"v{i}"), load(path)))
    dev = torch.cuda.get_device_name(0)
    print(f"device: {dev}  torch {torch.__version__}  cuda {torch.version.cuda}", flush=True)

    rows = correctness(libs[0][1])
    for name, lib in libs[1:]:  # variants: a few shapes only
        gen = torch.Generator(device="cuda")
        gen.manual_seed(99)
        for (M, N, K) in [(257, 193, 255), (4097, 4095, 333), (4096, 4096, 4096)]:
            rows.append((f"[{name}] {M}x{N}x{K}", check_one(lib, M, N, K, gen)))

    bshapes = [(4096, 4096, 4096), (8192, 8192, 8192), (2048, 2048, 2048), (4096, 4096, 1024),
               (8192, 8192, 1024), (4096, 14336, 4096), (8192, 4096, 14336), (16384, 4096, 4096),
               (4000, 4000, 4000),
               # smaller and skinny shapes, for the dispatch policy's thresholds
               (1024, 1024, 1024), (512, 512, 512), (256, 256, 256), (1024, 1024, 8192), (128, 4096, 4096),
               (4096, 128, 4096), (16, 4096, 4096), (64, 8192, 8192), (2048, 8192, 2048), (3000, 5000, 712)]
    only = os.environ.get("BENCH_SHAPES")
    if only:
        bshapes = [tuple(int(x) for x in s.split("x")) for s in only.split(",")]
    bad = [sh for sh in bshapes if sh[2] % 8]
    assert not bad, f"bench shapes need K % 8 == 0 (contiguous operands): {bad}"
    res = bench(libs, bshapes)

    print("\n== correctness (rel. Frobenius error vs float64; tol 1e-2) ==")
    nfail = 0
    for name, r in rows:
        nfail += not r["ok"]
        print(f"{name:>28}  {'PASS' if r['ok'] else 'FAIL'}  err={r['err']:.2e}  {r['note']}")
    print(f"\n== TFLOP/s, median of {2*40} event-timed calls, rotating inputs; {dev} ==")
    names = ["torch"] + [n for n, _ in libs]
    print(f"{'M x N x K':>20} " + " ".join(f"{n:>10}" for n in names) + " " +
          " ".join(f"{n + '/torch':>12}" for n in names[1:]) + "   (half-medians ms: " + ", ".join(names) + ")")
    for (M, N, K), tf, med, spread in res:
        line = f"{f'{M}x{N}x{K}':>20} " + " ".join(f"{tf[n]:10.1f}" for n in names) + " "
        line += " ".join(f"{tf[n] / tf['torch']:12.3f}" for n in names[1:])
        line += "   " + ", ".join(f"{spread[n][0]:.3f}/{spread[n][1]:.3f}" for n in names)
        print(line)
    print(f"\ncorrectness: {len(rows) - nfail}/{len(rows)} pass")
    sys.exit(1 if nfail else 0)


if __name__ == "__main__":
    main()
