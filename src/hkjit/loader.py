"""Getting a kernel's module: in-process memo, then the cache (writable root and read-only layers), then a build.

A hit never runs ninja or load_inline: the published module file is imported directly with importlib after its
manifest is verified (cache.verify_entry). A miss takes the entry's build lock, checks again (another process
may have built it meanwhile), and builds (builder.py).
"""
from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from types import ModuleType

import torch

from .cache import ensure_writable, cache_layers, cache_root, entry_dir, memo_path, move_aside, touch_used, verify_entry
from .errors import CaptureError
from .keys import resolve_key
from .specs import KernelSpec
from .targets import check_can_build

log = logging.getLogger("hkjit")


class Loaded:
    """module: the imported module (None when loaded with import_module=False, as warmup for another arch does);
    path: the entry folder it came from; key; built: whether this call compiled it; seconds: time spent."""
    # a plain slotted class, not a NamedTuple: class creation is on every warm start's path (~50 us less)
    __slots__ = ("module", "path", "key", "built", "seconds")

    def __init__(self, module: ModuleType | None, path: Path, key: str, built: bool, seconds: float) -> None:
        self.module, self.path, self.key, self.built, self.seconds = module, path, key, built, seconds

    def __repr__(self) -> str:
        return f"Loaded(path={str(self.path)!r}, key={self.key!r}, built={self.built!r})"


_loaded: dict[tuple[str, str, str], Loaded] = {}
_mutexes: dict[tuple[str, str, str], threading.Lock] = {}
_mutexes_guard = threading.Lock()


def _import(path: Path, manifest: dict) -> ModuleType:
    name = manifest["module_name"]
    spec = importlib.util.spec_from_file_location(name, path / manifest["module_file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def entry_key(spec: KernelSpec, root: Path | None = None, library_roots: dict[str, str] | None = None
              ) -> tuple[str, dict]:
    # the full key where the compiler and headers are here; else a pre-baked entry's key matched by field
    return resolve_key(spec, root or cache_root(), library_roots)


def find_published(spec: KernelSpec, key: str, root: Path) -> tuple[Path, dict] | None:
    """The first valid entry for key in root, then in each read-only layer; bad layer entries are skipped."""
    for layer in [root] + cache_layers():
        path = entry_dir(layer, spec.arch, spec.name, key)
        if not path.exists():
            continue
        verdict = verify_entry(path, key, full=False)
        if verdict.ok:
            return path, verdict.manifest
        if layer != root:
            log.warning("hkjit: skipping bad entry %s in read-only layer (%s)", path, verdict.reason)
    return None


def load_module(spec: KernelSpec, *, build: bool = True, root: Path | None = None,
                library_roots: dict[str, str] | None = None, call_site: bool = False,
                import_module: bool = True) -> Loaded:
    """The module for `spec`, building it if it is not cached (build=False: a miss raises LookupError).

    Thread-safe; the lookup happens once per process per (spec, root). import_module=False finds or builds the
    entry without importing it (warmup for another arch)."""
    root = root or cache_root()
    memo_key = (spec.arch, spec.name, str(root))
    if (hit := _loaded.get(memo_key)) is not None and (hit.module is not None or not import_module):
        return hit
    with _mutexes_guard:
        mutex = _mutexes.setdefault(memo_key, threading.Lock())
    with mutex:
        if (hit := _loaded.get(memo_key)) is not None and (hit.module is not None or not import_module):
            return hit
        t0 = time.perf_counter()
        check_can_build(spec.arch, spec.name)
        key, inputs = entry_key(spec, root, library_roots)
        found = find_published(spec, key, root)
        built = False
        if found is None:
            if not build:
                raise LookupError(f"{spec.name} for {spec.arch} is not in the cache (key {key})")
            if _capturing():
                raise CaptureError(f"hkjit.gemm needs {spec.name} for {spec.arch} compiled, and a CUDA/HIP graph is "
                                   f"being captured: call it once before capturing, or run `python -m hkjit warmup`")
            found, built = _build_locked(spec, key, inputs, root, library_roots, call_site)
        path, manifest = found
        module = _import(path, manifest) if import_module else None
        touch_used(path)
        loaded = Loaded(module, path, key, built, time.perf_counter() - t0)
        if module is not None:
            _loaded[memo_key] = loaded
        return loaded


def _build_locked(spec, key, inputs, root, library_roots, call_site) -> tuple[tuple[Path, dict], bool]:
    from .builder import build_entry       # imported on a miss only: a hit needs neither filelock nor subprocess
    from .locking import BuildLock

    ensure_writable(root)
    with BuildLock(root, f"{spec.arch}-{spec.name}-{key}", what=f"{spec.name} for {spec.arch}"):
        path = entry_dir(root, spec.arch, spec.name, key)
        if path.exists():
            verdict = verify_entry(path, key)
            if verdict.ok:                       # another process built it while we waited
                return (path, verdict.manifest), False
            move_aside(path, verdict.reason)
        if call_site:
            log.warning("hkjit: compiling %s for %s (first use; about a minute). `python -m hkjit warmup` builds "
                        "it ahead of time.", spec.name, spec.arch)
        path = build_entry(spec, root, key, inputs, library_roots)
        verdict = verify_entry(path, key)
        if not verdict.ok:
            raise RuntimeError(f"hkjit: freshly built entry {path} fails verification: {verdict.reason}")
        return (path, verdict.manifest), True


def forget_loaded() -> None:
    """Drop the in-process memo (tests, and `cache clear` in a long-lived process)."""
    _loaded.clear()
