"""The warm hit as a user sees it: a fresh process's first ``hkjit.gemm(A, B)`` with the kernel already cached.

    python benchmarks/warm_call.py                  # median of 9 fresh processes, this checkout's hkjit
    python benchmarks/warm_call.py --src A --src B  # alternate two source trees (before / after a change)

Each process imports torch, makes its operands and runs one torch.matmul first (torch's and the BLAS library's
start are not hkjit's cost), then times ``import hkjit`` and the first call (import of the op layer, routing, the
cache lookup, the module's import, the validation record, the launch), then a second call (the steady state).
The kernel is forced (HKJIT_DISPATCH=kernel): the policy would send this small product to torch on a GPU. It uses only the public API, so the same script measures any
two versions of the package. Run ``python -m hkjit warmup`` first (with the same HKJIT_CACHE_DIR).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, time, torch
dev = "cuda" if torch.cuda.is_available() else "cpu"
if dev == "cuda":
    torch.cuda.init()
a = torch.randn(8, 64, device=dev).bfloat16()
b = torch.randn(64, 64, device=dev).bfloat16()
torch.matmul(a, b)                      # the BLAS library's own start (cuBLAS handles: ~100 ms) is not hkjit's
if dev == "cuda":
    torch.cuda.synchronize()
t0 = time.perf_counter()
import hkjit
t1 = time.perf_counter()
c = hkjit.gemm(a, b)
t2 = time.perf_counter()
c = hkjit.gemm(a, b)
t3 = time.perf_counter()
print(json.dumps([1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2)]))
"""
PHASES = ("import hkjit", "first call (warm hit)", "second call")


def run(src: str | None, n: int) -> list[list[float]]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)            # users import from .pyc
    env["HKJIT_DISPATCH"] = "kernel"
    if src:
        env["PYTHONPATH"] = src
    subprocess.run([sys.executable, "-c", "import hkjit, hkjit.api"], env=env, check=True)   # writes the .pyc
    return [json.loads(subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", action="append", help="a source tree to put first on PYTHONPATH (repeat to compare)")
    p.add_argument("--runs", type=int, default=9, help="fresh processes per source tree and round")
    p.add_argument("--rounds", type=int, default=1, help="rounds, alternating the source trees")
    args = p.parse_args()
    srcs = args.src or [str(Path(__file__).resolve().parents[1] / "src")]
    results: dict[str, list[list[float]]] = {s: [] for s in srcs}
    for _ in range(args.rounds):
        for s in srcs:
            results[s] += run(s, args.runs)
    print(f"warm hit through the public API, fresh processes (median of {args.runs * args.rounds}, ms)")
    print(f"  {'':<24}" + "".join(f"{Path(s).parent.name[:14]:>16}" for s in srcs))
    for i, name in enumerate(PHASES + ("import + first call",)):
        vals = [statistics.median((r[0] + r[1]) if i == 3 else r[i] for r in results[s]) for s in srcs]
        print(f"  {name:<24}" + "".join(f"{v:16.2f}" for v in vals))


if __name__ == "__main__":
    main()
