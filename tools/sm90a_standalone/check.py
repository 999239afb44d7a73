"""Standalone check and benchmark of kernels/gemm_sm90a.cu configurations through the C ABI (ctypes), vs torch.

usage: python3 check.py NAME=LIB.so [NAME=LIB.so ...]   (one library per configuration; the first is the default)
       python3 check.py --smoke LIB.so                  (five shapes, one library: the hang/crash filter)

Correctness, every library on every shape: fresh random bf16 inputs per shape, output poisoned with NaN (padding
columns and one row past M included), reference in float64 on the GPU (computed once per shape, shared by the
libraries), ||C - ref|| / ||ref|| <= 1e-2, padding past N / M untouched, and on large or split-K shapes a second
call on the same inputs must give bit-identical output (a moving result is a race; split-K is deterministic).
Timing (TIMING=graph, default): per candidate a CUDA graph of >= 1 ms of calls (at least one call per input set,
rotating among enough sets to defeat the L2), 30 replays timed with CUDA events, candidates interleaved replay by
replay in a fresh random order each round, median per call. Graphs keep the small (decode) shapes GPU-bound: timed
call by call from Python they are host-bound (torch's ratio to itself moved 0.6-1.7x, 2026-12-01). TIMING=eager:
events around every call, 40 calls. torch.matmul(A, Bt.T, out=C) is cuBLAS; "torch2" is torch timed a second time
(its ratio is the noise floor).
Shapes: BENCH_SET=llm (src/hkjit/shapes.py, default), old (the 2026-11 list), both; EXTRA_SHAPES=MxNxK,...
adds shapes; BENCH_SHAPES=MxNxK,... replaces them all; BENCH_MAX_M=256 keeps the shapes with M <= 256. Libraries named mut_* are mutants (run.sh plants one bug in
each): each must fail at least one correctness shape (else the run fails: the check could not see that bug); they
are not timed. Libraries named x_* are timing experiments (wrong output allowed, not counted).
Tables go to stdout and, as markdown and JSON, to $OUT (or the build folder).
"""
import ctypes
import json
import math
import os
import random
import statistics
import sys
import time

import torch

TOL = 1e-2
TIMING = os.environ.get("TIMING", "graph")   # graph: replays of a CUDA graph of `per` calls; eager: call by call
GRAPH_REPS = 15                               # timed replays per half (two halves)
INVALID_VALUE = 1  # cudaErrorInvalidValue
HERE = os.path.dirname(os.path.abspath(__file__))


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


def llm_shapes():
    """The LLM set of src/hkjit/shapes.py (one list for `hkjit bench --shapes llm`, `tune` and this harness), as
    (label, M, N, K); the file is executed on its own, so neither hkjit nor its dependencies are imported."""
    ns = {}
    path = os.path.join(HERE, "..", "..", "src", "hkjit", "shapes.py")
    exec(compile(open(path).read(), path, "exec"), ns)
    return [(f"{label.replace(' ', '-')}-{m}x{n}x{k}", m, n, k) for label, (m, n, k) in ns["LLM_SHAPES"]]


