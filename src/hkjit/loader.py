"""Getting a kernel's module: in-process memo, then the cache (writable root and read-only layers), then a build.

A hit never runs ninja or load_inline: the published module file is imported directly with importlib after its
manifest is verified (cache.verify_entry). A miss takes the entry's build lock, checks again (another process
may have built it meanwhile), and builds (builder.py).

Trust (trust.py): an untrusted root is refused with a CacheError, an untrusted layer is skipped with one warning,
before anything in them is read. An entry that verifies but does not import (a garbage module, a wrong init
symbol) is moved aside and rebuilt in the root, or skipped for the rest of the process in a read-only layer; an
entry that vanished between its check and the import (a concurrent `cache clear`) is looked up once more.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from pathlib import Path
from types import ModuleType

import torch

from .cache.entry import move_aside, touch_used, verify_entry
from .cache.layout import BUILD_LOG, Layout, lock_name
from .cache.roots import cache_layers, cache_root, ensure_writable
from .cache.trust import check_root, trusted_layers
from .config import env_raw
from .errors import CacheError, CaptureError
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


_loaded: dict[tuple[str, str, str, str], Loaded] = {}
_unloadable: set[str] = set()       # layer entries that verified but failed to import: skipped in this process
_faults_fired: set[str] = set()
_mutexes: dict[tuple[str, str, str, str], threading.Lock] = {}
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


def search_roots(root: Path) -> list[Path]:
    """root, then the trusted read-only layers: CacheError for an untrusted root, one warning per skipped layer."""
    check_root(root)
    return [root] + trusted_layers([p for p in cache_layers() if p != root])


def find_published(spec: KernelSpec, key: str, root: Path) -> tuple[Path, dict] | None:
    """The first valid entry for key in root, then in each read-only layer; bad layer entries are skipped."""
    for layer in search_roots(root):
        path = Layout(layer).entry(spec.arch, spec.name, key)
        if not path.exists() or str(path) in _unloadable:
            continue
        verdict = verify_entry(path, key, full=False, write_stamp=layer == root)
        if verdict.ok:
            return path, verdict.manifest
        if layer != root:
            log.warning("hkjit: skipping bad entry %s in read-only layer (%s)", path, verdict.reason)
    return None


def load_module(spec: KernelSpec, *, build: bool = True, root: Path | None = None,
                library_roots: dict[str, str] | None = None, call_site: bool = False,
                import_module: bool = True) -> Loaded:
    """The module for `spec`, building it if it is not cached (build=False: a miss raises LookupError).

    Thread-safe; the lookup happens once per process per (arch, kernel, configuration, root). import_module=False
    finds or builds the entry without importing it (warmup for another arch)."""
    root = root or cache_root()
    memo_key = (spec.arch, spec.name, str(root), spec.config)     # one module per configuration
    if (hit := _loaded.get(memo_key)) is not None and (hit.module is not None or not import_module):
        return hit
    with _mutexes_guard:
        mutex = _mutexes.setdefault(memo_key, threading.Lock())
    with mutex:
        if (hit := _loaded.get(memo_key)) is not None and (hit.module is not None or not import_module):
            return hit
        t0 = time.perf_counter()
        check_can_build(spec.arch, spec.name)
        check_root(root)                         # before the key: it reads the root's memo.json
        key, inputs = entry_key(spec, root, library_roots)
        path, module, built = _find_and_import(spec, key, inputs, root, build, library_roots, call_site,
                                               import_module)
        if path.is_relative_to(Layout(root).format_dir):
            touch_used(path)                     # never in a read-only layer
        loaded = Loaded(module, path, key, built, time.perf_counter() - t0)
        if module is not None:
            _loaded[memo_key] = loaded
        return loaded


def _find_or_build(spec, key, inputs, root, build, library_roots, call_site) -> tuple[tuple[Path, dict], bool]:
    found = find_published(spec, key, root)
    if found is not None:
        return found, False
    if not build:
        raise LookupError(f"{spec.name} for {spec.arch} is not in the cache (key {key})")
    if _capturing():
        raise CaptureError(f"hkjit.gemm needs {spec.name} for {spec.arch} compiled, and a CUDA/HIP graph is "
                           f"being captured: call it once before capturing, or run `python -m hkjit warmup`")
    return _build_locked(spec, key, inputs, root, library_roots, call_site)


def _find_and_import(spec, key, inputs, root, build, library_roots, call_site, import_module
                     ) -> tuple[Path, ModuleType | None, bool]:
    """Find (or build) the entry and import it; an entry that fails to import is dealt with once (see the module
    docstring) and the lookup runs again. A second failure is a CacheError naming the entry."""
    for attempt in (1, 2):
        (path, manifest), built = _find_or_build(spec, key, inputs, root, build, library_roots, call_site)
        if not import_module:
            return path, None, built
        _test_fault("before_import", path)
        try:
            return path, _import(path, manifest), built
        except (ImportError, OSError) as e:
            if attempt == 2:
                raise CacheError(f"hkjit: {spec.name} for {spec.arch} at {path} cannot be imported ({e}), and neither "
                                 f"could the entry looked up before it: see {path / BUILD_LOG}, or run `python -m hkjit "
                                 f"cache clear` and retry") from e
            _set_aside_unloadable(path, root, e)
    raise AssertionError("unreachable")


def _set_aside_unloadable(path: Path, root: Path, error: BaseException) -> None:
    """After a failed import: nothing to do if the entry is gone (looked up again); a root entry is moved aside
    (rebuilt by the next lookup), a layer entry is skipped for the rest of the process."""
    module_gone = not path.is_dir()
    if module_gone:
        log.warning("hkjit: cache entry %s vanished between its check and its import (%s); looking it up again",
                    path, error)
    elif path.is_relative_to(Layout(root).format_dir):
        move_aside(path, f"it verifies but does not import: {error}")
    else:
        _unloadable.add(str(path))
        log.warning("hkjit: skipping %s in a read-only layer: it verifies but does not import (%s); rebuild that "
                    "layer (`python -m hkjit warmup` where it is written) or drop it from HKJIT_CACHE_PATH", path,
                    error)


def _test_fault(name: str, path: Path) -> None:
    """Fault injection for tests/reliability: HKJIT_TEST_FAULT=vanish_before_import renames the entry into the
    trash right before its import, as a concurrent `cache clear` would."""
    if env_raw("HKJIT_TEST_FAULT") == f"vanish_{name}" and path.is_dir() and name not in _faults_fired:
        _faults_fired.add(name)
        dest = Layout.of_entry(path).trash_slot(path.name)
        dest.parent.mkdir(exist_ok=True)
        os.rename(path, dest)


def _build_locked(spec, key, inputs, root, library_roots, call_site) -> tuple[tuple[Path, dict], bool]:
    from .builder import build_entry       # imported on a miss only: a hit needs neither filelock nor subprocess
    from .cache.lock import BuildLock

    ensure_writable(root)
    with BuildLock(root, lock_name(spec.arch, spec.name, key), what=f"{spec.name} for {spec.arch}"):
        path = Layout(root).entry(spec.arch, spec.name, key)
        if path.exists():
            verdict = verify_entry(path, key, write_stamp=True)
            if verdict.ok:                       # another process built it while we waited
                return (path, verdict.manifest), False
            move_aside(path, verdict.reason)
        if call_site:
            log.warning("hkjit: compiling %s for %s (first use; about a minute). `python -m hkjit warmup` builds "
                        "it ahead of time.", spec.name, spec.arch)
        path = build_entry(spec, root, key, inputs, library_roots)
        verdict = verify_entry(path, key, write_stamp=True)
        if not verdict.ok:
            raise RuntimeError(f"hkjit: freshly built entry {path} fails verification: {verdict.reason}")
        return (path, verdict.manifest), True


def forget_loaded() -> None:
    """Drop the in-process memo (tests, and `cache clear` in a long-lived process)."""
    _loaded.clear()
