"""The cache's on-disk format: every path under a cache root, spelled once.

Other modules never join a cache path by hand: they ask ``Layout(root)`` (tests/test_layout.py fails when a module
other than this one spells one of the names below). What a file *holds* stays with its owner: cache/entry.py
(entries, verification, publish, moving aside, staging cleanup), builder.py (staging builds), cache/lock.py (locks
and leases), validation.py (validation records), tuning.py (tuning records), cache/memo.py (the memo), cache/admin.py
(listing, maintenance), cache/archive.py (export and import)::

    <root>/v1/                                      format_dir (v<CACHE_FORMAT>)
        <arch>/<kernel>-<key>/                      entry(arch, kernel, key): a published entry
            <module>.so                             the built extension module (manifest.json names it)
            key.json  build.log  manifest.json      KEY_JSON, BUILD_LOG, MANIFEST (written last)
            .verified  .last_used                   VERIFIED_STAMP, USED_STAMP
        <arch>/validated/<kernel>-<key>-<tag><device>.json   validation_record(...)
        tmp/<kernel>-<key>.<host>.<pid>.<n>/        staging(...): a build or an import in progress
        trash/<kernel>-<key>.<time>.<pid>.<n>/      trash_slot(...): an entry moved aside
        failed/<arch>-<kernel>-<key>.log            failed_log(...): the last failed build's log
        locks/<arch>-<kernel>-<key>.lock / .lease   locks_dir, lock_file(...), lease_file(...) (HKJIT_LOCK_DIR
                                                    or a runtime dir may replace the folder: lock.lock_dir)
        tuning/<arch>/<kernel>-<device>-<toolchain key>.json   tuning_record(...): `tune`'s winners (tuning.py)
        memo.json                                   memo: compiler versions / header hashes (cache/memo.py)

This module imports nothing of hkjit's but the format number: every other cache module imports it.
"""
from __future__ import annotations

import functools
import os
import re
import time
from itertools import count
from pathlib import Path

from ..version import CACHE_FORMAT

FORMAT_DIR = f"v{CACHE_FORMAT}"

# files of an entry
MANIFEST = "manifest.json"
KEY_JSON = "key.json"
BUILD_LOG = "build.log"
USED_STAMP = ".last_used"
VERIFIED_STAMP = ".verified"
#: the files an entry holds besides its module (none of them may be the module: entry.manifest_problem)
ENTRY_FILES = (MANIFEST, KEY_JSON, BUILD_LOG, USED_STAMP, VERIFIED_STAMP)

# folders and files of the format folder
STAGING = "tmp"
TRASH = "trash"
FAILED = "failed"
LOCKS = "locks"
TUNING = "tuning"
MEMO = "memo.json"
#: folders of <root>/v1 that are not an arch: never listed as entries, never an archive member's arch
SPECIAL_DIRS = (STAGING, TRASH, FAILED, LOCKS, TUNING)
#: the folder of validation records inside an arch folder (no "-" in it: never taken for an entry)
VALIDATED = "validated"
LOCK_SUFFIX = ".lock"
LEASE_SUFFIX = ".lease"

_counter = count()


@functools.lru_cache(maxsize=1)
def staging_re() -> re.Pattern:
    """A staging folder's name: <kernel>-<key>.<host>.<pid>.<tag> (host names may hold dots). Compiled on first
    use: a regex compile costs more than the rest of this module's import, and a warm start never needs it."""
    return re.compile(r"^.+-[0-9a-f]{32}\.(?P<host>.+)\.(?P<pid>[0-9]+)\.[^.]+$")


def entry_name(kernel: str, key: str) -> str:
    """The folder name of an entry, ``<kernel>-<key>`` (also the stem of its staging and trash names)."""
    return f"{kernel}-{key}"


def split_entry_name(name: str) -> tuple[str, str]:
    """(kernel, key) of an entry folder name (kernel names may hold "-": the key is after the last one)."""
    kernel, _, key = name.rpartition("-")
    return kernel, key


def lock_name(arch: str, kernel: str, key: str) -> str:
    """The build lock's name for one entry (builder and archive import take the same one)."""
    return f"{arch}-{kernel}-{key}"


