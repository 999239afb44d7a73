"""hkjit: JIT-compiled HipKittens (and ThunderKittens) bf16 GEMMs with a versioned, crash-safe on-disk cache.

    import hkjit
    C = hkjit.gemm(A, B)          # A (..., M, K) bf16, B (K, N) bf16 -> (..., M, N) bf16

The first call on a machine compiles the kernel (about a minute on a GPU; `python -m hkjit warmup` or
``hkjit.warmup(arch="gfx950")`` does it ahead of time); every later call and process loads it from the cache in
milliseconds, also on a node without a compiler (a cache pre-baked elsewhere, see keys.resolve_key).
"""
from __future__ import annotations

import logging

from .errors import (BuildError, CacheError, CaptureError, ConfigError, HkjitError, LockTimeoutError,
                     MissingLibraryError, ToolchainRejectedError, UnsupportedTargetError)
from .version import CACHE_FORMAT, __version__

logging.getLogger("hkjit").addHandler(logging.NullHandler())

__all__ = ["gemm", "prepare", "explain", "dispatch", "Linear", "warmup", "BuildError", "CacheError",
           "CaptureError", "ConfigError", "HkjitError", "LockTimeoutError", "MissingLibraryError",
           "ToolchainRejectedError", "UnsupportedTargetError", "CACHE_FORMAT", "__version__"]


def __getattr__(name: str):
    # The op layer registers torch.library ops; load it on first use so `import hkjit` stays cheap. The value is
    # then stored as a module attribute: later lookups (every hkjit.gemm call) never come back here.
    if name in ("gemm", "prepare", "Linear"):
        from . import api
        value = getattr(api, name)
    elif name == "explain":
        from .plan import explain as value    # routing and planning only: explaining never loads a module
    elif name == "dispatch":
        from .policy import dispatch as value
    elif name == "warmup":
        from .warmup import warmup as value
    else:
        raise AttributeError(f"module 'hkjit' has no attribute {name!r}")
    globals()[name] = value
    return value
