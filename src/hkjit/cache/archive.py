"""Cache archives: ``export`` writes chosen valid entries to one tar file, ``import_archive`` unpacks one into the
writable root, checking everything an untrusted file can get wrong.

An archive is a tar file (gzip-compressed when the name ends in .gz or .tgz)::

    hkjit-archive.json                      {"format": CACHE_FORMAT, "hkjit_version": ..., "entries": [...]}
    v1/<arch>/<kernel>-<key>/<file>         the entry's files (flat), as published (no .last_used stamp)

``import_archive`` refuses an archive of another cache format, a malformed listing, one over the size limits
(ImportLimits: checked from the tar headers before any data is read, the decompressed stream capped by _Capped), any
member that is not a regular file or folder of that shape (absolute paths, ``..``, links, devices, unknown names),
and every entry that fails ``entry.verify_entry`` or ``entry.entry_problem`` after unpacking; each good entry is
streamed into ``v1/tmp`` and published (entry.publish) under its build lock. An archive is code (its modules get
imported): verification proves an entry whole and confined to its folder, not who made it; ``expect_sha256`` pins
the archive file itself.

Only `cache export` / `cache import` import this module (tarfile and the decompressors stay off a call's path).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import env_size, human_size
from ..errors import ArchiveError, CacheError
from ..fsutil import free_space, hash_file, hash_stream
from ..version import CACHE_FORMAT, __version__
from .admin import EntryInfo, list_entries
from .entry import entry_problem, host_id, publish, verify_entry
from .layout import FORMAT_DIR, SPECIAL_DIRS, USED_STAMP, Layout, entry_name, lock_name, split_entry_name
from .lock import BuildLock
from .roots import cache_root
from .trust import check_root

ARCHIVE_JSON = "hkjit-archive.json"
_ENTRY_RE = re.compile(r"^[A-Za-z0-9_.]+-[0-9a-f]{32}$")
_ARCH_RE = re.compile(r"^[A-Za-z0-9_]+$")
_FILE_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_counter = count()


# --------------------------------------------------------------------------------------------------- export
@dataclass
class ExportResult:
    path: str
    entries: list[EntryInfo]
    skipped: list[tuple[str, str]]      # (entry path, why) of bad entries left out
    size: int
    sha256: str = ""                    # of the archive file: `cache import --expect-sha256` pins it

    def to_json(self) -> dict:
        return {"path": self.path, "entries": [e.to_json() for e in self.entries],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped], "size": self.size,
                "sha256": self.sha256}


def _member_dir(arch: str, kernel: str, key: str) -> str:
    """An entry's folder inside an archive: its path under a cache root (v1/<arch>/<kernel>-<key>)."""
    return Layout(".").entry(arch, kernel, key).as_posix()


def _tar_mode(path: str, mode: str) -> str:
    gz = path.endswith((".gz", ".tgz"))
    return f"{mode}:gz" if gz else f"{mode}:"