class Case:
    """One correctness shape: padded inputs, the float64 reference, and a poisoned output buffer."""

    def __init__(self, M, N, K, gen, extra_ld=0):
        self.M, self.N, self.K = M, N, K
        self.lda, self.ldb, self.ldc = pad8(K) + extra_ld, pad8(K) + extra_ld, pad8(N) + extra_ld
        Abuf = torch.empty(M, self.lda, device="cuda", dtype=torch.bfloat16).normal_(generator=gen)
        Bbuf = torch.empty(N, self.ldb, device="cuda", dtype=torch.bfloat16).normal_(generator=gen)
        self.A, self.Bt = Abuf[:, :K], Bbuf[:, :K]
        self.Cbuf = torch.empty(M + 1, self.ldc, device="cuda", dtype=torch.bfloat16)
        self.C = self.Cbuf[:M, :N]
        self.ref = self.A.double() @ self.Bt.double().T

    def run(self, lib, stream=None, twice=False):
        M, N, K = self.M, self.N, self.K
        self.Cbuf.fill_(float("nan"))
        rc = call(lib, self.A, self.lda, self.Bt, self.ldb, self.C, self.ldc, M, N, K, stream)
        if rc != 0:
            return dict(ok=False, err=float("nan"), note=f"rc={rc} {lib.hkjit_gemm_bf16_error(rc).decode()}")
        torch.cuda.synchronize()
        out = self.C.double()
        note = []
        finite = bool(torch.isfinite(out).all())
        if not finite:
            note.append(f"{int((~torch.isfinite(out)).sum())} unwritten/NaN")
        if self.ldc > N and not bool(torch.isnan(self.Cbuf[:, N:].float()).all()):
            note.append("wrote past N")
        if not bool(torch.isnan(self.Cbuf[M].float()).all()):
            note.append("wrote past M")
        refn = self.ref.norm().item()
        if K == 0 or refn == 0:
            err = 0.0 if finite and out.abs().max().item() == 0 else 1.0
        else:
            err = (out - self.ref).norm().item() / refn
        if twice:
            first = self.C.clone()
            self.Cbuf.fill_(float("nan"))
            rc = call(lib, self.A, self.lda, self.Bt, self.ldb, self.C, self.ldc, M, N, K, stream)
            torch.cuda.synchronize()
            if rc != 0 or not torch.equal(first.view(torch.int16), self.C.view(torch.int16)):
                note.append("second call differs (race?)")
        ok = finite and err <= TOL and not note
        return dict(ok=ok, err=err, note="; ".join(note))


CHAIN_NOTE = "chained calls wrong (a read before the kernel before finished?)"


def worst_rel_err(pairs) -> float:
    """The worst ||out - ref|| / ||ref|| over (output, float64 reference) pairs; inf when an output holds NaN (the
    poison was read)."""
    err = 0.0
    for out, ref in pairs:
        e = ((out.double() - ref).norm() / ref.norm()).item()
        err = max(err, e) if e == e else float("inf")
    return err


def chain(lib, M, K, gen):
    """Three calls back to back, no synchronisation between them: C1 = A Bt^T; C2 = C1 Bt^T (reads what the call
    before wrote); A = D Bt^T (overwrites what the first call read). A kernel that touches global memory before the
    kernel before it is done (programmatic dependent launch without its wait) reads the NaN poison of C1 or gets C1
    wrong. Three rounds with fresh inputs; the worst relative error against float64 of each output."""
    err = 0.0
    Bt = (torch.randn(K, K, device="cuda", generator=gen) / K ** 0.5).to(torch.bfloat16)
    C1 = torch.empty(M, K, device="cuda", dtype=torch.bfloat16)
    C2 = torch.empty_like(C1)
    for _ in range(3):
        A = torch.randn(M, K, device="cuda", generator=gen).to(torch.bfloat16)
        D = torch.randn(M, K, device="cuda", generator=gen).to(torch.bfloat16)
        A0 = A.clone()
        C1.fill_(float("nan"))
        C2.fill_(float("nan"))
        torch.cuda.synchronize()
        rcs = [call(lib, A, K, Bt, K, C1, K, M, K, K), call(lib, C1, K, Bt, K, C2, K, M, K, K),
               call(lib, D, K, Bt, K, A, K, M, K, K)]
        torch.cuda.synchronize()
        if any(rcs):
            return dict(ok=False, err=float("nan"), note=f"rc={rcs}")
        err = max(err, worst_rel_err(((C1, A0.double() @ Bt.double().T), (C2, C1.double() @ Bt.double().T),
                                       (A, D.double() @ Bt.double().T))))
    return dict(ok=err <= TOL, err=err, note="" if err <= TOL else CHAIN_NOTE)


