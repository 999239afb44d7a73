"""Cross-process build locks with leases, so waiters can say whom they wait for.

One ``filelock`` lock per cache entry (flock: the OS releases it when the holder dies, so a crashed builder
never leaves a lock behind — the failure torch's FileBaton is known for). Beside it a *lease* file records the
holder's pid, host and start time. Waiters log the holder every few seconds and give up after
HKJIT_LOCK_TIMEOUT seconds with an error naming the holder and the lock path.

Where locks live: HKJIT_LOCK_DIR if set; else, when the cache root is on a network filesystem (NFS, Lustre,
CIFS, ...: flock there is unreliable), a local runtime dir (``platformdirs.user_runtime_dir("hkjit")``) — one
node's processes then still build once; else ``<root>/v1/locks``.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import time
import warnings
from pathlib import Path

import filelock
import platformdirs
import xxhash

from ..config import env_str, lock_timeout
from ..errors import CacheError, LockTimeoutError
from ..fsutil import atomic_write_text, filesystem_type, out_of_space
from .entry import host_id
from .layout import Layout, lease_file, lock_file
from .trust import TRUST_VAR, dir_problem

log = logging.getLogger("hkjit")

#: filesystems whose flock is unreliable (fsutil.filesystem_type names them): locks go to a local folder instead
NETWORK_FS = {"nfs", "nfs4", "lustre", "cifs", "smb3", "smbfs", "gpfs", "beegfs", "fuse.sshfs", "9p", "ceph",
              "fuse.glusterfs", "afs", "orangefs", "panfs", "wekafs", "fuse.juicefs"}
POLL_SECONDS = 5.0


def lock_dir(root: Path) -> Path:
    """The folder of root's build locks: HKJIT_LOCK_DIR, a local runtime folder (root on a network filesystem), or
    Layout.locks_dir."""
    explicit = env_str("HKJIT_LOCK_DIR")
    if explicit:
        return Path(explicit)
    if filesystem_type(root) in NETWORK_FS:
        with warnings.catch_warnings():      # no XDG_RUNTIME_DIR: platformdirs falls back to /tmp/runtime-<uid>
            warnings.simplefilter("ignore")
            runtime = platformdirs.user_runtime_dir("hkjit")
        return Path(runtime) / f"locks-{xxhash.xxh3_64_hexdigest(str(root).encode())}"
    return Layout(root).locks_dir


def read_lease(lease: Path) -> dict:
    try:
        return json.loads(lease.read_text())
    except (OSError, ValueError):
        return {}


def describe_holder(info: dict) -> str:
    if not info:
        return "an unknown process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid')} on {info.get('host')} (since {since})"


def prepare_lock_dir(root: Path) -> Path:
    """Create the lock folder (0700 in the runtime dir) and refuse one that is a symlink, another user's, or
    writable by others: whoever can write there can plant a symlink where a lock or lease is opened."""
    d = lock_dir(root)
    try:
        if not env_str("HKJIT_LOCK_DIR") and d != Layout(root).locks_dir:   # the runtime dir: ours only
            missing = [p for p in [d, *d.parents] if not p.exists()]
            for p in reversed(missing):          # every folder we create there: 0700 (mkdir's mode obeys umask)
                p.mkdir(mode=0o700, exist_ok=True)
        else:
            d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(f"cannot create the lock folder {d} ({e.strerror}): set HKJIT_LOCK_DIR to a local folder "
                         f"you own") from None
    if (why := dir_problem(d)) is not None:
        raise CacheError(f"refusing the lock folder {d}: {why}; another user could plant a symlink where a lock is "
                         f"opened. Set HKJIT_LOCK_DIR to a folder only you can write, or add it to {TRUST_VAR}")
    return d


class BuildLock:
    """``with BuildLock(root, name): ...`` — exclusive, cross-process, logged while waiting, bounded by a timeout."""

    def __init__(self, root: Path, name: str, timeout: float | None = None, what: str = "") -> None:
        d = prepare_lock_dir(root)
        self.path = lock_file(d, name)
        self.lease = lease_file(d, name)
        self.timeout = lock_timeout() if timeout is None else timeout
        self.what = what or f"with the lock {name}"
        self._lock = filelock.FileLock(str(self.path), thread_local=False)

    def __enter__(self) -> "BuildLock":
        start = time.monotonic()
        deadline = start + self.timeout
        poll = min(POLL_SECONDS, max(0.5, self.timeout / 4))
        while True:
            try:
                self._lock.acquire(timeout=min(poll, max(0.0, deadline - time.monotonic())))
                break
            except filelock.Timeout:
                holder = describe_holder(read_lease(self.lease))
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"gave up after {self.timeout:.0f} s waiting for {holder} to finish {self.what} "
                        f"(lock {self.path}); raise HKJIT_LOCK_TIMEOUT, or end that process if it hangs") from None
                log.info("hkjit: waiting for %s to finish %s (%.0f s so far; lock %s)",
                         holder, self.what, time.monotonic() - start, self.path)
            except OSError as e:     # filelock opens with O_NOFOLLOW: a planted symlink gives ELOOP, never truncation
                link = " (a symlink: never followed)" if os.path.islink(self.path) else ""
                raise CacheError(f"cannot open the build lock {self.path}{link}: {e.strerror}; remove it, or set "
                                 f"HKJIT_LOCK_DIR to a folder only you can write") from None
        try:
            atomic_write_text(self.lease, json.dumps({"pid": os.getpid(), "host": host_id(), "started": time.time(),
                                                      "what": self.what}))
        except OSError as e:        # nothing half-written: atomic_write removed its temp file
            self._lock.release()
            full = e.errno == errno.ENOSPC or out_of_space(self.lease.parent)
            raise CacheError(f"cannot write the build lease {self.lease} ({e.strerror})"
                             + (": the disk is full; free space there or set HKJIT_LOCK_DIR / HKJIT_CACHE_DIR to a "
                                "filesystem with room (`python -m hkjit cache prune --max-size ...`)" if full else
                                ": set HKJIT_LOCK_DIR to a local writable folder")) from None
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.lease.unlink()
        except OSError:
            pass
        self._lock.release()
