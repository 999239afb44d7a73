"""Building kernels ahead of time: ``hkjit.warmup()`` and ``python -m hkjit warmup``.

Builds every kernel spec for the current device, or for the archs named (no GPU needed: CI pre-bakes a cache
and ships it, see HKJIT_CACHE_PATH). Builds run in parallel (each is a compiler subprocess). Under torchrun every
rank may call it: the per-entry file lock makes one process per node compile while the others wait and then hit.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from .errors import HkjitError, UnsupportedTargetError
from .loader import load_module
from .specs import KernelSpec, specs_for
from .targets import detect_target


@dataclass
class WarmupResult:
    arch: str
    kernel: str
    status: str            # "hit" | "built" | "failed"
    seconds: float
    path: str = ""
    key: str = ""
    error: str = ""


def default_archs() -> list[str]:
    """The current device's arch; on a machine without a GPU there is no default (name --arch)."""
    if not torch.cuda.is_available():
        raise UnsupportedTargetError("no GPU on this machine: name the archs to build with --arch (gfx950, sm_90a, "
                                     "or cpu for the reference kernel), e.g. `python -m hkjit warmup --arch gfx950`")
    return [detect_target().arch]


def warmup_one(spec: KernelSpec, root: Path | None = None) -> WarmupResult:
    t0 = time.perf_counter()
    try:
        loaded = load_module(spec, root=root, import_module=False)
    except HkjitError as e:
        return WarmupResult(spec.arch, spec.name, "failed", time.perf_counter() - t0, error=str(e))
    return WarmupResult(spec.arch, spec.name, "built" if loaded.built else "hit", time.perf_counter() - t0,
                        str(loaded.path), loaded.key)


def warmup(archs: Iterable[str] | None = None, kernels: Iterable[str] | None = None, jobs: int = 1,
           root: Path | None = None, on_start: Callable[[KernelSpec], None] | None = None,
           on_done: Callable[[WarmupResult], None] | None = None) -> list[WarmupResult]:
    """Build (or find) every requested kernel; returns one WarmupResult per spec, in spec order."""
    archs = list(archs) if archs else default_archs()
    specs = [s for arch in archs for s in (specs_for(arch) if not kernels else
                                            [x for k in kernels for x in specs_for(arch, k)])]

    def run(spec: KernelSpec) -> WarmupResult:
        if on_start:
            on_start(spec)
        result = warmup_one(spec, root)
        if on_done:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(run, specs))
