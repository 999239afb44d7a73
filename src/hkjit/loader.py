"""Getting a kernel's module, in three steps with one job each:

- ``find(spec, root)``: the cache lookup only (root, then the trusted read-only layers): a Found, or None on a
  miss;
- ``ensure(spec, root)``: find, or else take the entry's build lock, check again (another process may have built
  it meanwhile), build and publish (builder.py); no import (what warmup uses: it builds for other archs too);
- ``load(spec)``: ensure, then import, memoized in the process (what the call path uses); ``load_cached(spec)``
  imports only what is cached (None on a miss: it never compiles).

Each resolves the build request once (toolchain.resolve): the key is hashed from it (keys.resolve_key) and a build
builds it. A hit never runs ninja or load_inline: the published module file is imported directly with importlib
after its manifest is verified (cache.entry.verify_entry).

Trust (trust.py): an untrusted root is refused with a CacheError, an untrusted layer is skipped with one warning,
before anything in them is read. An entry that verifies but does not import (a garbage module, a wrong init
symbol) is moved aside and rebuilt in the root, or skipped for the rest of the process in a read-only layer; an
entry that vanished between its check and the import (a concurrent `cache clear`) is looked up once more.
"""
from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from types import ModuleType

import torch

from .cache.entry import move_aside, to_trash, touch_used, verify_entry
from .cache.layout import BUILD_LOG, Layout, lock_name
from .cache.roots import cache_root, ensure_writable
from .cache.trust import check_root, search_roots
from .config import env_raw
from .errors import CacheError, CaptureError
from .keys import resolve_key
from .records import Record
from .specs import KernelSpec
from .toolchain import BuildRequest, check_can_build, resolve

log = logging.getLogger("hkjit")


class Found(Record):
    """A published, verified cache entry: path (its folder), key, manifest; built: whether this process just
    compiled it (ensure); seconds: time spent getting it."""
    __slots__ = ("path", "key", "manifest", "built", "seconds")
    _defaults = {"built": False, "seconds": 0.0}
    path: Path
    key: str
    manifest: dict
    built: bool
    seconds: float

    def __repr__(self) -> str:
        return f"Found(path={str(self.path)!r}, key={self.key!r}, built={self.built!r})"


