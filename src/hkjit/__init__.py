"""hkjit: JIT-compiled HipKittens (and ThunderKittens) bf16 GEMMs with a versioned, crash-safe on-disk cache.

    import hkjit
    C = hkjit.gemm(A, B)          # A (..., M, K) bf16, B (K, N) bf16 -> (..., M, N) bf16

The first call on a machine compiles the kernel (about a minute on a GPU; `python -m hkjit warmup` does it ahead
of time); every later call and process loads it from the cache in milliseconds.
"""
from __future__ import annotations

import logging

from .errors import (BuildError, CacheError, CaptureError, HkjitError, LockTimeoutError, MissingLibraryError,
                     ToolchainRejectedError, UnsupportedTargetError)
from .version import CACHE_FORMAT, __version__

logging.getLogger("hkjit").addHandler(logging.NullHandler())

__all__ = ["gemm", "prepare", "explain", "dispatch", "Linear", "warmup", "BuildError", "CacheError",
           "CaptureError", "HkjitError", "LockTimeoutError", "MissingLibraryError", "ToolchainRejectedError",
           "UnsupportedTargetError", "CACHE_FORMAT", "__version__"]


def __getattr__(name: str):
    # The op layer imports torch.library machinery; load it on first use so `import hkjit` stays cheap.
    if name in ("gemm", "prepare", "explain", "dispatch", "Linear", "warmup"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'hkjit' has no attribute {name!r}")
