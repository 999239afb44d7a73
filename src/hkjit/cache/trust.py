"""Whether hkjit may load code from (or write into) a cache folder: nobody but this user or root can have put it there.

hkjit dlopens the module files it finds in its cache, so a cache that another user can write is a way to run that
user's code in this process. The rules follow pip (a cache it does not own is not used), git's safe.directory and
ssh's StrictModes:

- a **cache root or layer** (the folder in HKJIT_CACHE_DIR or HKJIT_CACHE_PATH) and every folder above it must be
  owned by this user or root, and writable by nobody else, except that a sticky folder (``/tmp``) may be
  world-writable: others cannot rename or remove what is ours there;
- its ``v1/`` folder, every entry folder, and the lock folder must be owned by this user or root and writable by
  nobody else (sticky does not help: whoever can write there can plant files);
- an entry's module, manifest and key.json must be regular files (never symlinks), owned by this user or root and
  writable by nobody else.

"Writable by nobody else" allows group write where the group is the owner's private group (Debian and Ubuntu give
each user one, and a umask of 002), as Debian's ssh does. Folders at or under a path listed in
``HKJIT_TRUSTED_CACHE_DIRS`` (os.pathsep-separated) are trusted as they are, whoever owns them: a team's shared
cache is trusted by saying so. Symlinked entry files are refused even there.

Checks of a root or layer are memoized per process (a few stat calls on the first lookup; a warm hit pays nothing).
"""
from __future__ import annotations

import functools
import logging
import os
import stat
from pathlib import Path

from ..config import env_str
from ..errors import CacheError
from .layout import Layout

log = logging.getLogger("hkjit")
TRUST_VAR = "HKJIT_TRUSTED_CACHE_DIRS"
_warned: set[str] = set()


def trusted_uids() -> tuple[int, int]:
    return os.geteuid(), 0


@functools.lru_cache(maxsize=8)
def _trusted_prefixes(raw: str) -> tuple[str, ...]:
    out = []
    for p in raw.split(os.pathsep):
        if p.strip():
            p = os.path.abspath(os.path.expanduser(p.strip()))
            out += [p, os.path.realpath(p)]
    return tuple(dict.fromkeys(out))


def explicitly_trusted(path: Path | str) -> bool:
    """Whether path is at or under a folder listed in HKJIT_TRUSTED_CACHE_DIRS."""
    prefixes = _trusted_prefixes(env_str(TRUST_VAR))
    if not prefixes:
        return False
    p = os.path.abspath(path)
    for cand in (p, os.path.realpath(p)):
        for t in prefixes:
            if cand == t or cand.startswith(t.rstrip(os.sep) + os.sep):
                return True
    return False


@functools.lru_cache(maxsize=64)
def _private_group(gid: int, uid: int) -> bool:
    """Whether gid is uid's own group (named after the user, its primary group, no other member)."""
    import grp
    import pwd
    try:
        g, pw = grp.getgrgid(gid), pwd.getpwuid(uid)
    except KeyError:
        return False
    return g.gr_name == pw.pw_name and pw.pw_gid == gid and set(g.gr_mem) <= {pw.pw_name}


def _describe(st: os.stat_result) -> str:
    return f"owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}"


def mode_problem(st: os.stat_result, what: str, path: Path | str, sticky_ok: bool = False) -> str | None:
    """Why a folder or file with this stat may not be trusted (None: it may): its owner or who can write it."""
    if st.st_uid not in trusted_uids():
        return f"{what} {path} is owned by another user ({_describe(st)})"
    if sticky_ok and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return None
    if st.st_mode & stat.S_IWOTH:
        return f"{what} {path} is writable by every user ({_describe(st)})"
    if st.st_mode & stat.S_IWGRP and not _private_group(st.st_gid, st.st_uid):
        return f"{what} {path} is writable by group {st.st_gid} ({_describe(st)})"
    return None


def _ancestors(path: Path) -> list[str]:
    """The existing folders above path, for its absolute and its resolved spelling (symlinked parents)."""
    out: dict[str, None] = {}
    for start in (os.path.abspath(path), os.path.realpath(path)):
        p = os.path.dirname(start)
        while True:
            out[p] = None
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
    return list(out)