def tuning_lock_name(arch: str, kernel: str, device_slug: str, toolchain_key: str) -> str:
    """The lock a writer of one tuning record holds while it reads, merges and replaces it (tuning.py)."""
    return f"{TUNING}-{arch}-{kernel}-{device_slug}-{toolchain_key}"


class Layout:
    """The paths of one cache root (the writable root or a read-only layer). Cheap: building one is a few
    attribute sets, so the warm path may make one per lookup."""
    __slots__ = ("root", "format_dir")

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.format_dir = self.root / FORMAT_DIR

    def __repr__(self) -> str:
        return f"Layout({str(self.root)!r})"

    @classmethod
    def of_entry(cls, entry: Path) -> "Layout":
        """The layout of the root that holds entry folder `entry` (<root>/v1/<arch>/<kernel>-<key>)."""
        return cls(Path(entry).parent.parent.parent)

    # ------------------------------------------------------------------------------------------ entries
    def arch_dir(self, arch: str) -> Path:
        return self.format_dir / arch

    def entry(self, arch: str, kernel: str, key: str) -> Path:
        return self.format_dir / arch / entry_name(kernel, key)

    def validated_dir(self, arch: str) -> Path:
        return self.format_dir / arch / VALIDATED

    def validation_record(self, arch: str, kernel: str, key: str, tag: str) -> Path:
        """The record of (kernel, key) for one device; `tag` is "[<kind>-]<device slug>" (validation.py)."""
        return self.validated_dir(arch) / f"{entry_name(kernel, key)}-{tag}.json"

    def validation_records(self, arch: str | None = None, kernel: str | None = None, key: str | None = None
                           ) -> list[Path]:
        """Every record file of `arch` (all archs when None), of `kernel` (and `key`) when given."""
        stem = "" if kernel is None else (f"{kernel}-" if key is None else f"{entry_name(kernel, key)}-")
        if not self.format_dir.is_dir():
            return []
        archs = [arch] if arch is not None else [d.name for d in sorted(self.format_dir.iterdir())
                                                 if d.name not in SPECIAL_DIRS]
        return [p for a in archs for p in sorted(self.validated_dir(a).glob(f"{stem}*.json"))]

    # ------------------------------------------------------------------------------------------ special folders
    @property
    def staging_dir(self) -> Path:
        return self.format_dir / STAGING

    def staging(self, kernel: str, key: str, host: str, tag: str) -> Path:
        """A fresh staging folder name for a build (tag: a counter) or an import (tag: "imp<n>") of this process."""
        return self.staging_dir / f"{entry_name(kernel, key)}.{host}.{os.getpid()}.{tag}"

    @property
    def trash_dir(self) -> Path:
        return self.format_dir / TRASH

    def trash_slot(self, name: str) -> Path:
        """A fresh name in the trash for entry folder `name`: <name>.<unix time>.<pid>.<n>, unique in this process."""
        return self.trash_dir / f"{name}.{int(time.time())}.{os.getpid()}.{next(_counter)}"

    @property
    def failed_dir(self) -> Path:
        return self.format_dir / FAILED

    def failed_log(self, arch: str, kernel: str, key: str) -> Path:
        """Where the log of the last failed build of (arch, kernel, key) is kept (`cache clear --arch` matches
        the arch prefix)."""
        return self.failed_dir / f"{lock_name(arch, kernel, key)}.log"

    @property
    def locks_dir(self) -> Path:
        """The default lock folder (lock.lock_dir may put locks elsewhere)."""
        return self.format_dir / LOCKS

    @property
    def tuning_dir(self) -> Path:
        return self.format_dir / TUNING

    def tuning_record(self, arch: str, kernel: str, device_slug: str, toolchain_key: str) -> Path:
        """The tuning record of `kernel` on one device (a file-name-safe slug) with one toolchain (tuning.py)."""
        return self.tuning_dir / arch / f"{kernel}-{device_slug}-{toolchain_key}.json"

    @property
    def memo(self) -> Path:
        return self.format_dir / MEMO

    def special_dirs(self) -> list[Path]:
        return [self.format_dir / name for name in SPECIAL_DIRS]


def lock_file(lock_dir: Path, name: str) -> Path:
    return lock_dir / f"{name}{LOCK_SUFFIX}"


def lease_file(lock_dir: Path, name: str) -> Path:
    return lock_dir / f"{name}{LEASE_SUFFIX}"
