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
from .loader import ensure
from .specs import KernelSpec, config_spec, default_config, resolve_configs, specs_for
from .targets import detect_target, target_for_arch


@dataclass
class WarmupResult:
    arch: str
    kernel: str
    status: str            # "hit" | "built" | "failed"
    seconds: float
    path: str = ""
    key: str = ""
    error: str = ""
    config: str = ""       # the kernel configuration (specs.CONFIGS)


def default_archs(how: str = "cli") -> list[str]:
    """The current device's arch; on a machine without a GPU there is no default (CI machines pre-bake for a GPU
    they do not have: building only the CPU kernel there would be a silent mistake). `how` words the fix for the
    caller: the CLI's --arch or the Python API's arch=."""
    if not torch.cuda.is_available():
        fix = ("--arch (gfx950, sm_90a, or cpu for the reference kernel), e.g. `python -m hkjit warmup --arch gfx950`"
               if how == "cli" else
               "arch= (gfx950, sm_90a, or cpu for the reference kernel), e.g. hkjit.warmup(arch='gfx950') or "
               "hkjit.warmup(arch=['cpu', 'gfx950'])")
        raise UnsupportedTargetError(f"no GPU on this machine: name the archs to build with {fix}")
    return [detect_target().arch]


def warmup_one(spec: KernelSpec, root: Path | None = None) -> WarmupResult:
    t0 = time.perf_counter()
    try:
        found = ensure(spec, root)
    except HkjitError as e:
        return WarmupResult(spec.arch, spec.name, "failed", time.perf_counter() - t0, error=str(e),
                            config=spec.config)
    return WarmupResult(spec.arch, spec.name, "built" if found.built else "hit", time.perf_counter() - t0,
                        str(found.path), found.key, config=spec.config)


def _names(value: str | Iterable[str] | None, what: str) -> list[str] | None:
    """A name or a list of names (a bare string is one name, never its characters)."""
    if value is None:
        return None
    try:
        names = [value] if isinstance(value, str) else list(value)
    except TypeError:
        names = []
    if not names or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"hkjit.warmup: {what}= takes a name or a list of names, got {value!r}")
    return names


def configured_set(arch: str, root: Path | None = None) -> list[str]:
    """The configurations `warmup` builds for `arch` by default: the default one, those the selection table
    (policy.SELECTION) names, and those a tuning record in the cache names (any device, this toolchain)."""
    from .policy import SELECTION
    from .tuning import iter_records, toolchain_key
    names = [default_config(arch)]
    table = SELECTION.get(arch)
    names += [r.config for r in table.rules] if table else []
    try:
        from .cache.roots import all_roots
        key = toolchain_key(arch, root)
        names += [c for rec in iter_records(all_roots(root), arch) if rec["status"] == "ok"
                  and rec["toolchain_key"] == key for c in rec["winners"].values()]
    except HkjitError:
        pass                    # no compiler here (the build says so) or an untrusted root: no records to add
    return list(dict.fromkeys(names))


def _configs(arch: str, config: list[str] | None, root: Path | None) -> list[str]:
    return resolve_configs(arch, config) if config else configured_set(arch, root)


def warmup_specs(arch: str | Iterable[str] | None = None, kernel: str | Iterable[str] | None = None,
                 how: str = "python", config: str | Iterable[str] | None = None,
                 root: Path | None = None) -> list[KernelSpec]:
    """The specs a warmup builds, in order; unknown archs, kernels or configurations raise UnsupportedTargetError
    naming the known ones. config: None builds the configured set (configured_set), "all" every configuration,
    else the names given (a configuration name must exist for every arch asked for)."""
    archs = _names(arch, "arch") or default_archs(how)
    kernels = _names(kernel, "kernel")
    configs = _names(config, "config")
    specs = []
    for a in archs:
        target_for_arch(a)
        base = specs_for(a) if not kernels else [s for k in kernels for s in specs_for(a, k)]
        for s in base:
            specs += [config_spec(a, c, s.name) for c in _configs(a, configs, root)]
    return specs


def check_jobs(jobs: object, who: str) -> None:
    """A parallel-build count as the Python API takes it: a positive int (not a bool); ValueError naming `who`."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"{who}: jobs must be a positive integer, got {jobs!r}")


def warmup(arch: str | Iterable[str] | None = None, kernel: str | Iterable[str] | None = None, jobs: int = 1,
           root: Path | str | None = None, on_start: Callable[[KernelSpec], None] | None = None,
           on_done: Callable[[WarmupResult], None] | None = None,
           config: str | Iterable[str] | None = None) -> list[WarmupResult]:
    """Build (or find in the cache) every requested kernel, as `python -m hkjit warmup` does.

    arch: an arch name or a list of them ("cpu", "gfx950", "sm_90a"; default: this machine's GPU, and an error
    naming arch= on a machine without one); kernel: a kernel name or a list (default: all); jobs: parallel builds;
    root: the writable cache root (default: HKJIT_CACHE_DIR); config: kernel configurations (specs.CONFIGS, or
    names that spell one by its parameters: specs.find_config): a name, a list, or "all" (default: the configured
    set: the arch's default, those the selection table names and those a tuning record names; on the CPU that is
    one build). A kernel that cannot be built is a "failed"
    WarmupResult with the reason, not an exception; bad arguments raise. Returns one result per kernel, in order::

        hkjit.warmup(arch="cpu")        # [WarmupResult(arch='cpu', kernel='gemm_bf16', status='hit', ...)]
        hkjit.warmup(arch=["cpu", "gfx950"], jobs=2)
    """
    check_jobs(jobs, "hkjit.warmup")
    root = Path(root) if root is not None else None
    specs = warmup_specs(arch, kernel, config=config, root=root)

    def run(spec: KernelSpec) -> WarmupResult:
        if on_start:
            on_start(spec)
        result = warmup_one(spec, root)
        if on_done:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, specs))