def _ancestor_problem(path: Path) -> str | None:
    """Why a folder above `path` lets another user replace what is below it (a sticky folder such as /tmp does
    not), or None."""
    for d in _ancestors(path):
        try:
            st = os.stat(d)
        except OSError:
            continue
        if (why := mode_problem(st, "folder", d, sticky_ok=True)) is not None:
            return why
    return None


def root_problem(root: Path) -> str | None:
    """Why the cache root or layer at `root` may not be trusted, or None. Not memoized (see check_root)."""
    if explicitly_trusted(root):
        return None
    if (why := _ancestor_problem(root)) is not None:
        return why
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return None                   # created by this process, with its umask
    except OSError as e:
        return f"cache folder {root} cannot be examined ({e.strerror})"
    if (why := mode_problem(st, "cache folder", root, sticky_ok=True)) is not None:
        return why
    fmt = Layout(root).format_dir
    try:
        st = os.lstat(fmt)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{fmt} cannot be examined ({e.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return f"{fmt} is not a folder (a symlink or file: {_describe(st)})"
    return mode_problem(st, "cache folder", fmt)


@functools.lru_cache(maxsize=64)
def _root_verdict(root: str, trusted_env: str) -> str | None:
    return root_problem(Path(root))


def fix_hint(path: Path | str) -> str:
    return (f"make it yours and writable only by you (chown -R $USER {path}; chmod -R go-w {path}), point the "
            f"variable elsewhere, or, if every user who can write there is trusted, add it to {TRUST_VAR}")


def check_root(root: Path) -> None:
    """Raise CacheError (naming the path, what was found and the fix) unless the writable root may be used."""
    why = _root_verdict(str(root), env_str(TRUST_VAR))
    if why is not None:
        _root_verdict.cache_clear()   # fixed permissions are seen on the next call
        raise CacheError(f"refusing the hkjit cache HKJIT_CACHE_DIR={root}: {why}, so another user could replace "
                         f"the modules hkjit loads. Fix: {fix_hint(root)}")


def recheck_root(root: Path) -> None:
    """check_root without the memo (after this process created folders another user could have raced for)."""
    _root_verdict.cache_clear()
    check_root(root)


def trusted_layers(layers: list[Path]) -> list[Path]:
    """The read-only layers that may be used; each one skipped is named in one warning per process."""
    out = []
    env = env_str(TRUST_VAR)
    for layer in layers:
        why = _root_verdict(str(layer), env)
        if why is None:
            out.append(layer)
        elif str(layer) not in _warned:
            _warned.add(str(layer))
            log.warning("hkjit: skipping the read-only cache layer %s (HKJIT_CACHE_PATH): %s, so another user could "
                        "replace its modules. Fix: %s", layer, why, fix_hint(layer))
    return out


def entry_file_problem(path: Path, st: os.stat_result, what: str, explicit: bool) -> str | None:
    """Why an entry's file or folder (lstat result st) may not be loaded: a symlink, or another user's."""
    want = stat.S_ISDIR if what == "entry folder" else stat.S_ISREG
    if not want(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular " + ("folder" if want is stat.S_ISDIR
                                                                               else "file")
        return f"{what} {path.name} is {kind}"
    if explicit:
        return None
    return mode_problem(st, what, path.name)


def dir_problem(path: Path) -> str | None:
    """Why a folder hkjit writes into (locks) may not be used: a symlink, another user's, or writable by others."""
    if explicitly_trusted(path):
        return None
    if (why := _ancestor_problem(path)) is not None:
        return why
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"{path} cannot be examined ({e.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder (a symlink or file: {_describe(st)})"
    return mode_problem(st, "folder", path)


def trust_report(path: Path) -> dict:
    """For doctor: whether path is trusted, why not, and whether HKJIT_TRUSTED_CACHE_DIRS says so."""
    why = root_problem(path)
    return {"trusted": why is None, "reason": why or "", "explicit": explicitly_trusted(path)}


def search_roots(root: Path) -> list[Path]:
    """root, then the trusted read-only layers: CacheError for an untrusted root, one warning per skipped layer."""
    from .roots import cache_layers
    check_root(root)
    return [root] + trusted_layers([p for p in cache_layers() if p != root])
