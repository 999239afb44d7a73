"""Cache latency: cold build, warm hit in a fresh process, and per-call host overhead versus torch.matmul.

    python benchmarks/cache_latency.py [--processes 7] [--device cpu|cuda] [--cold]

Warm hit = time from `import hkjit` to the kernel being ready in a new process (median of N processes), reported
next to the process's `import torch` time; first call = time from `import hkjit` to the first hkjit.gemm result
(64x128x256, kernel forced, synchronized: adds the op registration, the first-use validation record and, on a
GPU, the kernel's first launch). torch's own load_inline takes about 0.5 s warm on CUDA (it runs ninja
and checks timestamps); hkjit's goal is <= 5 ms beyond `import torch`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
device, mode = sys.argv[1], sys.argv[2]
if device != "cpu":
    torch.cuda.init()          # the GPU runtime's start is the baseline's, not hkjit's
a = torch.randn(64, 256, device=device).bfloat16()
w = torch.randn(128, 256, device=device).bfloat16()
if device != "cpu":
    torch.cuda.synchronize()
t1 = time.perf_counter()
import hkjit
if mode == "call":             # the first hkjit.gemm call has returned its result (kernel forced)
    with hkjit.dispatch("kernel"):
        c = hkjit.gemm(a, w.t())
    if device != "cpu":
        torch.cuda.synchronize()
from hkjit.loader import load   # "ready": the kernel module found, verified and loaded ("call": a memo hit)
from hkjit.specs import get_spec
from hkjit.targets import detect_target
loaded = load(get_spec(detect_target(device).arch))
t2 = time.perf_counter()
from hkjit.cache.layout import MANIFEST
manifest = json.loads((loaded.path / MANIFEST).read_text())
print(json.dumps({"torch_ms": (t1 - t0) * 1e3, "hit_ms": (t2 - t1) * 1e3, "built": loaded.built,
                  "build_s": manifest["build_seconds"]}))
"""


def child(device: str, env: dict, mode: str = "ready") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, device, mode], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def per_call_overhead(device: str, shapes, repeat: int = 200) -> list[tuple]:
    """Median host time of one synchronized call: torch.matmul, hkjit.gemm routed to torch (what the policy does
    for small shapes: the wrapper's own cost) and hkjit.gemm with the kernel forced."""
    import torch
    import hkjit
    rows = []
    for m, n, k in shapes:
        a = torch.randn(m, k, device=device).bfloat16()
        w = torch.randn(n, k, device=device).bfloat16()

        timings = []
        # the dispatch mode is set around the loop, not per call (entering hkjit.dispatch costs ~2 us)
        for mode, fn in ((None, lambda: torch.matmul(a, w.t())), ("torch", lambda: hkjit.gemm(a, w.t())),
                         ("kernel", lambda: hkjit.gemm(a, w.t()))):
            with hkjit.dispatch(mode) if mode else contextlib.nullcontext():
                for _ in range(10):
                    fn()
                samples = []
                for _ in range(repeat):
                    if device == "cuda":
                        torch.cuda.synchronize()
                    t = time.perf_counter()
                    fn()
                    if device == "cuda":
                        torch.cuda.synchronize()
                    samples.append((time.perf_counter() - t) * 1e6)
            timings.append(statistics.median(samples))
        rows.append((f"{m}x{n}x{k}", *timings))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=7)
    ap.add_argument("--device", default="cuda" if _has_cuda() else "cpu")
    ap.add_argument("--cache-dir", help="cache to use (default: a fresh temporary one, so the first run is cold)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cache = args.cache_dir or tempfile.mkdtemp(prefix="hkjit-latency-")
    env = {**os.environ, "HKJIT_CACHE_DIR": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)     # measure what users get: imports from .pyc files
    cold = child(args.device, env)
    warm = [child(args.device, env) for _ in range(args.processes)]
    first = [child(args.device, env, "call") for _ in range(args.processes)]
    # What a user without HKJIT_CACHE_DIR gets: the platform's default root, here $XDG_CACHE_HOME/hkjit pointing
    # at the same cache (Linux; elsewhere the default root is not an XDG path and this row is skipped).
    default = []
    if sys.platform == "linux":
        xdg = tempfile.mkdtemp(prefix="hkjit-xdg-")
        os.symlink(os.path.abspath(cache), os.path.join(xdg, "hkjit"))
        env_default = {k: v for k, v in env.items() if k != "HKJIT_CACHE_DIR"} | {"XDG_CACHE_HOME": xdg}
        default = [child(args.device, env_default) for _ in range(args.processes)]
    os.environ["HKJIT_CACHE_DIR"] = cache
    overhead = per_call_overhead(args.device, [(1, 64, 64), (16, 128, 128), (64, 256, 256)])
    result = {
        "device": args.device,
        "cold_build_s": cold["build_s"],          # from the entry's manifest if it was already built
        "warm_hit_ms_median": statistics.median(w["hit_ms"] for w in warm),
        "warm_hit_ms_all": [round(w["hit_ms"], 2) for w in warm],
        "warm_hit_default_root_ms_median": statistics.median(w["hit_ms"] for w in default) if default else None,
        "warm_hit_default_root_ms_all": [round(w["hit_ms"], 2) for w in default],
        "first_call_ms_median": statistics.median(w["hit_ms"] for w in first),
        "first_call_ms_all": [round(w["hit_ms"], 2) for w in first],
        "import_torch_ms_median": statistics.median(w["torch_ms"] for w in warm),
        "per_call_us": [{"shape": s, "torch_us": t, "hkjit_to_torch_us": r, "hkjit_kernel_us": h}
                        for s, t, r, h in overhead],
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"device: {args.device}   cache: {cache}")
    print(f"{'measure':<44}{'value':>14}")
    print(f"{'cold build (s)':<44}{result['cold_build_s']:>14.1f}")
    print(f"{'import torch (+ CUDA init) in a fresh process (ms)':<44}{result['import_torch_ms_median']:>14.1f}")
    print(f"{'warm hit beyond import torch (ms, median)':<44}{result['warm_hit_ms_median']:>14.2f}")
    print(f"{'  (each of ' + str(args.processes) + ' processes)':<44}{str(result['warm_hit_ms_all']):>14}")
    if default:
        print(f"{'  the same, default cache root (no HKJIT_CACHE_DIR)':<44}"
              f"{result['warm_hit_default_root_ms_median']:>14.2f}")
        print(f"{'  (each of ' + str(args.processes) + ' processes)':<44}{str(result['warm_hit_default_root_ms_all']):>14}")
    print(f"{'first hkjit.gemm result beyond import torch (ms)':<44}{result['first_call_ms_median']:>14.2f}")
    print(f"{'  (each of ' + str(args.processes) + ' processes)':<44}{str(result['first_call_ms_all']):>14}")
    print()
    print("per call (synchronized, median us; the kernel column includes the kernel's own run time)")
    print(f"{'shape (MxNxK)':<16}{'torch.matmul':>14}{'hkjit->torch':>14}{'wrapper +':>11}{'hkjit kernel':>14}")
    for s, t, r, h in overhead:
        print(f"{s:<16}{t:>14.1f}{r:>14.1f}{r - t:>11.1f}{h:>14.1f}")


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    main()
