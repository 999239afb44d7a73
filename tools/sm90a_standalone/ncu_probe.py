"""Run each product once per library and once through torch.matmul (cuBLAS), each inside an NVTX range named
"MxNxK:lib", so that Nsight Compute can report every kernel's own duration and DRAM traffic (no launch gaps):

    ncu --clock-control none --nvtx --metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__grid_size \
        python3 tools/sm90a_standalone/ncu_probe.py name=lib.so ... > ncu.txt

Shapes: PROBE_SHAPES=MxNxK,... (default: a few decode products). A diagnostic for the device run, not a test."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import call, load  # noqa: E402


def main() -> None:
    libs = [(a.split("=", 1)[0], load(a.split("=", 1)[1])) for a in sys.argv[1:]]
    shapes = os.environ.get("PROBE_SHAPES", "16x4096x4096,16x6144x4096,64x6144x4096,128x6144x4096,256x6144x4096")
    for s in shapes.split(","):
        M, N, K = (int(x) for x in s.split("x"))
        A = torch.randn(M, K, device="cuda").to(torch.bfloat16)
        Bt = torch.randn(N, K, device="cuda").to(torch.bfloat16)
        C = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        torch.matmul(A, Bt.T)                      # warm (cuBLAS heuristics, workspace)
        for _, lib in libs:
            call(lib, A, K, Bt, K, C, N, M, N, K)
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_push(f"{s}:cublas")
        torch.matmul(A, Bt.T)
        torch.cuda.nvtx.range_pop()
        for name, lib in libs:
            torch.cuda.nvtx.range_push(f"{s}:{name}")
            call(lib, A, K, Bt, K, C, N, M, N, K)
            torch.cuda.nvtx.range_pop()
        torch.cuda.synchronize()
        print("probed", s, flush=True)


if __name__ == "__main__":
    main()
