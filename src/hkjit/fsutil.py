"""File-system primitives: crash-safe writes (everything hkjit publishes goes through write-temp, fsync, rename),
reads that refuse symlinks, chunked file hashing, and the probes (free space, writability, filesystem type) that
the cache, its locks and doctor share.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: below this much free space a failed build is reported as a full disk (its log could not even be written)
LOW_SPACE_BYTES = 1 << 20


if TYPE_CHECKING:            # annotations only: a Protocol class would be built on every warm start
    from typing import Protocol

    class Hasher(Protocol):
        """What hash_stream needs of a hash object (hashlib's and xxhash's have both)."""
        def update(self, data: bytes, /) -> object: ...
        def hexdigest(self) -> str: ...


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


def nearest_existing(path: Path) -> Path:
    """`path` made absolute, or its nearest existing parent: what a probe can examine for a folder that would be
    created (a cache root that does not exist yet)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_space(path: Path) -> int | None:
    """Bytes free for this user on the filesystem that holds (or would hold) `path`; None where unknown."""
    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return None


def out_of_space(path: Path, need: int = LOW_SPACE_BYTES) -> bool:
    """Whether the filesystem holding `path` has less than `need` bytes free for this user."""
    free = free_space(path)
    return free is not None and free < need


def writable(path: Path) -> bool:
    """Whether a file can be created under `path` (or under its nearest existing parent, which would be created).
    The probe is a fresh O_EXCL file (mkstemp), never a fixed name: a symlink planted there is not written through."""
    p = nearest_existing(path)
    if not p.is_dir():
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=".hkjit-probe.", dir=p)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def filesystem_type(path: Path) -> str:
    """fstype of the mount holding `path` (from /proc/mounts; '' where unknown)."""
    real = os.path.realpath(nearest_existing(path))
    best, fstype = "", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    mnt = parts[1].replace("\\040", " ")
                    if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                        best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype


def hash_stream(f: BinaryIO, h: Hasher) -> str:
    """The hex digest of what is left in the open binary file `f`, fed to `h` (a hashlib or xxhash object) in 1 MiB
    chunks: a module or an archive is never read into memory whole."""
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def hash_file(path: Path, h: Hasher) -> str:
    """The hex digest of the file at `path` (hash_stream)."""
    with open(path, "rb") as f:
        return hash_stream(f, h)


def file_xxh3(path: Path) -> str:
    """xxh3-128 (hex) of the file at `path`: a manifest's module checksum, a kernel source's content hash."""
    import xxhash   # only when something must be hashed: a warm hit hashes nothing (stamps, the memo)
    return hash_file(path, xxhash.xxh3_128())


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