def chain_after_long(lib, gen, K0=32768, N=1024):
    """The race a missing wait opens most widely: a long first call on few CTAs (16 x N x K0: most SMs idle), then a
    call reading its output (C2 = C1 W^T), which a programmatic launch may schedule on the idle SMs at once."""
    A = torch.randn(16, K0, device="cuda", generator=gen).to(torch.bfloat16)
    B0 = (torch.randn(N, K0, device="cuda", generator=gen) / K0 ** 0.5).to(torch.bfloat16)
    W = (torch.randn(N, N, device="cuda", generator=gen) / N ** 0.5).to(torch.bfloat16)
    C1 = torch.full((16, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    C2 = torch.full_like(C1, float("nan"))
    torch.cuda.synchronize()
    rcs = [call(lib, A, K0, B0, K0, C1, N, 16, N, K0), call(lib, C1, N, W, N, C2, N, 16, N, N)]
    torch.cuda.synchronize()
    if any(rcs):
        return dict(ok=False, err=float("nan"), note=f"rc={rcs}")
    err = worst_rel_err(((C1, A.double() @ B0.double().T), (C2, C1.double() @ W.double().T)))
    return dict(ok=err <= TOL, err=err, note="" if err <= TOL else CHAIN_NOTE)


def graph_replays(lib, M, N, K, gen, rounds=3):
    """One call captured in a CUDA graph, replayed `rounds` times with fresh A and a NaN-poisoned C before each:
    every replay reuses the captured launch's arguments (the split-K counters' stamp among them), so a replay that
    finds the last one's counters not put back sums too early and reads the poison."""
    A = torch.empty(M, K, device="cuda", dtype=torch.bfloat16)
    Bt = torch.randn(N, K, device="cuda", generator=gen).to(torch.bfloat16)
    C = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
    A.normal_(generator=gen)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):                     # a first call outside the capture (set-up, pool)
        rc = call(lib, A, K, Bt, K, C, N, M, N, K, side)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    if rc:
        return dict(ok=False, err=float("nan"), note=f"rc={rc}")
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        rc = call(lib, A, K, Bt, K, C, N, M, N, K)
    if rc:
        return dict(ok=False, err=float("nan"), note=f"rc={rc} in capture")
    err = 0.0
    for _ in range(rounds):
        A.normal_(generator=gen)
        C.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        err = max(err, worst_rel_err(((C, A.double() @ Bt.double().T),)))
    del g
    return dict(ok=err <= TOL, err=err, note="" if err <= TOL else "graph replay wrong (a launch's state reused?)")


def correctness(libs):
    """rows of (shape label, {lib name: result})."""
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1234)
    shapes = [(1, 1, 1), (3, 70, 5), (257, 193, 255), (64, 192, 300), (4096, 4096, 4096), (8192, 8192, 8192)]
    for K in (64, 128, 192, 256, 4160):
        shapes += [(128, 256, K), (300, 520, K)]
    shapes += [(129, 257, 64), (1000, 1000, 1000), (4097, 4095, 333), (1, 4096, 4096), (4096, 1, 4096),
               (7, 9, 4160), (2048, 3000, 8), (130, 260, 0), (5, 7, 0), (1, 1, 4097), (16384, 128, 96),
               (128, 16384, 96), (1536, 1536, 17),
               # odd N ending in the register-stored columns of BN = 80, 96, 160 tiles (128..159 of 160, ...)
               (200, 2399, 320),
               # few tiles: these take the split-K path in SPLITK builds (ragged K, N % 8 != 0, M not a tile multiple)
               (16, 4096, 4096), (16, 4095, 4100), (100, 1000, 5000), (256, 8192, 8192), (128, 8192, 8192),
               (64, 28672, 4096), (200, 520, 1000), (33, 130, 64 * 64 + 8), (3000, 5000, 7000),
               # many tiles and a row pitch off the 128-byte grid: the repack path in REPACK builds
               (4096, 4096, 4104), (2048, 8192, 1000)]
    rows = []
    for (M, N, K) in shapes:
        case = Case(M, N, K, gen)
        big = M * N * K >= 4096 ** 3 or (M <= 256 and K >= 1000)
        rows.append((f"{M}x{N}x{K}", {name: case.run(lib, twice=big) for name, lib in libs}))
        del case
    case = Case(300, 500, 200, gen, extra_ld=64)  # strides well past the row length
    rows.append(("300x500x200 ld+64", {name: case.run(lib) for name, lib in libs}))
    case = Case(48, 2000, 3000, gen, extra_ld=24)
    rows.append(("48x2000x3000 ld+24", {name: case.run(lib) for name, lib in libs}))
    case = Case(2048, 4096, 520, gen, extra_ld=8)  # repacked with a stride past K
    rows.append(("2048x4096x520 ld+8", {name: case.run(lib) for name, lib in libs}))
    for (M, K) in ((16, 4096), (256, 4096), (4096, 4096)):   # back-to-back calls (PDL builds overlap them)
        rows.append((f"{M}x{K}x{K} chained", {name: chain(lib, M, K, gen) for name, lib in libs}))
    rows.append(("16x1024x32768 then 16x1024x1024", {name: chain_after_long(lib, gen) for name, lib in libs}))
    for (M, N, K) in ((64, 4096, 4096), (200, 8192, 2048)):   # split K in SPLITK builds: replays reuse the stamp
        rows.append((f"{M}x{N}x{K} graph x3", {name: graph_replays(lib, M, N, K, gen) for name, lib in libs}))
    side = torch.cuda.Stream()
    for (M, N, K) in [(1024, 768, 512), (32, 768, 4096)]:   # the second one splits K in SPLITK builds
        with torch.cuda.stream(side):
            case = Case(M, N, K, gen)
            res = {name: case.run(lib, stream=side) for name, lib in libs}
        rows.append((f"{M}x{N}x{K} side stream", res))
    # misaligned pointer / stride / negative size must be refused, with no launch
    A = torch.randn(64, 72, device="cuda", dtype=torch.bfloat16)
    Bt = torch.randn(64, 72, device="cuda", dtype=torch.bfloat16)
    res = {}
    for name, lib in libs:
        C = torch.full((64, 64), float("nan"), device="cuda", dtype=torch.bfloat16)
        rc1 = lib.hkjit_gemm_bf16(A.data_ptr() + 2, 72, Bt.data_ptr(), 72, C.data_ptr(), 64, 64, 64, 64, None)
        rc2 = lib.hkjit_gemm_bf16(A.data_ptr(), 70, Bt.data_ptr(), 72, C.data_ptr(), 64, 64, 64, 64, None)
        rc3 = lib.hkjit_gemm_bf16(A.data_ptr(), 72, Bt.data_ptr(), 72, C.data_ptr(), 64, -1, 64, 64, None)
        torch.cuda.synchronize()
        refused = rc1 == rc2 == rc3 == INVALID_VALUE and bool(torch.isnan(C.float()).all())
        res[name] = dict(ok=refused, err=0.0, note=f"rc={rc1},{rc2},{rc3}")
    rows.append(("misaligned/neg refused", res))
    return rows


