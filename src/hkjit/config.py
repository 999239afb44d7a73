"""Environment variables hkjit reads, in one place (names follow torch/triton conventions: HKJIT_*).

| variable | meaning | default |
| --- | --- | --- |
| HKJIT_CACHE_DIR | writable cache root | platformdirs.user_cache_dir("hkjit") |
| HKJIT_CACHE_PATH | extra read-only cache roots, os.pathsep-separated, searched first | none |
| HKJIT_LOCK_DIR | where build locks live | <cache>/v1/locks, or a local runtime dir when the cache is on a network filesystem |
| HKJIT_LOCK_TIMEOUT | seconds a process waits for another's build (>= 0, or inf: forever) | 900 |
| HKJIT_TRUSTED_CACHE_DIRS | folders (os.pathsep) whose caches are trusted whoever owns or can write them (trust.py) | none |
| HKJIT_DISPATCH | auto, kernel or torch (read once per process) | auto |
| HKJIT_PREPARED_CACHE_MB | memory bound of the prepared-weight cache | 1024 |
| HIPKITTENS_ROOT / THUNDERKITTENS_ROOT | checkout (or include dir) of the kernel libraries | known locations |
"""
from __future__ import annotations

import math
import os


def env_str(name: str, default: str = "") -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else default


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def lock_timeout() -> float:
    """HKJIT_LOCK_TIMEOUT in seconds: a finite number >= 0, or an explicit inf (wait forever).

    nan would compare false with every deadline, so a waiter would poll forever without timing out (and log on
    every poll); -inf or a negative number would give up before trying."""
    value = env_float("HKJIT_LOCK_TIMEOUT", 900.0)
    if math.isnan(value) or value < 0:
        raise ValueError(f"HKJIT_LOCK_TIMEOUT={env_str('HKJIT_LOCK_TIMEOUT')!r} is not a usable timeout: set "
                         f"seconds >= 0 (e.g. 900), or inf to wait forever")
    return value
