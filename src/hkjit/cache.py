"""The on-disk cache: where entries live, what makes an entry valid, publishing one, and moving bad ones aside.

One writable root, plus read-only layers from HKJIT_CACHE_PATH. Every path under a root is named by
``layout.Layout`` (its docstring draws the tree): an entry ``<root>/v1/<arch>/<kernel>-<key>/`` holds the module,
key.json (every key input, hashing to <key>), build.log and, written last, manifest.json (module name, size and
xxh3 checksum). Builds and imports are staged in ``v1/tmp`` and ``publish``-ed into place; bad entries are moved
into ``v1/trash``.

An entry is loaded only after ``verify_entry`` passes: the manifest exists, names this format and this key,
key.json hashes to the key, and the module file has the recorded size and checksum; the entry's folder and files
are not symlinks and belong to this user or root (trust.py says who may have written a cache).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from .config import env_paths, env_raw, env_set, env_str
from .errors import CacheError
from .fsutil import atomic_write_text, fsync_dir, fsync_tree, read_nofollow, touch_nofollow
from .keys import file_identity, key_of
# the entry file names are re-exported for modules and tests that import them from here (layout.py owns them)
from .layout import (BUILD_LOG, FORMAT_DIR, KEY_JSON, MANIFEST, SPECIAL_DIRS, USED_STAMP,  # noqa: F401
                     VERIFIED_STAMP, Layout, split_entry_name, staging_re)
from .manifest import manifest_problem
from .trust import check_root, entry_file_problem, explicitly_trusted, recheck_root
from .version import CACHE_FORMAT

log = logging.getLogger("hkjit")


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
    if sys.platform == "linux" and not env_set("ANDROID_DATA"):
        xdg, home = env_raw("XDG_CACHE_HOME") or "", env_raw("HOME") or ""
        if os.path.isabs(xdg):
            return Path(xdg, "hkjit")
        if os.path.isabs(home):
            return Path(home, ".cache", "hkjit")
    import platformdirs
    return Path(platformdirs.user_cache_dir("hkjit"))


def cache_layers() -> list[Path]:
    """Read-only cache roots from HKJIT_CACHE_PATH (os.pathsep-separated), e.g. a cache pre-baked in CI."""
    return [Path(os.path.expanduser(p)) for p in env_paths("HKJIT_CACHE_PATH")]


def ensure_writable(root: Path) -> None:
    """Raise CacheError (naming the fix) unless a build can write under root, and root is trusted (trust.py).

    The probe is a fresh O_EXCL file (mkstemp), never a fixed name: a symlink planted there is not written through."""
    check_root(root)
    fmt = Layout(root).format_dir
    try:
        fmt.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=fmt)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CacheError(f"the hkjit cache {root} is not writable ({e.strerror}): set HKJIT_CACHE_DIR to a writable "
                         f"folder, or list a pre-built cache in HKJIT_CACHE_PATH (made by `python -m hkjit warmup` "
                         f"where it can write)") from None
    recheck_root(root)        # v1/ may have been created just now: by us, or by someone who raced us to it


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


def _in_layer(path: Path) -> bool:
    """Whether entry `path` lives in a read-only layer (HKJIT_CACHE_PATH), where hkjit never writes."""
    root = Layout.of_entry(path).root
    return any(root == layer for layer in cache_layers())


def verify_entry(path: Path, expected_key: str | None = None, full: bool = True,
                 write_stamp: bool | None = None) -> Verdict:
    """Whether the entry at `path` may be loaded; the reason when it may not.

    full=False (the loader's warm path) skips re-reading key.json and re-hashing the module when both files'
    identities (inode, size, mtime, ctime) are the ones recorded in ``.verified`` when they last checked out;
    `cache verify` always hashes. The stamp is written after a full check unless write_stamp is False (default:
    unless the entry is in a read-only layer). The entry folder, manifest, module and key.json must not be symlinks
    and must belong to this user or root (anyone, under HKJIT_TRUSTED_CACHE_DIRS)."""
    try:
        dir_st = os.lstat(path)
    except OSError:
        return Verdict(False, "missing")
    explicit = explicitly_trusted(path)
    if (why := entry_file_problem(path, dir_st, "entry folder", explicit)) is not None:
        return Verdict(False, why)
    dir_key = split_entry_name(path.name)[1]
    try:
        raw, man_st = read_nofollow(path / MANIFEST)
    except FileNotFoundError:
        return Verdict(False, "no manifest (build interrupted before it was published)")
    except OSError as e:
        return Verdict(False, f"unreadable manifest ({e.strerror}{': a symlink' if os.path.islink(path / MANIFEST) else ''})")
    if (why := entry_file_problem(path / MANIFEST, man_st, "manifest", explicit)) is not None:
        return Verdict(False, why)
    try:
        manifest = json.loads(raw)
    except ValueError as e:
        return Verdict(False, f"unreadable manifest ({e})")
    if not isinstance(manifest, dict):
        return Verdict(False, "unreadable manifest (not a JSON object)")
    if manifest.get("format") != CACHE_FORMAT:
        return Verdict(False, f"cache format {manifest.get('format')} (this hkjit writes {CACHE_FORMAT})")
    if manifest.get("key") != dir_key or (expected_key and dir_key != expected_key):
        return Verdict(False, f"manifest of another key ({manifest.get('key')})")
    if why := manifest_problem(manifest, path.name):    # module_file confined to the entry (manifest.py)
        return Verdict(False, why)
    module = path / manifest["module_file"]
    try:
        st = os.lstat(module)
    except OSError:
        return Verdict(False, "module file missing")
    if (why := entry_file_problem(module, st, "module", explicit)) is not None:
        return Verdict(False, why)
    if st.st_size != manifest.get("size"):
        return Verdict(False, f"module is {st.st_size} bytes, manifest says {manifest.get('size')} (truncated?)")
    try:
        key_st = os.lstat(path / KEY_JSON)
    except OSError:
        return Verdict(False, "key.json missing or unreadable")
    if (why := entry_file_problem(path / KEY_JSON, key_st, KEY_JSON, explicit)) is not None:
        return Verdict(False, why)
    identity = [manifest.get("xxh3"), *file_identity(st), *file_identity(key_st)]
    stamp = path / VERIFIED_STAMP
    if not full:
        try:
            if json.loads(read_nofollow(stamp)[0]) == identity:
                return Verdict(True, "ok", manifest)
        except (OSError, ValueError):
            pass
    try:
        inputs = json.loads(read_nofollow(path / KEY_JSON)[0])
    except (OSError, ValueError):
        return Verdict(False, "key.json missing or unreadable")
    if key_of(inputs) != dir_key:
        return Verdict(False, "key.json does not hash to the entry's key (inputs of another build)")
    if file_xxh3(module) != manifest.get("xxh3"):
        return Verdict(False, "module checksum mismatch (corrupted)")
    if write_stamp is None:
        write_stamp = not _in_layer(path)
    if write_stamp:
        try:
            atomic_write_text(stamp, json.dumps(identity), durable=False)   # replaces a planted symlink
        except OSError:
            pass  # not writable (or full): hashed again next time
    return Verdict(True, "ok", manifest)


def move_aside(path: Path, reason: str, then: str = "rebuilding") -> Path | None:
    """Move a bad entry into its root's trash (Layout.trash_slot) so it is never loaded again and can be inspected."""
    dest = Layout.of_entry(path).trash_slot(path.name)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("hkjit: cache entry %s is bad (%s) and could not be moved aside: %s", path, reason, e)
        return None
    log.warning("hkjit: cache entry %s is bad (%s); moved to %s%s", path, reason, dest, f" and {then}" if then else "")
    return dest


def publish(staged: Path, final: Path, replacing: str, then: str = "") -> None:
    """Put the entry folder `staged` (complete, in the same root's staging folder) in place at `final`: fsync its
    files, rename it, fsync the parent, so after a crash the entry is either absent or whole on disk. Whatever is
    at `final` already is moved aside first (`replacing` and `then` go into move_aside's warning). The builder and
    archive import both publish through here, with the entry's build lock held; an entry without manifest.json is
    never loaded, so the builder may write it after publishing."""
    fsync_tree(staged)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        move_aside(final, replacing, then=then)
    os.rename(staged, final)
    fsync_dir(final.parent)


def touch_used(path: Path) -> None:
    """Record a use (for LRU pruning) in an entry of the writable root; never through a symlink. The loader never
    calls it for a read-only layer."""
    try:
        touch_nofollow(path / USED_STAMP)
    except OSError:
        pass


#: a stamp further ahead of this host's clock than this is not believed (clock skew, a copied cache)
CLOCK_SKEW_SECONDS = 300.0


def last_used(path: Path) -> float:
    """When the entry was last used: its .last_used stamp, else its manifest's mtime. A time in the future (another
    host's clock, a copied cache) is not a use: it would make prune keep that entry and evict the one in use; the
    next candidate is taken, else 0 (oldest)."""
    limit = time.time() + CLOCK_SKEW_SECONDS
    for p in (path / USED_STAMP, path / MANIFEST):
        try:
            t = os.lstat(p).st_mtime
        except OSError:
            continue
        if t <= limit:
            return t
    return 0.0


def iter_entries(root: Path):
    """(arch, kernel, key, path) of every entry folder under root (valid or not)."""
    fmt = Layout(root).format_dir
    if not fmt.is_dir():
        return
    for arch_dir in sorted(fmt.iterdir()):
        if not arch_dir.is_dir() or arch_dir.name in SPECIAL_DIRS:
            continue
        for entry in sorted(arch_dir.iterdir()):
            if entry.is_dir() and "-" in entry.name:
                kernel, key = split_entry_name(entry.name)
                yield arch_dir.name, kernel, key, entry


def host_id() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_dir_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temp build folder named ``<kernel>-<key>.<host>.<pid>.<n>`` (host names may hold dots),
    None for a name of another shape."""
    m = staging_re().match(name)
    return (m["host"], int(m["pid"])) if m else None


def stale_temp_dir(d: Path, max_age: float) -> bool:
    """Whether temp build folder `d` can be removed: its builder (this host) is dead, or it is older than max_age
    seconds (any host). A future mtime (clock skew) counts by its distance from now, so it cannot live forever."""
    try:
        st = os.lstat(d)
    except OSError:
        return False
    owner = temp_dir_owner(d.name)
    if owner is not None:
        host, pid = owner
        if host == host_id() and pid != os.getpid() and not pid_alive(pid):
            return True
    return abs(time.time() - st.st_mtime) > max_age
