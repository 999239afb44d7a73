"""Where a warm start spends its time: hkjit's imports, then loader.load profiled (run after a warmup).

    python benchmarks/warm_hit_profile.py            # in a fresh process; the CUDA/HIP runtime starts first
    python benchmarks/warm_hit_profile.py --dlopen   # also: the module's import alone, RTLD_NOW vs RTLD_LAZY
    python benchmarks/warm_hit_profile.py --phases   # also: each step of a warm start, unprofiled, 9 processes

The --dlopen part imports the cached module file in fresh processes with Python's default dlopen flags
(RTLD_NOW: every symbol bound at load) and with RTLD_LAZY (functions bound on first call), to tell how much of
the load is symbol binding.
"""
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time

import torch

if torch.cuda.is_available():
    torch.cuda.init()                 # the GPU runtime's start is not hkjit's
t0 = time.perf_counter()
from hkjit.loader import load  # noqa: E402
from hkjit.specs import get_spec  # noqa: E402
from hkjit.targets import detect_target  # noqa: E402
t1 = time.perf_counter()
spec = get_spec(detect_target().arch)
profile = cProfile.Profile()
profile.enable()
loaded = load(spec)
profile.disable()
t2 = time.perf_counter()
print(f"imports {1e3 * (t1 - t0):.2f} ms, load {1e3 * (t2 - t1):.2f} ms (profiled; built={loaded.built})")
pstats.Stats(profile).sort_stats("tottime").print_stats(12)

DLOPEN = r"""
import importlib.util, os, sys, time, torch
if torch.cuda.is_available():
    torch.cuda.init()
path, name, flags = sys.argv[1], sys.argv[2], sys.argv[3]
if flags == "lazy":
    sys.setdlopenflags(os.RTLD_LAZY)
t = time.perf_counter()
spec = importlib.util.spec_from_file_location(name, path)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print((time.perf_counter() - t) * 1e3)
"""

if "--dlopen" in sys.argv:
    import json
    from hkjit.cache.layout import MANIFEST
    manifest = json.loads((loaded.path / MANIFEST).read_text())
    so = str(loaded.path / manifest["module_file"])
    print(f"\nmodule {so}: {os.path.getsize(so) / 2**20:.2f} MiB")
    for flags in ("now", "lazy"):
        ms = [float(subprocess.run([sys.executable, "-c", DLOPEN, so, manifest["module_name"], flags],
                                   capture_output=True, text=True, check=True).stdout) for _ in range(7)]
        print(f"import of the module alone, RTLD_{flags.upper()}: median {statistics.median(ms):.2f} ms "
              f"({', '.join(f'{x:.2f}' for x in ms)})")

PHASES = r"""
import json, time, torch
if torch.cuda.is_available():
    torch.cuda.init()
    torch.cuda.synchronize()
t = [time.perf_counter()]
import hkjit, hkjit.loader as L
from hkjit.specs import get_spec
from hkjit.targets import detect_target
t.append(time.perf_counter())
spec = get_spec(detect_target().arch)
t.append(time.perf_counter())
root = L.cache_root()
request, key, inputs = L._request(spec, root)     # check_can_build, check_root, toolchain.resolve, resolve_key
t.append(time.perf_counter())
found = L.find_published(spec, key, root)
t.append(time.perf_counter())
module = L._import(found.path, found.manifest)
t.append(time.perf_counter())
L.touch_used(found.path)
t.append(time.perf_counter())
print(json.dumps([1e3 * (b - a) for a, b in zip(t, t[1:])]))
"""

if "--phases" in sys.argv:
    import json
    names = ("import hkjit + loader", "detect_target + spec", "cache root + key", "find + verify entry",
             "import module (dlopen)", "touch_used")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}   # users import from .pyc
    subprocess.run([sys.executable, "-c", "import hkjit.loader"], env=env, check=True)   # writes them
    runs = [json.loads(subprocess.run([sys.executable, "-c", PHASES], capture_output=True, text=True, env=env,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(9)]
    print("\nwarm start by step, fresh processes (median of 9, ms)")
    for i, name in enumerate(names):
        print(f"  {name:<24} {statistics.median(r[i] for r in runs):6.2f}")
    print(f"  {'total':<24} {statistics.median(sum(r) for r in runs):6.2f}")
