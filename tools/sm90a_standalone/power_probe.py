"""Is a product power-bound? Runs cuBLAS (torch.matmul) and each given build of kernels/gemm_sm90a.cu back to back
on one shape for a few seconds each while nvidia-smi samples the SM clock, the board power and the active clock
throttle reasons; prints achieved TFLOP/s, median clock, median power and the throttle reasons seen per candidate.

If both run at the power limit with the SM clock under its maximum, their speed is set by energy per flop, not by
the schedule, and a faster schedule buys little (the question behind issue #16's 1.05x target at large shapes).

    python3 tools/sm90a_standalone/power_probe.py [--shape 8192x8192x8192] [--seconds 3] name=lib.so ...
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import load, call  # noqa: E402


def query() -> str:
    """The nvidia-smi fields; the throttle-reason field was renamed (clocks_throttle_* -> clocks_event_*)."""
    fields = subprocess.run(["nvidia-smi", "--help-query-gpu"], capture_output=True, text=True).stdout
    reasons = "clocks_event_reasons.active" if "clocks_event_reasons.active" in fields else \
        "clocks_throttle_reasons.active"
    return f"clocks.sm,clocks.max.sm,power.draw,power.limit,{reasons}"


def sample(lines: list[str], stamps: list[float], t0: float, t1: float) -> list[list[str]]:
    """The nvidia-smi rows read between t0 and t1 (host clock), split into fields."""
    return [line.split(", ") for line, ts in zip(lines, stamps) if t0 <= ts <= t1]


def median_of(rows: list[list[str]], i: int) -> float:
    """Median of field i over the rows where it is a number ([N/A] and the like are skipped)."""
    vals = []
    for r in rows:
        try:
            vals.append(float(r[i]))
        except (IndexError, ValueError):
            pass
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="8192x8192x8192")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("libs", nargs="*")
    a = ap.parse_args()
    M, N, K = (int(x) for x in a.shape.split("x"))
    A = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    Bt = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
    C = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
    cands = [("cuBLAS", lambda: torch.matmul(A, Bt.T, out=C))]
    for spec in a.libs:
        name, path = spec.split("=", 1)
        lib = load(path)
        cands.append((name, lambda lib=lib: call(lib, A, K, Bt, K, C, N, M, N, K)))
    smi = subprocess.Popen(["nvidia-smi", f"--query-gpu={query()}", "--format=csv,noheader,nounits", "-lms", "50"],
                           stdout=subprocess.PIPE, text=True, bufsize=1)
    lines: list[str] = []
    stamps: list[float] = []

    def reader() -> None:
        for line in smi.stdout:   # type: ignore[union-attr]
            lines.append(line.strip())
            stamps.append(time.time())
    threading.Thread(target=reader, daemon=True).start()
    time.sleep(1.0)
    print(f"{torch.cuda.get_device_name()}, {M}x{N}x{K}, {a.seconds:.1f} s a candidate (after 0.5 s of warm-up)")
    print("| candidate | TFLOP/s | SM MHz (median / max) | power W (median / limit) | throttle reasons seen |")
    print("|---|---|---|---|---|")
    for rnd in range(2):
        for name, fn in cands:
            fn(); torch.cuda.synchronize()
            t_end = time.time() + 0.5
            while time.time() < t_end:   # warm-up: reach the steady clock
                fn(); torch.cuda.synchronize()
            ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.time(); n = 0
            ev0.record()
            while time.time() - t0 < a.seconds:
                for _ in range(8):
                    fn()
                n += 8
                torch.cuda.synchronize()
            ev1.record(); torch.cuda.synchronize()
            t1 = time.time()
            ms = ev0.elapsed_time(ev1) / n
            rows = sample(lines, stamps, t0 + 0.2, t1)
            reasons = sorted({r[4] for r in rows if len(r) >= 5})
            tf = 2 * M * N * K / ms / 1e9
            print(f"| {name} (round {rnd + 1}) | {tf:.0f} | {median_of(rows, 0):.0f} / {median_of(rows, 1):.0f} "
                  f"| {median_of(rows, 2):.0f} / {median_of(rows, 3):.0f} | {' '.join(reasons)} |", flush=True)
            time.sleep(1.0)   # let the clock recover between candidates
    smi.terminate()


if __name__ == "__main__":
    main()
