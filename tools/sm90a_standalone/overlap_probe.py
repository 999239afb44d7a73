"""Does a GEMM gain from running right after another GEMM (launch overlap, e.g. programmatic dependent launch)?
Per call, in CUDA-graph replays: t_back = a graph of N GEMMs back to back / N, t_split = (a graph of N x [GEMM, a
one-element add] - a graph of N adds) / N. An add between the GEMMs is an ordinary kernel, so nothing of a GEMM can
overlap the GEMM before it; t_split - t_back is what the GEMM gains from its predecessor.

    python3 tools/sm90a_standalone/overlap_probe.py name=lib.so ...     (PROBE_SHAPES=MxNxK,...)"""
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import call, load  # noqa: E402

N = 20


def per_call(fn, sets, with_add, tiny):
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for i in range(3):
            fn(*sets[i % 3])
        torch.cuda.synchronize()
        with torch.cuda.graph(g, stream=s):
            for i in range(N):
                fn(*sets[i % 3])
                if with_add:
                    tiny.add_(1)
    torch.cuda.current_stream().wait_stream(s)
    times = []
    for _ in range(25):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) * 1000 / N)
    return statistics.median(times)


def main() -> None:
    libs = [(a.split("=", 1)[0], load(a.split("=", 1)[1])) for a in sys.argv[1:]]
    shapes = os.environ.get("PROBE_SHAPES", "16x6144x4096,64x6144x4096,256x6144x4096,16x10240x8192,2048x4096x4096")
    tiny = torch.zeros(1, device="cuda")
    print(f"{'shape':>16} {'function':>12} {'back (us)':>10} {'split (us)':>11} {'gain (us)':>10}")
    for sh in shapes.split(","):
        M, N_, K = (int(x) for x in sh.split("x"))
        sets = []
        for _ in range(3):
            A = torch.randn(M, K, device="cuda").to(torch.bfloat16)
            Bt = torch.randn(N_, K, device="cuda").to(torch.bfloat16)
            sets.append((A, Bt, torch.empty(M, N_, device="cuda", dtype=torch.bfloat16)))
        fns = [("cublas", lambda A, Bt, C: torch.matmul(A, Bt.T, out=C))]
        for name, lib in libs:
            fns.append((name, lambda A, Bt, C, lib=lib: call(lib, A, K, Bt, K, C, N_, M, N_, K)))
        add_only = per_call(lambda *a: None, sets, True, tiny)
        for name, fn in fns:
            back = per_call(fn, sets, False, tiny)
            split = per_call(fn, sets, True, tiny) - add_only
            print(f"{sh:>16} {name:>12} {back:10.2f} {split:11.2f} {split - back:10.2f}", flush=True)


if __name__ == "__main__":
    main()
