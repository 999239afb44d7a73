"""Cache management as plain functions: list, summarize, verify, clear, prune, export, import, explain a miss.

`python -m hkjit cache ...` (cli/cache.py) is a thin layer over these; tests and scripts call them directly. Only the
writable root (HKJIT_CACHE_DIR) is ever modified; read-only layers (HKJIT_CACHE_PATH) are listed, verified,
exported from and explained against, never changed. Every removal first renames the entry into ``v1/trash``
(atomic: a concurrent loader sees the whole entry or none), then deletes it.

Archives (``export`` / ``import``) are tar files (gzip-compressed when the name ends in .gz or .tgz)::

    hkjit-archive.json                      {"format": CACHE_FORMAT, "hkjit_version": ..., "entries": [...]}
    v1/<arch>/<kernel>-<key>/<file>         the entry's files (flat), as published (no .last_used stamp)

``import_archive`` refuses an archive of another cache format, a malformed listing, one over the size limits
(ImportLimits: checked from the tar headers before any data is read, the decompressed stream capped), any member
that is not a regular file or folder of that shape (absolute paths, ``..``, links, devices, unknown names), and
every entry that fails ``cache.verify_entry`` or ``entry_problem`` after unpacking; each good entry is streamed
into ``v1/tmp`` and renamed into place. An archive is code (its modules get imported): verification proves an
entry whole and confined to its folder, not who made it; ``expect_sha256`` pins the archive file itself.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from itertools import count
from pathlib import Path, PurePosixPath

from .cache import (cache_layers, cache_root, host_id, iter_entries, last_used, move_aside, publish,
                    verify_entry)
from .errors import ArchiveError, CacheError   # ArchiveError: still importable from here
from .trust import check_root
from .fsutil import dir_size
from .layout import (FORMAT_DIR, KEY_JSON, MANIFEST, SPECIAL_DIRS, USED_STAMP, Layout, entry_name, lock_name,
                     split_entry_name)
from .manifest import manifest_problem
from .version import CACHE_FORMAT, __version__

ARCHIVE_JSON = "hkjit-archive.json"
_ENTRY_RE = re.compile(r"^[A-Za-z0-9_.]+-[0-9a-f]{32}$")
_ARCH_RE = re.compile(r"^[A-Za-z0-9_]+$")
_FILE_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_counter = count()
log = logging.getLogger("hkjit")


# --------------------------------------------------------------------------------------------------- helpers
def parse_size(text: str) -> int:
    """'500M', '2G', '1.5GiB', '123456' -> bytes (K/M/G/T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text or "")
    if not m:
        raise ValueError(f"size {text!r} not understood: use bytes or a number with K, M, G or T (e.g. 500M, 2G)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def all_roots(root: Path | None = None, layers: list[Path] | None = None) -> list[tuple[Path, bool]]:
    """(path, writable?) of the writable root followed by the read-only layers."""
    root = root or cache_root()
    layers = cache_layers() if layers is None else layers
    return [(root, True)] + [(p, False) for p in layers if p != root]


def _remove(path: Path, reason: str) -> int:
    """Rename entry `path` into its root's v1/trash (atomic for concurrent loaders), then delete it; bytes freed."""
    size = dir_size(path)
    dest = Layout.of_entry(path).trash_slot(path.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return 0
    shutil.rmtree(dest, ignore_errors=True)
    return size


# --------------------------------------------------------------------------------------------------- listing
@dataclass
class EntryInfo:
    arch: str
    kernel: str
    key: str
    path: str
    layer: str           # the root it lives in
    writable: bool       # True for the writable root, False for a read-only layer
    size: int
    built_at: float | None
    last_used: float
    status: str          # "unverified" (a manifest of this format, module not checksummed), "verified" (verify=
                         # True: manifest, key.json and module checksum checked), or why it is bad
    build_seconds: float | None = None
    host: str = ""
    hkjit_version: str = ""
    current: bool | None = None   # whether it is the entry this process would load (None: unknown)
    config: str = ""              # the kernel configuration (key.json's "config"; absent: the arch's default)

    def to_json(self) -> dict:
        return asdict(self)


def _quick_status(path: Path) -> tuple[str, dict]:
    """What can be said without hashing: a missing or foreign manifest is bad; anything else is only "unverified"
    (a flipped byte in the module shows only to verify_entry)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return "no manifest (incomplete)", {}
    except (OSError, ValueError) as e:
        return f"unreadable manifest ({e})", {}
    if manifest.get("format") != CACHE_FORMAT:
        return f"cache format {manifest.get('format')}", manifest
    return "unverified", manifest


def current_keys() -> dict[tuple[str, str], set[str]]:
    """(arch, kernel) -> the keys this process would build/load now (one per configuration), where they can be
    computed here."""
    from .keys import entry_key
    from .specs import SPECS, config_spec, configs_for
    out: dict[tuple[str, str], set[str]] = {}
    for spec in SPECS:
        for cfg in configs_for(spec.arch):
            try:
                out.setdefault((spec.arch, spec.name), set()).add(entry_key(config_spec(spec.arch, cfg.name,
                                                                                        spec.name))[0])
            except Exception:      # no compiler / headers for that arch here: unknown
                break
    return {k: v for k, v in out.items() if v}


def entry_config(path: Path, arch: str) -> str:
    """The configuration an entry was built in: key.json's "config", else (no field) the arch's default."""
    from .specs import CONFIGS
    try:
        recorded = json.loads((path / KEY_JSON).read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        recorded = None
    default = CONFIGS.get(arch, ())
    return recorded if isinstance(recorded, str) else (default[0].name if default else "")


def list_entries(root: Path | None = None, layers: list[Path] | None = None, arch: str | None = None,
                 kernel: str | None = None, verify: bool = False, with_current: bool = False) -> list[EntryInfo]:
    """Every entry folder of the root and the layers (valid or not), optionally filtered by arch/kernel."""
    keys = current_keys() if with_current else {}
    out = []
    for layer, writable in all_roots(root, layers):
        for a, k, key, path in iter_entries(layer):
            if (arch and a != arch) or (kernel and k != kernel):
                continue
            if verify:
                v = verify_entry(path)
                status, manifest = ("verified" if v.ok else v.reason), (v.manifest or _quick_status(path)[1])
            else:
                status, manifest = _quick_status(path)
            cur = keys.get((a, k))
            out.append(EntryInfo(
                arch=a, kernel=k, key=key, path=str(path), layer=str(layer), writable=writable,
                size=dir_size(path), built_at=manifest.get("built_at"), last_used=last_used(path), status=status,
                build_seconds=manifest.get("build_seconds"), host=manifest.get("host", ""),
                hkjit_version=manifest.get("hkjit_version", ""),
                current=None if not with_current or cur is None else key in cur, config=entry_config(path, a)))
    return out


def free_space(path: Path) -> int | None:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def writable(path: Path) -> bool:
    """Whether a file can be created under `path` (or under its nearest existing parent, which would be created)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=".hkjit-probe.", dir=p)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def layer_summary(path: Path, is_root: bool) -> dict:
    layout = Layout(path)
    fmt = layout.format_dir
    entries = list(iter_entries(path))

    def sub(d: Path) -> dict:
        items = list(d.iterdir()) if d.is_dir() else []
        return {"count": len(items), "size": dir_size(d) if items else 0}

    records = layout.validation_records()
    counts: dict[str, dict[str, int]] = {}          # per kind: an emulated pass is not a device validation
    for r in records:
        try:
            rec = json.loads(r.read_text())
            ok, kind = rec.get("passed"), str(rec.get("kind", "device"))
        except (OSError, ValueError, AttributeError):
            continue
        c = counts.setdefault(kind, {"passed": 0, "failed": 0})
        c["passed"] += ok is True
        c["failed"] += ok is False
    by_arch: dict[str, int] = {}
    for a, _k, _key, _p in entries:
        by_arch[a] = by_arch.get(a, 0) + 1
    return {
        "path": str(path), "role": "root" if is_root else "layer", "exists": path.is_dir(),
        "writable": writable(path) if is_root else False,     # hkjit never writes into a layer
        "free": free_space(path), "entries": len(entries), "entries_by_arch": by_arch,
        "size": dir_size(fmt) if fmt.is_dir() else 0,
        "in_progress": sub(layout.staging_dir)["count"], "trash": sub(layout.trash_dir),
        "failed_logs": sub(layout.failed_dir),
        "validation_records": counts.get("device", {"passed": 0, "failed": 0}),
        "emulated_records": counts.get("emulated", {"passed": 0, "failed": 0}),
    }


def cache_summary(root: Path | None = None, layers: list[Path] | None = None) -> dict:
    """Where the cache is and what is in it: the root and every layer (see layer_summary)."""
    from .locking import filesystem_type, lock_dir
    root = root or cache_root()
    roots = all_roots(root, layers)
    return {
        "format": CACHE_FORMAT, "format_dir": FORMAT_DIR, "hkjit_version": __version__,
        "root": layer_summary(root, True) | {"filesystem": filesystem_type(root)},
        "layers": [layer_summary(p, False) for p, w in roots[1:]],
        "lock_dir": str(lock_dir(root)),
    }


def entry_details(prefix: str, root: Path | None = None, layers: list[Path] | None = None) -> list[dict]:
    """Manifest, key inputs, verification and validation records of the entries whose key starts with prefix."""
    out = []
    for e in list_entries(root, layers, verify=True):
        if not e.key.startswith(prefix) and prefix not in (e.kernel, f"{e.arch}/{e.kernel}"):
            continue
        path = Path(e.path)
        info = e.to_json()
        for name, fname in (("manifest", MANIFEST), ("key_inputs", KEY_JSON)):
            try:
                info[name] = json.loads((path / fname).read_text())
            except (OSError, ValueError):
                info[name] = None
        records = []
        for r in Layout(e.layer).validation_records(e.arch, e.kernel, e.key):
            try:
                records.append(json.loads(r.read_text()))
            except (OSError, ValueError):
                continue
        info["validation"] = records
        out.append(info)
    return out


# --------------------------------------------------------------------------------------------------- verify
@dataclass
class VerifyResult:
    entry: EntryInfo
    ok: bool
    reason: str
    moved_to: str | None = None


def verify(root: Path | None = None, layers: list[Path] | None = None, fix: bool = False,
           arch: str | None = None, kernel: str | None = None) -> list[VerifyResult]:
    """Every entry re-derived from its files: key.json re-hashed to the folder's key and the module re-hashed to the
    manifest's checksum (cache.verify_entry, never trusting the .verified stamp), the manifest's module file a plain
    name inside the entry, manifest and key.json naming the folder's arch and kernel (entry_problem). With fix=True
    bad entries of the writable root are moved to v1/trash."""
    out = []
    for e in list_entries(root, layers, arch=arch, kernel=kernel):
        v = verify_entry(Path(e.path), full=True)
        ok, reason = v.ok, v.reason
        if ok and (why := entry_problem(Path(e.path), v.manifest)):
            ok, reason = False, why
        moved = None
        if not ok and fix and e.writable:
            check_root(Path(e.layer))    # --fix writes (moves into v1/trash): only into a trusted root
            dest = move_aside(Path(e.path), reason, then="")
            moved = str(dest) if dest else None
        out.append(VerifyResult(e, ok, reason, moved))
    return out


# --------------------------------------------------------------------------------------------------- clear / prune
@dataclass
class Removed:
    entries: list[EntryInfo] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)   # trash, failed logs, orphaned temp folders
    bytes_freed: int = 0
    tuning: list[str] = field(default_factory=list)  # tuning records (tuning.py)

    def to_json(self) -> dict:
        return {"entries": [e.to_json() for e in self.entries], "records": self.records, "other": self.other,
                "bytes_freed": self.bytes_freed, "tuning": self.tuning}


