"""Crash-safe file-system primitives: everything hkjit publishes goes through write-temp, fsync, rename."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: below this much free space a failed build is reported as a full disk (its log could not even be written)
LOW_SPACE_BYTES = 1 << 20


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under root (before the rename that publishes it)."""
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Readers see the old file or the whole new one, never a part.

    The temp file is created with O_EXCL (mkstemp) and renamed over `path`: a symlink planted at `path` is replaced,
    never written through. durable=False skips the fsyncs (stamps that are only a shortcut, rewritten if lost)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)              # shared caches: readable by every user, like the module itself
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), durable)


def read_nofollow(path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of `path` and its stat, refusing a symlink (OSError ELOOP) in the same open that reads it."""
    fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    try:
        st = os.fstat(fd)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def touch_nofollow(path: Path) -> None:
    """Create `path` or set its mtime to now, never through a symlink (OSError ELOOP instead)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | NOFOLLOW, 0o644)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def out_of_space(path: Path, need: int = LOW_SPACE_BYTES) -> bool:
    """Whether the filesystem holding `path` has less than `need` bytes free for this user."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free < need
    except OSError:
        return False


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
