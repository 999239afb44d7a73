"""One cache entry's life: what makes it valid, publishing it, recording its use, moving it aside, and cleaning
up the staging folders of builds and imports that died.

An entry ``<root>/v1/<arch>/<kernel>-<key>/`` (every path is named by layout.Layout, whose docstring draws the tree)
holds the module, key.json (every key input, hashing to <key>), build.log and, written last, manifest.json (module
name, size and xxh3 checksum). Builds and imports are staged in ``v1/tmp`` and ``publish``-ed into place; bad
entries are moved into ``v1/trash``.

An entry is loaded only after ``verify_entry`` passes: the manifest exists, names this format and this key and a
module file confined to the entry (manifest_problem), key.json hashes to the key, and the module file has the
recorded size and checksum; the entry's folder and files are not symlinks and belong to this user or root
(trust.py says who may have written a cache). `cache verify`, export and import also ask entry_problem (key.json
and the manifest name the folder's arch and kernel).

Everything here is on the warm path or the builder's: nothing heavy is imported at module level.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path

from ..fsutil import atomic_write_text, fsync_dir, file_xxh3, fsync_tree, read_nofollow, touch_nofollow
from ..keys import key_of
from ..records import Record
from .memo import file_identity
from ..version import CACHE_FORMAT
from .layout import (ENTRY_FILES, KEY_JSON, MANIFEST, SPECIAL_DIRS, USED_STAMP, VERIFIED_STAMP, Layout,
                     split_entry_name, staging_re)
from .roots import in_layer
from .trust import entry_file_problem, explicitly_trusted

log = logging.getLogger("hkjit")

# ------------------------------------------------------------------------------------------------- the manifest
# The manifest tells the loader which file to import (``module_file``) under which name (``module_name``). An entry
# is a folder of plain files, so ``module_file`` must be a plain file name inside it: an absolute path or a path
# with a folder would make the loader import a file the entry's checksum never covered ("/some/where/evil.so" --
# the checksum would then be of that file, written by whoever wrote the manifest).
_PLAIN_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def manifest_problem(manifest: dict, entry_name: str | None = None, arch: str | None = None) -> str:
    """Why `manifest` may not be used for the entry folder `entry_name` (``<kernel>-<key>``) under `arch`; ""
    when it may. Checks the names only (the one check shared by the loader, `cache verify` and `cache import`):
    sizes and checksums are verify_entry's."""
    module_file = manifest.get("module_file")
    if not isinstance(module_file, str) or not _PLAIN_FILE.match(module_file) or module_file in ENTRY_FILES \
            or not module_file.endswith((".so", ".pyd")):
        return (f"manifest names module file {module_file!r}, not a plain .so/.pyd file name inside the entry "
                f"(refused: the loader would import a file outside what the entry's checksum covers)")
    module_name = manifest.get("module_name")
    if not isinstance(module_name, str) or not _MODULE_NAME.match(module_name) \
            or not module_file.startswith(module_name):
        return f"manifest names module {module_name!r}, not the Python name of {module_file!r}"
    if entry_name is not None:
        kernel, key = split_entry_name(entry_name)
        if manifest.get("kernel", kernel) != kernel or manifest.get("key", key) != key:
            return (f"manifest of {manifest.get('kernel')}-{manifest.get('key')} in the folder of {entry_name} "
                    f"(moved or renamed)")
    if arch is not None and manifest.get("arch", arch) != arch:
        return f"manifest of an entry for {manifest.get('arch')} filed under {arch}"
    return ""


def entry_problem(path: Path, manifest: dict | None, arch: str | None = None) -> str:
    """Why an entry that passed verify_entry still does not belong where it is ("" when it does): its manifest's
    names (manifest_problem) and key.json's arch and kernel against the folder it is in."""
    if manifest is None:
        return "no manifest"
    arch = arch or path.parent.name
    if why := manifest_problem(manifest, path.name, arch):
        return why
    try:
        inputs = json.loads((path / KEY_JSON).read_text())
    except (OSError, ValueError):
        return "key.json missing or unreadable"
    kernel = split_entry_name(path.name)[0]
    if not isinstance(inputs, dict) or inputs.get("arch") != arch or inputs.get("kernel") != kernel:
        got = (inputs.get("kernel"), inputs.get("arch")) if isinstance(inputs, dict) else (None, None)
        return f"entry of {got[0]} for {got[1]} filed under {arch}/{path.name}"
    return ""


# ------------------------------------------------------------------------------------------------- verification
class Verdict(Record):
    """Whether an entry may be loaded (ok), why not (reason), and its manifest when it may."""
    __slots__ = ("ok", "reason", "manifest")
    _defaults = {"reason": "", "manifest": None}
    ok: bool
    reason: str
    manifest: dict | None

    def __repr__(self) -> str:
        return f"Verdict(ok={self.ok!r}, reason={self.reason!r})"


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
    if why := manifest_problem(manifest, path.name):    # module_file confined to the entry
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
        write_stamp = not in_layer(path)
    if write_stamp:
        try:
            atomic_write_text(stamp, json.dumps(identity), durable=False)   # replaces a planted symlink
        except OSError:
            pass  # not writable (or full): hashed again next time
    return Verdict(True, "ok", manifest)


# ---------------------------------------------------------------------------------------- publishing, moving aside
def to_trash(path: Path) -> Path | None:
    """Rename the entry folder `path` into its root's trash slot (Layout.trash_slot) and return where it went: one
    rename, so a concurrent loader sees the entry whole or not at all. None when it is already gone; OSError
    otherwise. `cache clear` / `prune` then delete it, move_aside keeps it for inspection."""
    dest = Layout.of_entry(path).trash_slot(path.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    return dest


def move_aside(path: Path, reason: str, then: str = "rebuilding") -> Path | None:
    """Move a bad entry into its root's trash so it is never loaded again and can be inspected."""
    try:
        dest = to_trash(path)
    except OSError as e:
        log.warning("hkjit: cache entry %s is bad (%s) and could not be moved aside: %s", path, reason, e)
        return None
    if dest is None:
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


# ------------------------------------------------------------------------------------------- use (for LRU pruning)
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


# --------------------------------------------------------------------------------------------------------- listing
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


# --------------------------------------------------------------------------- staging folders of builds and imports
def host_id() -> str:
    """This host's name, as staging folders, leases, manifests and records carry it."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host exists (another user's counts: it may still be building)."""
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


def clean_orphans(root: Path, prefix: str = "", max_age: float = 24 * 3600) -> list[Path]:
    """Remove the staging folders (named `prefix`...) whose builder is dead (same host) or that are older than
    max_age (any host); the builder calls it before each build, `cache clear` for every key."""
    removed: list[Path] = []
    tmp = Layout(root).staging_dir
    if not tmp.is_dir():
        return removed
    for d in tmp.iterdir():
        if d.name.startswith(prefix) and stale_temp_dir(d, max_age):
            if d.is_symlink():
                d.unlink(missing_ok=True)
            else:
                shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