def clear(root: Path | None = None, arch: str | None = None, kernel: str | None = None,
          validation_only: bool = False) -> Removed:
    """Remove entries (and their validation records, trash, failed logs) from the writable root.

    validation_only=True removes only the validation records (un-rejects a toolchain marked bad by selftest)."""
    root = root or cache_root()
    check_root(root)                 # never write into a cache another user could have planted in
    layout = Layout(root)
    fmt = layout.format_dir
    out = Removed()
    for rec in layout.validation_records(arch, kernel):
        try:
            rec.unlink()
            out.records.append(str(rec))
        except FileNotFoundError:
            pass
    if validation_only:
        return out
    if not kernel or kernel == "gemm_bf16":
        from .tuning import clear_records
        out.tuning = clear_records(root, arch)
    for e in list_entries(root, layers=[], arch=arch, kernel=kernel):
        out.bytes_freed += _remove(Path(e.path), "cache clear")
        out.entries.append(e)
    if fmt.is_dir():
        for d in (layout.trash_dir, layout.failed_dir):
            for p in sorted(d.iterdir()) if d.is_dir() else []:
                if arch and not (p.name.startswith(f"{arch}-") or d == layout.trash_dir):
                    continue
                out.bytes_freed += dir_size(p) if p.is_dir() else p.stat().st_size
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                out.other.append(str(p))
        from .builder import clean_orphans
        out.other += [str(p) for p in clean_orphans(root)]
    return out


