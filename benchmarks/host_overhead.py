"""Host time per call of hkjit.gemm next to torch.matmul, where the host is the bottleneck (small products).

    python benchmarks/host_overhead.py [--shapes MxNxK ...] [--calls N]

Issues N calls back to back and synchronizes once (no events): on a GPU, for shapes whose kernel runs shorter than
the launch path, wall time / N is the host cost of one call. Rows: torch.matmul, hkjit.gemm under the policy
(torch-routed for these shapes on sm_90a: the wrapper's own cost is the difference), hkjit.gemm with the kernel
forced, and the pieces of hkjit's routing on their own. Median of 7 repetitions, microseconds."""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import hkjit
from hkjit import routing
from hkjit.bench import default_device


def per_call_us(fn, calls: int, device: torch.device, reps: int = 7) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(min(calls, 200)):
        fn()
    sync()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=None)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--no-kernel", action="store_true", help="skip the forced-kernel row (it builds on a cold cache)")
    args = p.parse_args()
    device = default_device()
    shapes = [tuple(map(int, s.split("x"))) for s in args.shapes] if args.shapes else (
        [(1024, 1024, 1024), (2048, 2048, 2048), (64, 256, 256)] if device.type == "cuda" else [(8, 64, 64)])
    print(f"host cost per call on {device} ({torch.__version__}), {args.calls} back-to-back calls, median of 7, us")
    print(f"{'shape':<16} {'torch.matmul':>12} {'hkjit auto':>11} {'(path)':>8} {'hkjit kernel':>13} "
          f"{'route key':>10} {'is_compiling':>13}")
    for m, n, k in shapes:
        a = torch.randn(m, k, device=device).bfloat16()
        b = torch.randn(n, k, device=device).bfloat16().t()
        with hkjit.dispatch("auto"):
            path = hkjit.explain(a, b).path
            t_auto = per_call_us(lambda: hkjit.gemm(a, b), args.calls, device)
            t_key = per_call_us(lambda: routing.lookup(a, b), args.calls, device)
        t_kernel = float("nan")
        if not args.no_kernel:
            with hkjit.dispatch("kernel"):
                t_kernel = per_call_us(lambda: hkjit.gemm(a, b), args.calls, device)
        t_torch = per_call_us(lambda: torch.matmul(a, b), args.calls, device)
        t_comp = per_call_us(torch.compiler.is_compiling, args.calls, device)
        print(f"{f'{m}x{n}x{k}':<16} {t_torch:>12.2f} {t_auto:>11.2f} {path:>8} {t_kernel:>13.2f} {t_key:>10.2f} "
              f"{t_comp:>13.2f}")


if __name__ == "__main__":
    main()