def export(dest: Path, root: Path | None = None, layers: list[Path] | None = None, arch: list[str] | None = None,
           kernel: list[str] | None = None) -> ExportResult:
    """Write the chosen valid entries (root first, then layers; one per (arch, kernel, key)) to one archive."""
    chosen: dict[tuple[str, str, str], EntryInfo] = {}
    skipped = []
    for e in list_entries(root, layers):
        if (arch and e.arch not in arch) or (kernel and e.kernel not in kernel):
            continue
        if (e.arch, e.kernel, e.key) in chosen:
            continue
        v = verify_entry(Path(e.path))
        reason = v.reason if not v.ok else entry_problem(Path(e.path), v.manifest)
        if reason:
            skipped.append((e.path, reason))
            continue
        chosen[(e.arch, e.kernel, e.key)] = e
    entries = list(chosen.values())
    dest = Path(dest)
    if not entries:                     # no empty archive left behind to be shipped by mistake
        return ExportResult(str(dest), [], skipped, 0)
    members = []
    for e in entries:
        files = sorted(p.name for p in Path(e.path).iterdir() if p.is_file() and p.name != USED_STAMP)
        members.append((e, files))
    meta = {"format": CACHE_FORMAT, "hkjit_version": __version__, "created": time.time(), "host": host_id(),
            "entries": [{"arch": e.arch, "kernel": e.kernel, "key": e.key, "files": files,
                         "dir": _member_dir(e.arch, e.kernel, e.key)} for e, files in members]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, _tar_mode(dest.name, "w"), format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            data = json.dumps(meta, indent=1).encode()
            info = tarfile.TarInfo(ARCHIVE_JSON)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
            for e, files in members:
                for f in files:
                    src = Path(e.path) / f
                    ti = tar.gettarinfo(str(src), arcname=f"{_member_dir(e.arch, e.kernel, e.key)}/{f}")
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    with open(src, "rb") as fh:
                        tar.addfile(ti, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportResult(str(dest), entries, skipped, dest.stat().st_size, hash_file(dest, hashlib.sha256()))


# --------------------------------------------------------------------------------------------------- import
@dataclass
class ImportResult:
    imported: list[str] = field(default_factory=list)     # "<arch>/<kernel>-<key>"
    skipped: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    sha256: str = ""                                        # of the archive file (what --expect-sha256 pins)

    @property
    def ok(self) -> bool:
        return not self.refused

    def to_json(self) -> dict:
        return {"imported": self.imported, "skipped": [{"entry": n, "reason": r} for n, r in self.skipped],
                "refused": [{"entry": n, "reason": r} for n, r in self.refused], "ok": self.ok,
                "sha256": self.sha256}


def _classify(member: tarfile.TarInfo) -> tuple[str, Any]:
    """("meta"|"dir", None), ("file", (arch, entry folder, file name)), ("unsafe", why) or ("foreign", why)."""
    name = member.name
    p = PurePosixPath(name)
    if name.startswith("/") or p.is_absolute() or ".." in p.parts or "\\" in name:
        return "unsafe", f"unsafe path {name!r}"
    if not (member.isfile() or member.isdir()):
        return "unsafe", f"{name!r} is not a regular file or folder (link or device)"
    parts = [x for x in p.parts if x != "."]
    if parts == [ARCHIVE_JSON] and member.isfile():
        return "meta", None
    if member.isdir() and len(parts) <= 3 and (not parts or parts[0] == FORMAT_DIR):
        return "dir", None
    if (len(parts) == 4 and member.isfile() and parts[0] == FORMAT_DIR and _ARCH_RE.match(parts[1])
            and parts[1] not in SPECIAL_DIRS and _ENTRY_RE.match(parts[2]) and _FILE_RE.match(parts[3])
            and parts[3] != USED_STAMP):
        return "file", (parts[1], parts[2], parts[3])
    return "foreign", f"foreign member {name!r} (not an hkjit cache entry file)"


#: Import bounds (bytes): an archive is refused before anything is written if its files add up to more than
#: HKJIT_IMPORT_MAX_BYTES or one file is larger than HKJIT_IMPORT_MAX_MEMBER_BYTES. A real entry is a few MiB
#: (the CPU module ~0.3 MiB, a GPU module a few MiB): the defaults leave two orders of magnitude of room.
IMPORT_MAX_BYTES = 2 << 30
IMPORT_MAX_MEMBER_BYTES = 512 << 20
MAX_MEMBERS = 10_000              # tar members (3-4 per entry); their headers are held in memory
MAX_LISTING_BYTES = 16 << 20      # hkjit-archive.json, read into memory
_MAX_READ = 64 << 20              # one read of the tar stream: larger means an oversized tar header (PAX, long name)


@dataclass(frozen=True)
class ImportLimits:
    max_bytes: int = IMPORT_MAX_BYTES
    max_member_bytes: int = IMPORT_MAX_MEMBER_BYTES

    @classmethod
    def from_env(cls) -> "ImportLimits":
        """HKJIT_IMPORT_MAX_BYTES / HKJIT_IMPORT_MAX_MEMBER_BYTES (bytes or 500M, 4G, ...), else the defaults."""
        return cls(env_size("HKJIT_IMPORT_MAX_BYTES", IMPORT_MAX_BYTES),
                   env_size("HKJIT_IMPORT_MAX_MEMBER_BYTES", IMPORT_MAX_MEMBER_BYTES))


class _Capped(io.RawIOBase):
    """A read-only view of the (decompressed) tar stream that refuses to go past `limit` bytes or to serve one
    oversized read: a small compressed archive can expand to any size, and tarfile reads whole headers."""

    def __init__(self, f, limit: int, src: Path) -> None:
        super().__init__()
        self.f, self.limit, self.src = f, limit, src

    def _refuse(self) -> None:
        raise ArchiveError(f"{self.src} unpacks to more than {human_size(self.limit)} of tar data (a compression "
                           f"bomb, or an archive beyond HKJIT_IMPORT_MAX_BYTES): refused, nothing more imported")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > _MAX_READ:
            if n is not None and n > _MAX_READ:
                raise ArchiveError(f"{self.src}: a tar header of {human_size(n)} (no hkjit archive has one over "
                                   f"{human_size(_MAX_READ)}): refused")
            n = _MAX_READ
        if self.f.tell() + n > self.limit:
            n = max(self.limit - self.f.tell(), 0) + 1
        data = self.f.read(n)
        if self.f.tell() > self.limit:
            self._refuse()
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else (self.f.tell() + offset if whence == 1 else None)
        if target is not None and target > self.limit:
            self._refuse()
        pos = self.f.seek(offset, whence)
        if pos > self.limit:
            self._refuse()
        return pos

    def tell(self) -> int:
        return self.f.tell()


def _decompressed(raw, src: Path):
    """The tar stream inside `raw` (gzip, bzip2, xz or plain, told by the magic bytes, not the name)."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        import gzip
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        import bz2
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


_READ_ERRORS = (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


def _not_tar(src: Path, e: BaseException) -> ArchiveError:
    why = e.strerror if isinstance(e, OSError) and e.strerror else "not a tar, tar.gz, tar.bz2 or tar.xz file"
    return ArchiveError(f"{src} is not a readable tar archive ({why}); make one with "
                        f"`python -m hkjit cache export FILE`")


def _check_listing(meta: object, src: Path) -> None:
    """Refuse (ArchiveError, before anything is written) a hkjit-archive.json not of the shape export() writes."""
    def bad(where: str, value: object, expected: str) -> ArchiveError:
        return ArchiveError(f"{src}: {ARCHIVE_JSON} is malformed: {where} is {value!r}, expected {expected}. The "
                            f"archive was edited or not written by `python -m hkjit cache export`: export it again "
                            f"from the cache it came from. Nothing was imported.")
    if not isinstance(meta, dict):
        raise bad("the listing", type(meta).__name__, "a JSON object")
    entries = meta.get("entries")
    if not isinstance(entries, list):
        raise bad("entries", entries, "a list of entries")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise bad(f"entries[{i}]", e, "an object {arch, kernel, key, files}")
        for name, pattern in (("arch", _ARCH_RE), ("kernel", re.compile(r"^[A-Za-z0-9_.]+$")),
                              ("key", re.compile(r"^[0-9a-f]{32}$"))):
            if not isinstance(e.get(name), str) or not pattern.match(e[name]):
                raise bad(f"entries[{i}].{name}", e.get(name), f"a{'n' if name == 'arch' else ''} {name} name"
                          if name != "key" else "32 hex digits")
        files = e.get("files")
        if not isinstance(files, list) or not all(isinstance(f, str) and _FILE_RE.match(f) for f in files):
            raise bad(f"entries[{i}].files", files, "a list of file names")


def _read_archive(src: Path, stack: contextlib.ExitStack, limits: ImportLimits,
                  expect_sha256: str | None) -> tuple[tarfile.TarFile, dict, list[tarfile.TarInfo], str]:
    """(open tar, listing, members, the archive file's sha256): every check that needs no unpacking."""
    if not src.is_file():
        raise ArchiveError(f"{src}: no such file")
    try:
        raw = stack.enter_context(open(src, "rb"))
    except OSError as e:
        raise _not_tar(src, e) from None
    sha256 = hash_stream(raw, hashlib.sha256())      # of the open file that is then read: no swap in between
    if expect_sha256 is not None:
        want = expect_sha256.strip().lower().removeprefix("sha256:")
        if want != sha256:
            raise ArchiveError(f"{src} has sha256 {sha256}, not the expected {want}: not the archive you pinned "
                               f"(replaced or corrupted in transit); nothing was imported")
    raw.seek(0)
    slack = MAX_MEMBERS * 3 * 512 + MAX_LISTING_BYTES      # headers and padding around the files' bytes
    try:
        stream = _Capped(_decompressed(raw, src), limits.max_bytes + slack, src)
        tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r:"))
        members: list[tarfile.TarInfo] = []
        total = 0
        while (m := tar.next()) is not None:       # headers one by one: sizes are checked before data is skipped
            members.append(m)
            if len(members) > MAX_MEMBERS:
                raise ArchiveError(f"{src} has more than {MAX_MEMBERS} members (an hkjit entry has 3 or 4): refused, "
                                   f"nothing imported")
            if m.isfile():
                if m.size > limits.max_member_bytes:
                    raise ArchiveError(f"{src}: member {m.name!r} is {human_size(m.size)}, over the "
                                       f"{human_size(limits.max_member_bytes)} allowed per file "
                                       f"(HKJIT_IMPORT_MAX_MEMBER_BYTES): refused, nothing imported")
                total += m.size
                if total > limits.max_bytes:
                    raise ArchiveError(f"{src} unpacks to more than {human_size(limits.max_bytes)} "
                                       f"(HKJIT_IMPORT_MAX_BYTES): refused, nothing imported")
    except ArchiveError:
        raise
    except _READ_ERRORS as e:
        raise _not_tar(src, e) from None
    meta_member = next((m for m in members if m.name.lstrip("./") == ARCHIVE_JSON and m.isfile()), None)
    if meta_member is None:
        raise ArchiveError(f"{src} is not an hkjit cache archive (no {ARCHIVE_JSON}); make one with "
                           f"`python -m hkjit cache export FILE`")
    if meta_member.size > MAX_LISTING_BYTES:
        raise ArchiveError(f"{src}: {ARCHIVE_JSON} is {human_size(meta_member.size)}, no listing is over "
                           f"{human_size(MAX_LISTING_BYTES)}: refused, nothing imported")
    try:
        meta = json.loads(tar.extractfile(meta_member).read())  # type: ignore[union-attr]  # a regular file member
    except ArchiveError:
        raise
    except (ValueError, AttributeError, *_READ_ERRORS) as e:
        raise ArchiveError(f"{src}: unreadable {ARCHIVE_JSON} ({e})") from None
    if isinstance(meta, dict) and meta.get("format") != CACHE_FORMAT:
        raise ArchiveError(f"{src} holds cache format {meta.get('format')} (written by hkjit "
                           f"{meta.get('hkjit_version', '?')}); this hkjit {__version__} uses cache format "
                           f"{CACHE_FORMAT}: export it again with a matching hkjit, or build with "
                           f"`python -m hkjit warmup`")
    _check_listing(meta, src)
    return tar, meta, members, sha256


def _unpack_file(tar: tarfile.TarFile, m: tarfile.TarInfo, dest: Path, src: Path, root: Path) -> None:
    """Stream one member to dest: reads fail as ArchiveError (the archive), writes as CacheError (the cache)."""
    try:
        data = tar.extractfile(m)
        if data is None:                # _classify let only regular files through
            raise ArchiveError(f"{src}: {m.name} is not a regular file")
    except ArchiveError:
        raise
    except _READ_ERRORS as e:
        raise ArchiveError(f"{src}: cannot read member {m.name!r} ({e}); the archive is damaged") from None
    with open(dest, "wb") as fh:
        left = m.size
        while left > 0:
            try:
                chunk = data.read(min(left, 1 << 20))
            except ArchiveError:
                raise
            except _READ_ERRORS as e:
                raise ArchiveError(f"{src}: cannot read member {m.name!r} ({e}); the archive is damaged") from None
            if not chunk:
                raise ArchiveError(f"{src}: member {m.name!r} is truncated; the archive is damaged")
            try:
                fh.write(chunk)
            except OSError as e:
                raise _write_error(root, e) from None
            left -= len(chunk)
    os.chmod(dest, 0o755 if m.mode & 0o111 else 0o644)


def _write_error(root: Path, e: OSError) -> CacheError:
    if e.errno == errno.ENOSPC:
        return CacheError(f"disk full while importing into {root}: free space, or import into another cache with "
                          f"--cache-dir / HKJIT_CACHE_DIR (the entry being unpacked was removed)")
    return CacheError(f"cannot write to {root}: {e}. Set HKJIT_CACHE_DIR (or --cache-dir) to a writable folder")


def import_archive(src: Path, root: Path | None = None, expect_sha256: str | None = None,
                   limits: ImportLimits | None = None) -> ImportResult:
    """Unpack an export() archive into the writable root: verified, atomic per entry, existing valid entries kept.

    An archive is code: its modules are imported into the process that uses the cache. Verification proves an
    entry is whole and self-consistent, not who made it; pin the archive you trust with expect_sha256 (the sha256
    of the archive file, as `cache export` prints it). Raises ArchiveError when the archive cannot be used at all
    (missing, not a tar, another format, malformed listing, sha256 mismatch, over the size limits) — then nothing
    is written. An archive holding unsafe members (absolute or '..' paths, links, devices) is refused whole.
    Foreign files inside an entry's folder, entries missing from the archive's list, and entries that fail
    verification are refused one by one. A full disk raises CacheError, the entry being unpacked removed."""
    root = root or cache_root()
    check_root(root)
    src = Path(src)
    limits = limits or ImportLimits.from_env()
    res = ImportResult()
    with contextlib.ExitStack() as stack:
        tar, meta, members, res.sha256 = _read_archive(src, stack, limits, expect_sha256)
        by_entry: dict[tuple[str, str], list[tuple[str, tarfile.TarInfo]]] = {}
        unsafe = []
        foreign = []
        for m in members:
            kind, what = _classify(m)
            if kind == "unsafe":
                unsafe.append(what)
            elif kind == "foreign":
                foreign.append(what)
            elif kind == "file":
                a, entry, fname = what
                by_entry.setdefault((a, entry), []).append((fname, m))
        if unsafe:
            res.refused.append((str(src), "archive refused, nothing imported: " + "; ".join(unsafe[:5])
                                + (f" (+{len(unsafe) - 5} more)" if len(unsafe) > 5 else "")))
            return res
        for why in foreign:
            res.refused.append(("-", why))
        listed = {(e["arch"], f"{e['kernel']}-{e['key']}"): set(e["files"]) for e in meta["entries"]}
        for (a, entry) in sorted(set(listed) - set(by_entry), key=str):
            res.refused.append((f"{a}/{entry}", "listed in the archive but its files are missing"))
        wanted = sum(m.size for (a, entry), files in by_entry.items() if (a, entry) in listed for _f, m in files)
        free = free_space(root)
        if free is not None and wanted > free:
            raise CacheError(f"{src} unpacks to {human_size(wanted)} and {root} has {human_size(free)} free: free "
                             f"space, or import into another cache with --cache-dir / HKJIT_CACHE_DIR (nothing "
                             f"was imported)")
        layout = Layout(root)
        for (a, entry), files in sorted(by_entry.items()):
            name = f"{a}/{entry}"
            if (a, entry) not in listed:
                res.refused.append((name, "not listed in the archive's hkjit-archive.json (foreign entry)"))
                continue
            extra = sorted({f for f, _m in files} - listed[(a, entry)])
            if extra:
                res.refused.append((name, f"holds files its listing does not name: {', '.join(extra)}"))
                continue
            kernel, key = split_entry_name(entry)
            final = layout.entry(a, kernel, key)
            if final.exists() and (v := verify_entry(final, key)).ok and not entry_problem(final, v.manifest, arch=a):
                res.skipped.append((name, "already in the cache"))
                continue
            try:
                staging = layout.staging(kernel, key, host_id(), f"imp{next(_counter)}")
                staging.parent.mkdir(parents=True, exist_ok=True)
                staging.mkdir()
            except OSError as e:
                raise _write_error(root, e) from None
            try:
                inner = staging / entry_name(kernel, key)
                inner.mkdir()
                for fname, m in files:
                    _unpack_file(tar, m, inner / fname, src, root)
                verdict = verify_entry(inner, key)
                reason = verdict.reason if not verdict.ok else entry_problem(inner, verdict.manifest, arch=a)
                if reason:
                    res.refused.append((name, reason))
                    continue
                with BuildLock(root, lock_name(a, kernel, key), what=f"importing {kernel} for {a}"):
                    if final.exists() and verify_entry(final, key).ok:
                        res.skipped.append((name, "already in the cache"))
                        continue
                    publish(inner, final, replacing="replaced by an imported entry")
                res.imported.append(name)
            except OSError as e:
                raise _write_error(root, e) from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return res
