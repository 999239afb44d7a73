"""The on-disk cache: where entries live, what makes an entry valid, and moving bad ones aside.

Layout (one writable root, plus read-only layers from HKJIT_CACHE_PATH)::

    <root>/v1/<arch>/<kernel>-<key>/      a published entry
        <module>.so                       the built extension module
        key.json                          every key input (hashes to <key>)
        build.log                         the compiler's output
        manifest.json                     written last: module name, size and xxh3 checksum
    <root>/v1/tmp/                        builds in progress (renamed into place when done)
    <root>/v1/trash/                      entries that failed verification, moved aside
    <root>/v1/failed/<kernel>-<key>.log   the log of the last failed build of a key
    <root>/v1/locks/                      build locks and leases (see locking.py)
    <root>/v1/memo.json                   compiler versions / header hashes by stat signature (keys.py)

An entry is loaded only after ``verify_entry`` passes: the manifest exists, names this format and this key,
key.json hashes to the key, and the module file has the recorded size and checksum.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from .config import env_str
from .errors import CacheError
from .keys import file_identity, key_of
from .manifest import manifest_problem
from .version import CACHE_FORMAT

log = logging.getLogger("hkjit")
FORMAT_DIR = f"v{CACHE_FORMAT}"
MANIFEST = "manifest.json"
KEY_JSON = "key.json"
BUILD_LOG = "build.log"
USED_STAMP = ".last_used"
VERIFIED_STAMP = ".verified"


def cache_root() -> Path:
    """The writable cache root: HKJIT_CACHE_DIR, else the platform's user cache dir (~/.cache/hkjit)."""
    return _root_for(env_str("HKJIT_CACHE_DIR"))


@functools.lru_cache(maxsize=16)
def _root_for(raw: str) -> Path:
    # Resolved once per value: cache_root() is on every call's path and must not stat or import each time.
    root = Path(os.path.expanduser(raw)) if raw else default_root()
    if root.exists() and not root.is_dir():
        _root_for.cache_clear()
        raise CacheError(f"HKJIT_CACHE_DIR={root} is a file, not a directory: point it at a folder")
    return root


def default_root() -> Path:
    """``platformdirs.user_cache_dir("hkjit")``, read from the environment directly on Linux.

    Importing platformdirs costs 2-3 ms, as much as the rest of a warm start. On Linux platformdirs follows the XDG
    base-directory spec: ``$XDG_CACHE_HOME`` when it is an absolute path, else ``$HOME/.cache`` (tests pin the
    equality for set, empty and relative values). Anything else (another OS, Android, no absolute HOME) asks
    platformdirs itself."""
    if sys.platform == "linux" and "ANDROID_DATA" not in os.environ:
        xdg, home = os.environ.get("XDG_CACHE_HOME", ""), os.environ.get("HOME", "")
        if os.path.isabs(xdg):
            return Path(xdg, "hkjit")
        if os.path.isabs(home):
            return Path(home, ".cache", "hkjit")
    import platformdirs
    return Path(platformdirs.user_cache_dir("hkjit"))


def cache_layers() -> list[Path]:
    """Read-only cache roots from HKJIT_CACHE_PATH (os.pathsep-separated), e.g. a cache pre-baked in CI."""
    return [Path(os.path.expanduser(p)) for p in env_str("HKJIT_CACHE_PATH").split(os.pathsep) if p.strip()]


def ensure_writable(root: Path) -> None:
    """Raise CacheError (naming the fix) unless a build can write under root."""
    try:
        format_dir(root).mkdir(parents=True, exist_ok=True)
        probe = format_dir(root) / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CacheError(f"the hkjit cache {root} is not writable ({e.strerror}): set HKJIT_CACHE_DIR to a writable "
                         f"folder, or list a pre-built cache in HKJIT_CACHE_PATH (made by `python -m hkjit warmup` "
                         f"where it can write)") from None


def format_dir(root: Path) -> Path:
    return root / FORMAT_DIR


def entry_dir(root: Path, arch: str, kernel: str, key: str) -> Path:
    return format_dir(root) / arch / f"{kernel}-{key}"


def memo_path(root: Path) -> Path:
    return format_dir(root) / "memo.json"


