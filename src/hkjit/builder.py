"""Building one cache entry: compile in a fresh temp folder, then publish it atomically.

Called with the entry's build lock held (loader.py). Steps, each crash-safe:

1. clean this key's orphaned temp folders (their builder is dead);
2. compile exactly the build request (toolchain.BuildRequest: the record the key was hashed from; its
   ``worker_request`` is the load_inline call) in a staging folder (``Layout.staging``: ``<root>/v1/tmp/<kernel>-<key>.<host>.<pid>.<n>/``) through
   ``load_inline(build_directory=...)`` in a subprocess (never torch's shared extensions folder, so torch's
   FileBaton is never contended), the leader of a session of its own: when the caller dies or is interrupted,
   every process of the build dies with it (_buildworker.kill_session);
3. write key.json, drop intermediates, and ``cache.entry.publish`` the folder (fsync, rename to
   ``<root>/v1/<arch>/<kernel>-<key>``, fsync the parent);
4. write manifest.json (module size + xxh3) last, atomically. An entry without it is never loaded.

A failed compile raises BuildError with the compiler's last lines and the kept log's path.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from itertools import count
from pathlib import Path

from ._buildworker import kill_session
from .cache.entry import clean_orphans, host_id, publish
from .cache.layout import BUILD_LOG, KEY_JSON, MANIFEST, Layout, entry_name
from .config import env_raw
from .errors import BuildError, CacheError, MissingLibraryError
from .fsutil import atomic_write_text, file_xxh3, out_of_space
from .specs import KernelSpec
from .toolchain import BuildRequest, check_can_build
from .version import CACHE_FORMAT, __version__

log = logging.getLogger("hkjit")
_counter = count()
TAIL_LINES = 30


def module_name(spec: KernelSpec, key: str) -> str:
    return f"hkjit_{spec.name}_{spec.arch}_{key[:16]}"


def _crash_point(name: str) -> None:
    """Fault injection for tests/reliability: HKJIT_TEST_CRASH_AT=<name> SIGKILLs this process here."""
    if env_raw("HKJIT_TEST_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)




def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _keep_failed_log(root: Path, spec: KernelSpec, key: str, log_path: Path) -> Path | None:
    dest = Layout(root).failed_log(spec.arch, spec.name, key)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, dest)
        return dest
    except OSError:
        return None


def _prune_intermediates(build_dir: Path) -> None:
    for p in build_dir.iterdir():
        if p.is_file() and (p.suffix == ".o" or p.name.startswith(".ninja") or p.name == "lock"):
            p.unlink()


def build_entry(request: BuildRequest, root: Path, key: str, inputs: dict) -> Path:
    """Build `request` into the cache entry for `key` (inputs: keys.key_inputs_of(request), written as key.json)
    and publish it; returns the entry's folder. Lock held."""
    spec = request.spec
    check_can_build(spec.arch, spec.name)
    if request.missing:                      # no compiler or no headers here: nothing to build with
        raise MissingLibraryError(request.missing[0][1])
    layout = Layout(root)
    final = layout.entry(spec.arch, spec.name, key)
    clean_orphans(root, prefix=entry_name(spec.name, key))
    build_dir = layout.staging(spec.name, key, host_id(), str(next(_counter)))
    try:
        build_dir.mkdir(parents=True)
    except OSError as e:
        raise CacheError(f"cannot create a build folder in {root}: {e}. Set HKJIT_CACHE_DIR to a writable folder, "
                         f"or put a pre-built cache in HKJIT_CACHE_PATH") from e
    try:
        return _build_and_publish(request, root, key, inputs, build_dir, final)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise CacheError(f"disk full while building {spec.name} for {spec.arch} in {root}: free space or "
                             f"point HKJIT_CACHE_DIR elsewhere (`python -m hkjit cache prune --max-size ...`)") from e
        raise
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def _build_and_publish(request: BuildRequest, root: Path, key: str, inputs: dict, build_dir: Path,
                       final: Path) -> Path:
    spec = request.spec
    name = module_name(spec, key)
    req_path = build_dir / "request.json"
    req_path.write_text(json.dumps(request.worker_request(name, build_dir), indent=1))
    log_path = build_dir / BUILD_LOG
    t0 = time.time()
    with open(log_path, "wb") as logf:
        # A session of its own: every process of the build (ninja, c++, cc1plus) can be found and killed by it.
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_buildworker.py")), str(req_path)],
                                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "HKJIT_BUILD_PARENT": str(os.getpid())})
        try:
            if env_raw("HKJIT_TEST_CRASH_AT") == "compile":
                time.sleep(1.0)
                _crash_point("compile")
            rc = proc.wait()
        except BaseException:                    # interrupted (KeyboardInterrupt, SystemExit from a signal handler)
            kill_session(proc.pid)               # not reaped yet: the pid, hence the session id, is still ours
            proc.wait()
            raise
        finally:
            kill_session(proc.pid, reaped=True)  # anything a worker killed outright (OOM) left running
    seconds = time.time() - t0
    modules = sorted(build_dir.glob(f"{name}*.so")) + sorted(build_dir.glob(f"{name}*.pyd"))
    if rc != 0 or not modules:
        tail = _tail(log_path)
        if "No space left on device" in tail or out_of_space(build_dir):   # a full disk may leave an empty log
            raise CacheError(f"disk full while building {spec.name} for {spec.arch} in {root}: free space or "
                             f"point HKJIT_CACHE_DIR elsewhere (`python -m hkjit cache prune --max-size ...`)")
        kept = _keep_failed_log(root, spec, key, log_path)
        raise BuildError(f"building {spec.name} for {spec.arch} failed (exit {rc}) after {seconds:.1f} s; "
                         f"last lines of the compiler's output:\n{tail}\nfull log: {kept}", str(kept), tail)
    module = modules[0]
    req_path.unlink()
    _prune_intermediates(build_dir)
    atomic_write_text(build_dir / KEY_JSON, json.dumps(inputs, indent=1, sort_keys=True))
    _crash_point("before_rename")
    # whatever is at `final` is an unpublished remnant (a crash after the rename): never reused
    publish(build_dir, final, replacing="left without a manifest by an interrupted build",
            then="rebuilding")
    _crash_point("before_manifest")
    manifest = {
        "format": CACHE_FORMAT, "kernel": spec.name, "arch": spec.arch, "key": key,
        "module_file": module.name, "module_name": module.stem.split(".")[0],
        "size": (final / module.name).stat().st_size, "xxh3": file_xxh3(final / module.name),
        "built_at": time.time(), "build_seconds": round(seconds, 2), "host": host_id(),
        "hkjit_version": __version__,
    }
    atomic_write_text(final / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    log.info("hkjit: built %s for %s in %.1f s -> %s", spec.name, spec.arch, seconds, final)
    return final
