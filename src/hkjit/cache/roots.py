"""Where the caches are: one writable root, then the read-only layers, and whether the root can take a build.

The writable root is HKJIT_CACHE_DIR, else the platform's user cache folder (~/.cache/hkjit); the layers come from
HKJIT_CACHE_PATH (os.pathsep-separated, e.g. a cache pre-baked in CI) and are searched after the root. hkjit writes
only into the root: builds, imports, stamps and every removal. Whether a root or a layer may be used at all
(who can have written it) is trust.py's question.

cache_root() is on every call's path: it is memoized per value of HKJIT_CACHE_DIR and never imports platformdirs
on Linux.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path

from ..config import env_paths, env_raw, env_set, env_str
from ..errors import CacheError
from .layout import Layout
from .trust import check_root, recheck_root


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


def all_roots(root: Path | None = None, layers: list[Path] | None = None) -> list[tuple[Path, bool]]:
    """(path, writable?) of the writable root followed by the read-only layers (the root once, if also a layer)."""
    root = root or cache_root()
    layers = cache_layers() if layers is None else layers
    return [(root, True)] + [(p, False) for p in layers if p != root]


def in_layer(entry: Path) -> bool:
    """Whether entry folder `entry` lives in a read-only layer (HKJIT_CACHE_PATH), where hkjit never writes."""
    root = Layout.of_entry(entry).root
    return any(root == layer for layer in cache_layers())


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