@dataclass
class PruneResult:
    before: int
    after: int
    max_bytes: int
    evicted: list[EntryInfo] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"before": self.before, "after": self.after, "max_bytes": self.max_bytes,
                "evicted": [e.to_json() for e in self.evicted], "other": self.other}


def prune(max_bytes: int, root: Path | None = None) -> PruneResult:
    """Evict least recently used entries (cache.last_used) of the writable root until its v1/ folder is at most
    max_bytes. Trash (entries already moved aside) goes first; builds in progress are never touched; tuning
    records (v1/tuning/, a kilobyte each, the result of device time) are counted but never evicted (`cache
    clear` removes them)."""
    root = root or cache_root()
    check_root(root)
    layout = Layout(root)
    fmt = layout.format_dir
    before = dir_size(fmt) if fmt.is_dir() else 0
    res = PruneResult(before, before, max_bytes)
    total = before
    trash = layout.trash_dir
    if total > max_bytes and trash.is_dir():
        for p in sorted(trash.iterdir()):
            total -= dir_size(p) if p.is_dir() else p.stat().st_size
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            res.other.append(str(p))
    entries = sorted(list_entries(root, layers=[]), key=lambda e: (e.last_used, e.path))
    for e in entries:
        if total <= max_bytes:
            break
        total -= _remove(Path(e.path), "pruned (least recently used)")
        res.evicted.append(e)
    res.after = dir_size(fmt) if fmt.is_dir() else 0
    return res


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
                         "dir": f"{FORMAT_DIR}/{e.arch}/{e.kernel}-{e.key}"} for e, files in members]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, _tar_mode(dest.name, "w"), format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(meta, indent=1).encode()
            info = tarfile.TarInfo(ARCHIVE_JSON)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
            for e, files in members:
                for f in files:
                    src = Path(e.path) / f
                    ti = tar.gettarinfo(str(src), arcname=f"{FORMAT_DIR}/{e.arch}/{e.kernel}-{e.key}/{f}")
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    with open(src, "rb") as fh:
                        tar.addfile(ti, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ExportResult(str(dest), entries, skipped, dest.stat().st_size, file_sha256(dest))


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


def _classify(member: tarfile.TarInfo) -> tuple[str, object]:
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
        from .config import bad_value, env_str
        values = []
        for name, default in (("HKJIT_IMPORT_MAX_BYTES", IMPORT_MAX_BYTES),
                              ("HKJIT_IMPORT_MAX_MEMBER_BYTES", IMPORT_MAX_MEMBER_BYTES)):
            raw = env_str(name)
            try:
                values.append(parse_size(raw) if raw else default)
            except ValueError as e:
                raise bad_value(name, raw, str(e)) from None
        return cls(*values)


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


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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
    digest = hashlib.sha256()
    while chunk := raw.read(1 << 20):
        digest.update(chunk)
    sha256 = digest.hexdigest()
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
        meta = json.loads(tar.extractfile(meta_member).read())
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


def entry_problem(path: Path, manifest: dict, arch: str | None = None) -> str:
    """Why an entry that passed cache.verify_entry still does not belong where it is ("" when it does): its
    manifest's names (manifest.manifest_problem) and key.json's arch and kernel against the folder it is in."""
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
    from .locking import BuildLock
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
                with BuildLock(root, lock_name(a, kernel, key), what=f"{kernel} for {a}"):
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


# --------------------------------------------------------------------------------------------------- why
@dataclass
class WhyResult:
    arch: str
    kernel: str
    key: str
    status: str                    # "hit" | "bad" (an entry with the key exists but fails verification) | "miss"
    entry: str | None = None       # the hit / bad entry, or the nearest one on a miss
    reason: str = ""               # why the bad entry is bad
    diffs: list[tuple[str, object, object]] = field(default_factory=list)
    candidates: int = 0            # entries of (arch, kernel) compared
    from_record: list[str] = field(default_factory=list)   # inputs taken from a pre-baked entry (keys.resolve_key)

    def to_json(self) -> dict:
        return {"arch": self.arch, "kernel": self.kernel, "key": self.key, "status": self.status,
                "entry": self.entry, "reason": self.reason, "candidates": self.candidates,
                "from_record": self.from_record,
                "diffs": [{"field": f, "old": o, "new": n} for f, o, n in self.diffs]}


def why(kernel: str, arch: str | None = None, root: Path | None = None,
        layers: list[Path] | None = None) -> WhyResult:
    """Why `kernel` for `arch` (default: this device) would be (re)built: the current key inputs diffed against
    the nearest existing entry's key.json (the one with the fewest differing fields)."""
    from .keys import diff_inputs, from_record
    from .keys import entry_key
    from .specs import get_spec
    from .targets import detect_target
    root = root or cache_root()
    arch = arch or detect_target().arch
    spec = get_spec(arch, kernel)
    key, inputs = entry_key(spec, root)
    best = None
    n = 0
    for layer, _w in all_roots(root, layers):
        for a, k, ekey, path in iter_entries(layer):
            if a != arch or k != kernel:
                continue
            n += 1
            if ekey == key:
                v = verify_entry(path, key)
                if v.ok:
                    return WhyResult(arch, kernel, key, "hit", str(path), candidates=n,
                                     from_record=list(from_record(key)))
                return WhyResult(arch, kernel, key, "bad", str(path), v.reason, candidates=n)
            try:
                old = json.loads((path / KEY_JSON).read_text())
            except (OSError, ValueError):
                continue
            diffs = diff_inputs(old, inputs)
            if best is None or len(diffs) < len(best[1]):
                best = (path, diffs)
    if best is None:
        return WhyResult(arch, kernel, key, "miss", None, candidates=n)
    return WhyResult(arch, kernel, key, "miss", str(best[0]), diffs=best[1], candidates=n)
