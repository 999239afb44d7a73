"""Where a warm start spends its time: hkjit's imports, then load_module profiled (run after a warmup).

    python benchmarks/warm_hit_profile.py            # in a fresh process; the CUDA/HIP runtime starts first
"""
import cProfile
import pstats
import time

import torch

if torch.cuda.is_available():
    torch.cuda.init()                 # the GPU runtime's start is not hkjit's
t0 = time.perf_counter()
from hkjit.loader import load_module  # noqa: E402
from hkjit.specs import get_spec  # noqa: E402
from hkjit.targets import detect_target  # noqa: E402
t1 = time.perf_counter()
spec = get_spec(detect_target().arch)
profile = cProfile.Profile()
profile.enable()
loaded = load_module(spec)
profile.disable()
t2 = time.perf_counter()
print(f"imports {1e3 * (t1 - t0):.2f} ms, load_module {1e3 * (t2 - t1):.2f} ms (profiled; built={loaded.built})")
pstats.Stats(profile).sort_stats("tottime").print_stats(12)
