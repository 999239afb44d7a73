"""The modules one ``hkjit.gemm(A, B)`` passes through, from the user to the launch, in order.

    python benchmarks/call_path.py [--first] [--shape MxNxK]

Traces the Python calls made inside the hkjit package during one call (sys.setprofile; module bodies run by an
import are left out) and prints the module of each function entered, as the call stack's path: `api.gemm > routing.lookup < > launch.gemm > ...`, then how many
modules the call crosses, how many times it enters a module already below it on the stack (the path climbing
back), and how often each function runs. Default: a steady-state call (the second with the same shapes);
--first: the first call of a fresh process on a warm cache (the route is computed, the module loaded).
Run with a warm cache (`python -m hkjit warmup --arch cpu` on the CPU).
"""
from __future__ import annotations

import argparse
import collections
import sys

import torch


def trace(fn) -> list[tuple[int, str, str]]:
    """(depth, module, function) of every hkjit function entered while fn() runs."""
    events: list[tuple[int, str, str]] = []
    depth = 0
    importing = 0          # depth of the outermost module body running (an import on the first call): not traced

    def prof(frame, event, arg):
        nonlocal depth, importing
        if event == "call":
            depth += 1
            if importing:
                return
            if frame.f_code.co_name == "<module>":
                importing = depth
                return
            mod = frame.f_globals.get("__name__", "")
            if mod.startswith("hkjit"):
                events.append((depth, mod.removeprefix("hkjit."), frame.f_code.co_name))
        elif event == "return":
            if importing == depth:
                importing = 0
            depth -= 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return events


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--first", action="store_true", help="trace the first call of the process, not a later one")
    p.add_argument("--shape", default="256x256x256")
    args = p.parse_args()
    m, n, k = map(int, args.shape.split("x"))
    import hkjit
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(m, k, device=dev).bfloat16()
    b = torch.randn(n, k, device=dev).bfloat16().t()
    if not args.first:
        hkjit.gemm(a, b)
    events = trace(lambda: hkjit.gemm(a, b))
    stack: list[tuple[int, str]] = []      # (depth, module) of the hkjit frames open
    path, climbs, modules = [], 0, []
    for depth, mod, fn in events:
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack and mod != stack[-1][1] and any(mod == s for _, s in stack[:-1]):
            climbs += 1
        if not stack or stack[-1][1] != mod:
            path.append(f"{'  ' * len(stack)}{mod}.{fn}")
        if mod not in modules:
            modules.append(mod)
        stack.append((depth, mod))
    print(f"hkjit.gemm({args.shape}) on {dev}, {'first' if args.first else 'steady-state'} call: the module path")
    print("\n".join(path))
    counts = collections.Counter(f"{mod}.{fn}" for _, mod, fn in events)
    print(f"\n{len(modules)} modules ({', '.join(modules)}); {climbs} re-entries into a module lower on the stack; "
          f"{len(events)} hkjit function calls")
    print("most called: " + ", ".join(f"{f} x{c}" for f, c in counts.most_common(6)))


if __name__ == "__main__":
    main()