def bench(libs, shapes, warm=5, reps=20):
    """Per shape: {candidate: median ms}, and the two half-medians (the spread)."""
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    results = []
    for (label, M, N, K) in shapes:
        t0 = time.time()
        set_bytes = 2 * (M * K + N * K + M * N)
        nsets = max(2, math.ceil(3 * l2 / set_bytes))
        sets = []
        for _ in range(nsets):
            A = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            Bt = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
            C = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
            sets.append((A, Bt, C))

        def run_hk(lib, A, Bt, C):
            rc = lib.hkjit_gemm_bf16(A.data_ptr(), K, Bt.data_ptr(), K, C.data_ptr(), N, M, N, K,
                                     torch.cuda.current_stream().cuda_stream)
            if rc != 0:
                raise RuntimeError(f"hkjit_gemm_bf16 rc={rc} at {M}x{N}x{K}")

        def run_torch(_, A, Bt, C):
            torch.matmul(A, Bt.T, out=C)

        cands = [("torch", None, run_torch), ("torch2", None, run_torch)] + [(n, lib, run_hk) for n, lib in libs]
        g = 0  # every call takes the next input set, whichever candidate makes it
        for i in range(warm):
            for name, lib, fn in cands:
                fn(lib, *sets[g % nsets]); g += 1
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); run_torch(None, *sets[0]); b.record(); torch.cuda.synchronize()
        per = max(nsets, min(64, math.ceil(1.0 / max(a.elapsed_time(b), 1e-3))))   # calls per graph: >= ~1 ms
        mode = TIMING
        graphs = {}
        if mode == "graph":
            try:
                for ci, (name, lib, fn) in enumerate(cands):
                    gr = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(gr):
                        for j in range(per):
                            fn(lib, *sets[(ci + j) % nsets])
                    graphs[name] = gr
                for gr in graphs.values():
                    gr.replay()
                torch.cuda.synchronize()
            except Exception as e:  # a capture that fails: this shape is timed call by call instead
                print(f"graph capture failed at {M}x{N}x{K} ({e}); timing eagerly", flush=True)
                graphs, mode = {}, "eager"
                torch.cuda.synchronize()
        times = {name: [] for name, _, _ in cands}
        rng = random.Random(f"{M}x{N}x{K}")
        n_rep = reps if mode == "eager" else GRAPH_REPS
        for half in range(2):
            ev = {name: [] for name, _, _ in cands}
            for i in range(n_rep):
                # a fresh random order every round: each candidate follows every other one about equally often.
                # (A fixed cyclic order biases power-limited shapes: a kernel right after a low-power one runs up
                # to 9% faster, seen 2026-12-01 on 8192x28672x8192.)
                order = list(cands)
                rng.shuffle(order)
                for name, lib, fn in order:
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    if mode == "graph":
                        graphs[name].replay()
                    else:
                        fn(lib, *sets[g % nsets]); g += 1
                    b.record()
                    ev[name].append((a, b))
            torch.cuda.synchronize()
            div = per if mode == "graph" else 1
            for name in ev:
                times[name] += [a.elapsed_time(b) / div for a, b in ev[name]]
        del graphs
        med = {name: statistics.median(t) for name, t in times.items()}
        spread = {name: (statistics.median(t[:n_rep]), statistics.median(t[n_rep:])) for name, t in times.items()}
        results.append(dict(label=label, shape=(M, N, K), ms=med, half_ms=spread, mode=mode, calls_per_replay=per,
                            secs=time.time() - t0))
        del sets
        torch.cuda.empty_cache()
    return results


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def table(results, names, dev):
    """Markdown: shape, cuBLAS TFLOP/s, each configuration's speed-up over cuBLAS, the best."""
    hdr = ["label", "M x N x K", "cuBLAS TF/s", "torch2"] + names + ["best", "best x"]
    lines = [f"H200 table ({dev}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); speed-up = torch ms / "
             f"config ms; timing {TIMING}: " + (f"median of {2 * GRAPH_REPS} event-timed replays of a CUDA graph of >= 1 ms of calls "
             "(rotated inputs), candidates interleaved replay by replay in a random order per round; '*' = eager fallback"
             if TIMING == "graph" else "median of 40 interleaved event-timed calls, rotated inputs, random order per round"),
             "", "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    ratios = {n: [] for n in names + ["best", "torch2"]}
    for r in results:
        M, N, K = r["shape"]
        tf = 2.0 * M * N * K / (r["ms"]["torch"] * 1e-3) / 1e12
        rat = {n: r["ms"]["torch"] / r["ms"][n] for n in names + ["torch2"]}
        best = max(names, key=lambda n: rat[n])
        for n in names + ["torch2"]:
            ratios[n].append(rat[n])
        ratios["best"].append(rat[best])
        lines.append("| " + " | ".join([r["label"] + ("*" if r.get("mode") == "eager" and TIMING == "graph" else ""),
                                        f"{M}x{N}x{K}", f"{tf:.0f}", f"{rat['torch2']:.2f}"] +
                                       [f"{rat[n]:.3f}" for n in names] + [best, f"{rat[best]:.3f}"]) + " |")
    lines.append("| geomean | | | " + f"{geomean(ratios['torch2']):.3f} | " +
                 " | ".join(f"{geomean(ratios[n]):.3f}" for n in names) + f" | | {geomean(ratios['best']):.3f} |")
    return "\n".join(lines)


def smoke(path):
    """A few shapes on one library, in its own process: run.sh drops a configuration that fails or hangs here."""
    lib = load(path)
    gen = torch.Generator(device="cuda")
    gen.manual_seed(7)
    bad = 0
    for (M, N, K) in [(257, 193, 255), (4097, 4095, 333), (16, 4095, 4100), (128, 8192, 8192), (5, 7, 0)]:
        r = Case(M, N, K, gen).run(lib, twice=True)
        bad += not r["ok"]
        print(f"smoke {os.path.basename(path)} {M}x{N}x{K}: {'ok' if r['ok'] else 'FAIL'} err={r['err']:.2e} {r['note']}")
    sys.exit(1 if bad else 0)


def main():
    if sys.argv[1] == "--smoke":
        return smoke(sys.argv[2])
    libs = []
    for i, arg in enumerate(sys.argv[1:]):
        name, _, path = arg.rpartition("=")
        libs.append((name or ("hk" if i == 0 else f"v{i}"), load(path)))
    names = [n for n, _ in libs]
    dev = torch.cuda.get_device_name(0)
    out_dir = os.environ.get("OUT") or os.path.dirname(os.path.abspath(sys.argv[1].rpartition("=")[2]))
    print(f"device: {dev}  torch {torch.__version__}  cuda {torch.version.cuda}", flush=True)

    t0 = time.time()
    rows = correctness(libs)
    lines = [f"{'shape':>40}  " + " ".join(f"{n:>12}" for n in names)]
    for label, res in rows:
        cells = [f"ok {res[n]['err']:.1e}" if res[n]["ok"] else f"FAIL:{res[n]['note'][:7] or 'err'}"
                 for n in names]
        lines.append(f"{label:>40}  " + " ".join(f"{c:>12}" for c in cells))
    real = [n for n in names if not n.startswith(("mut_", "x_"))]
    mutants = [n for n in names if n.startswith("mut_")]
    nfail = sum(not res[n]["ok"] for _, res in rows for n in real)
    fails = [f"[{n}] {label}: err={res[n]['err']:.2e} {res[n]['note']}" for label, res in rows for n in real
             if not res[n]["ok"]]
    caught = {m: sum(not res[m]["ok"] for _, res in rows) for m in mutants}
    uncaught = [m for m, c in caught.items() if c == 0]
    summary = (f"correctness: {len(rows) * len(real) - nfail}/{len(rows) * len(real)} pass ({len(rows)} shapes x "
               f"{len(real)} configs, {time.time() - t0:.0f} s); mutants caught: " +
               (", ".join(f"{m} ({c} shapes fail)" for m, c in caught.items()) or "none built") +
               (f"; NOT CAUGHT: {uncaught}" if uncaught else ""))
    corr = "\n".join(lines) + "\n\n" + summary + "\n" + "\n".join(fails)
    print("\n== correctness (rel. Frobenius error vs float64; tol 1e-2) ==\n" + corr, flush=True)
    with open(os.path.join(out_dir, "correctness.txt"), "w") as f:
        f.write(corr + "\n")
    libs = [(n, lib) for n, lib in libs if not n.startswith("mut_")]
    names = [n for n in names if not n.startswith("mut_")]

    which = os.environ.get("BENCH_SET", "llm")
    old = [(1024, 1024, 1024), (512, 512, 512), (256, 256, 256), (1024, 1024, 8192), (128, 4096, 4096),
           (4096, 128, 4096), (2048, 8192, 2048), (3000, 5000, 712), (4096, 4096, 1024), (8192, 8192, 1024)]
    shapes = []
    if which in ("llm", "both"):
        shapes += llm_shapes()
    if which in ("old", "both"):
        shapes += [(f"old-{m}x{n}x{k}", m, n, k) for (m, n, k) in old]
    extra = os.environ.get("EXTRA_SHAPES")
    if extra:
        shapes += [(f"extra-{s}", *(int(x) for x in s.split("x"))) for s in extra.split(",")]
    only = os.environ.get("BENCH_SHAPES")
    if only:
        shapes = [(s, *(int(x) for x in s.split("x"))) for s in only.split(",")]
    if os.environ.get("BENCH_MAX_M"):   # e.g. 256: only the decode / skinny shapes
        shapes = [s for s in shapes if s[1] <= int(os.environ["BENCH_MAX_M"])]
    bad = [s for s in shapes if s[3] % 8]
    assert not bad, f"bench shapes need K % 8 == 0 (contiguous operands): {bad}"
    t0 = time.time()
    res = bench(libs, shapes)
    md = table(res, names, dev)
    print(f"\n== timing ({time.time() - t0:.0f} s) ==\n" + md, flush=True)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(out_dir, "timing.json"), "w") as f:
        json.dump(dict(device=dev, torch=torch.__version__, configs=names, results=res), f, indent=1)
    print("\n" + summary)
    sys.exit(1 if nfail or uncaught else 0)


if __name__ == "__main__":
    main()