class Loaded(Record):
    """module: the imported module; path: the entry folder it came from; key; built: whether this call compiled
    it; seconds: time spent."""
    __slots__ = ("module", "path", "key", "built", "seconds")
    module: ModuleType
    path: Path
    key: str
    built: bool
    seconds: float

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
    if spec is None or spec.loader is None:         # not a loadable extension file name (the manifest checked it)
        raise ImportError(f"{path / manifest['module_file']} is not an importable module file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _request(spec: KernelSpec, root: Path) -> tuple[BuildRequest, str, dict]:
    """(build request, key, key inputs) of spec in root: resolved once, after the checks that name the real
    blocker (this torch cannot build the arch; the root is not trusted: its memo.json is not read)."""
    check_can_build(spec.arch, spec.name)
    check_root(root)
    request = resolve(spec, Layout(root).memo)
    key, inputs = resolve_key(request, root)
    return request, key, inputs


def find_published(spec: KernelSpec, key: str, root: Path) -> Found | None:
    """The first valid entry for key in root, then in each read-only layer; bad layer entries are skipped."""
    for layer in search_roots(root):
        path = Layout(layer).entry(spec.arch, spec.name, key)
        if not path.exists() or str(path) in _unloadable:
            continue
        verdict = verify_entry(path, key, full=False, write_stamp=layer == root)
        if verdict.ok:
            return Found(path, key, verdict.manifest)
        if layer != root:
            log.warning("hkjit: skipping bad entry %s in read-only layer (%s)", path, verdict.reason)
    return None


def find(spec: KernelSpec, root: Path | None = None) -> Found | None:
    """The published entry of `spec` in the cache (root, then the trusted layers), or None when it is not there.

    Raises (an HkjitError) only when the lookup itself cannot be made: this torch cannot build the arch, the
    root is refused, or the key cannot be computed here and no pre-baked entry matches."""
    root = root or cache_root()
    key = _request(spec, root)[1]
    return find_published(spec, key, root)


def ensure(spec: KernelSpec, root: Path | None = None, *, call_site: bool = False) -> Found:
    """The published entry of `spec`, built and published first if it is not cached (lock held); not imported.
    call_site: log a warning before compiling on a user's call."""
    root = root or cache_root()
    t0 = time.perf_counter()
    request, key, inputs = _request(spec, root)
    found = _ensure(request, key, inputs, root, call_site, build=True)
    assert found is not None                        # build=True: a miss is built, never None
    _touch(found.path, root)
    return found.replace(seconds=time.perf_counter() - t0)


def load(spec: KernelSpec, root: Path | None = None, *, call_site: bool = False) -> Loaded:
    """The imported module of `spec` (ensure, then import). Thread-safe; the lookup happens once per process per
    (arch, kernel, configuration, root). call_site: log a warning before compiling on a user's call."""
    loaded = _load(spec, root or cache_root(), call_site, build=True)
    assert loaded is not None
    return loaded


def load_cached(spec: KernelSpec, root: Path | None = None) -> Loaded | None:
    """The imported module of `spec` if it is cached, else None (never compiles). An entry that does not import
    is dealt with as load() does; if no other one is cached that is a miss too."""
    return _load(spec, root or cache_root(), False, build=False)


def _load(spec: KernelSpec, root: Path, call_site: bool, build: bool) -> Loaded | None:
    memo_key = (spec.arch, spec.name, str(root), spec.config)     # one module per configuration
    if (hit := _loaded.get(memo_key)) is not None:
        return hit
    with _mutexes_guard:
        mutex = _mutexes.setdefault(memo_key, threading.Lock())
    with mutex:
        if (hit := _loaded.get(memo_key)) is not None:
            return hit
        t0 = time.perf_counter()
        request, key, inputs = _request(spec, root)
        got = _ensure_and_import(request, key, inputs, root, call_site, build)
        if got is None:
            return None
        found, module = got
        _touch(found.path, root)
        loaded = _loaded[memo_key] = Loaded(module, found.path, key, found.built, time.perf_counter() - t0)
        return loaded


def _touch(path: Path, root: Path) -> None:
    if path.is_relative_to(Layout(root).format_dir):
        touch_used(path)                     # never in a read-only layer


def _ensure(request: BuildRequest, key: str, inputs: dict, root: Path, call_site: bool, build: bool
            ) -> Found | None:
    """The published entry, built first if it is missing and `build` (else None on a miss)."""
    spec = request.spec
    found = find_published(spec, key, root)
    if found is not None or not build:
        return found
    if _capturing():
        raise CaptureError(f"hkjit.gemm needs {spec.name} for {spec.arch} compiled, and a CUDA/HIP graph is "
                           f"being captured: call it once before capturing, or run `python -m hkjit warmup`")
    return _build_locked(request, key, inputs, root, call_site)


def _ensure_and_import(request: BuildRequest, key: str, inputs: dict, root: Path, call_site: bool, build: bool
                       ) -> tuple[Found, ModuleType] | None:
    """Ensure the entry (or, build=False, find it: None on a miss) and import it; an entry that fails to import
    is dealt with once (see the module docstring) and the lookup runs again. A second failure is a CacheError
    naming the entry."""
    spec = request.spec
    for attempt in (1, 2):
        found = _ensure(request, key, inputs, root, call_site, build)
        if found is None:
            return None
        _test_fault("before_import", found.path)
        try:
            return found, _import(found.path, found.manifest)
        except (ImportError, OSError) as e:
            if attempt == 2:
                raise CacheError(f"hkjit: {spec.name} for {spec.arch} at {found.path} cannot be imported ({e}), and "
                                 f"neither could the entry looked up before it: see {found.path / BUILD_LOG}, or run "
                                 f"`python -m hkjit cache clear` and retry") from e
            _set_aside_unloadable(found.path, root, e)
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
        to_trash(path)


def _build_locked(request: BuildRequest, key: str, inputs: dict, root: Path, call_site: bool) -> Found:
    from .builder import build_entry       # imported on a miss only: a hit needs neither filelock nor subprocess
    from .cache.lock import BuildLock

    spec = request.spec
    ensure_writable(root)
    with BuildLock(root, lock_name(spec.arch, spec.name, key), what=f"building {spec.name} for {spec.arch}"):
        path = Layout(root).entry(spec.arch, spec.name, key)
        if path.exists():
            verdict = verify_entry(path, key, write_stamp=True)
            if verdict.ok:                       # another process built it while we waited
                return Found(path, key, verdict.manifest)
            move_aside(path, verdict.reason)
        if call_site:
            log.warning("hkjit: compiling %s for %s (first use; about a minute). `python -m hkjit warmup` builds "
                        "it ahead of time.", spec.name, spec.arch)
        path = build_entry(request, root, key, inputs)
        verdict = verify_entry(path, key, write_stamp=True)
        if not verdict.ok:
            raise RuntimeError(f"hkjit: freshly built entry {path} fails verification: {verdict.reason}")
        return Found(path, key, verdict.manifest, built=True)


def forget_loaded() -> None:
    """Drop the in-process memo (tests, and `cache clear` in a long-lived process)."""
    _loaded.clear()