def file_xxh3(path: Path) -> str:
    import xxhash   # a warm hit trusts the .verified stamp and never hashes the module (verify_entry)
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Verdict:
    """Whether an entry may be loaded (ok), why not (reason), and its manifest when it may."""
    # a plain slotted class, not a NamedTuple: class creation is on every warm start's path (~50 us less)
    __slots__ = ("ok", "reason", "manifest")

    def __init__(self, ok: bool, reason: str = "", manifest: dict | None = None) -> None:
        self.ok, self.reason, self.manifest = ok, reason, manifest

    def __repr__(self) -> str:
        return f"Verdict(ok={self.ok!r}, reason={self.reason!r})"


def verify_entry(path: Path, expected_key: str | None = None, full: bool = True) -> Verdict:
    """Whether the entry at `path` may be loaded; the reason when it may not.

    full=False (the loader's warm path) skips re-reading key.json and re-hashing the module when both files'
    identities (inode, size, mtime, ctime) are the ones recorded in ``.verified`` when they last checked out;
    `cache verify` always hashes."""
    if not path.is_dir():
        return Verdict(False, "missing")
    dir_key = path.name.rsplit("-", 1)[-1]
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return Verdict(False, "no manifest (build interrupted before it was published)")
    except (OSError, ValueError) as e:
        return Verdict(False, f"unreadable manifest ({e})")
    if manifest.get("format") != CACHE_FORMAT:
        return Verdict(False, f"cache format {manifest.get('format')} (this hkjit writes {CACHE_FORMAT})")
    if manifest.get("key") != dir_key or (expected_key and dir_key != expected_key):
        return Verdict(False, f"manifest of another key ({manifest.get('key')})")
    if why := manifest_problem(manifest, path.name):    # module_file confined to the entry (manifest.py)
        return Verdict(False, why)
    module = path / manifest["module_file"]
    try:
        st = module.stat()
    except OSError:
        return Verdict(False, "module file missing")
    if st.st_size != manifest.get("size"):
        return Verdict(False, f"module is {st.st_size} bytes, manifest says {manifest.get('size')} (truncated?)")
    try:
        key_st = (path / KEY_JSON).stat()
    except OSError:
        return Verdict(False, "key.json missing or unreadable")
    identity = [manifest.get("xxh3"), *file_identity(st), *file_identity(key_st)]
    stamp = path / VERIFIED_STAMP
    if not full:
        try:
            if json.loads(stamp.read_text()) == identity:
                return Verdict(True, "ok", manifest)
        except (OSError, ValueError):
            pass
    try:
        inputs = json.loads((path / KEY_JSON).read_text())
    except (OSError, ValueError):
        return Verdict(False, "key.json missing or unreadable")
    if key_of(inputs) != dir_key:
        return Verdict(False, "key.json does not hash to the entry's key (inputs of another build)")
    if file_xxh3(module) != manifest.get("xxh3"):
        return Verdict(False, "module checksum mismatch (corrupted)")
    try:
        stamp.write_text(json.dumps(identity))
    except OSError:
        pass  # read-only layer: hashed again next time
    return Verdict(True, "ok", manifest)


def move_aside(path: Path, reason: str, then: str = "rebuilding") -> Path | None:
    """Move a bad entry into <root>/v1/trash so it is never loaded again and can be inspected."""
    trash = path.parent.parent / "trash"
    dest = trash / f"{path.name}.{int(time.time())}.{os.getpid()}"
    try:
        trash.mkdir(parents=True, exist_ok=True)
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("hkjit: cache entry %s is bad (%s) and could not be moved aside: %s", path, reason, e)
        return None
    log.warning("hkjit: cache entry %s is bad (%s); moved to %s%s", path, reason, dest, f" and {then}" if then else "")
    return dest


def touch_used(path: Path) -> None:
    """Record a use (for LRU pruning); silently skipped on read-only layers."""
    try:
        (path / USED_STAMP).touch()
    except OSError:
        pass


def last_used(path: Path) -> float:
    for p in (path / USED_STAMP, path / MANIFEST):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


def iter_entries(root: Path):
    """(arch, kernel, key, path) of every entry folder under root (valid or not)."""
    fmt = format_dir(root)
    if not fmt.is_dir():
        return
    for arch_dir in sorted(fmt.iterdir()):
        if not arch_dir.is_dir() or arch_dir.name in ("tmp", "trash", "failed", "locks"):
            continue
        for entry in sorted(arch_dir.iterdir()):
            if entry.is_dir() and "-" in entry.name:
                kernel, key = entry.name.rsplit("-", 1)
                yield arch_dir.name, kernel, key, entry


def host_id() -> str:
    return socket.gethostname()
