"""Cache management as plain functions: list, summarize, show details, verify, clear, prune, explain a miss.

`python -m hkjit cache ...` (cli/cache.py) is a thin layer over these (and over archive.py for export and import);
tests and scripts call them directly. Only the writable root (HKJIT_CACHE_DIR) is ever modified; read-only layers
(HKJIT_CACHE_PATH) are listed, verified and explained against, never changed. Every removal first renames the
entry into ``v1/trash`` (atomic: a concurrent loader sees the whole entry or none), then deletes it.

Nothing on a call's path imports this module: the loader finds and verifies entries through entry.py.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..fsutil import dir_size, filesystem_type, free_space, writable
from ..version import CACHE_FORMAT, __version__
from .entry import clean_orphans, entry_problem, iter_entries, last_used, move_aside, to_trash, verify_entry
from .layout import FORMAT_DIR, KEY_JSON, MANIFEST, Layout
from .roots import all_roots, cache_root
from .trust import check_root


# --------------------------------------------------------------------------------------------------- removal
def _remove(path: Path, reason: str) -> int:
    """Rename entry `path` into its root's trash (entry.to_trash: atomic for concurrent loaders), then delete it;
    bytes freed."""
    size = dir_size(path)
    dest = to_trash(path)
    if dest is None:
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
    from ..keys import entry_key
    from ..specs import SPECS, config_spec, configs_for
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
    from ..specs import CONFIGS
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
    for layer, is_root in all_roots(root, layers):
        for a, k, key, path in iter_entries(layer):
            if (arch and a != arch) or (kernel and k != kernel):
                continue
            if verify:
                v = verify_entry(path)
                status, manifest = ("verified" if v.ok else v.reason), (v.manifest or _quick_status(path)[1])
            else:
                status, manifest = _quick_status(path)
            config = entry_config(path, a)
            cur = keys.get((a, k))
            if cur is not None and key not in cur:
                cur = cur | _spelled_key(a, k, config)   # a configuration named by its parameters (tune's)
            out.append(EntryInfo(
                arch=a, kernel=k, key=key, path=str(path), layer=str(layer), writable=is_root,
                size=dir_size(path), built_at=manifest.get("built_at"), last_used=last_used(path), status=status,
                build_seconds=manifest.get("build_seconds"), host=manifest.get("host", ""),
                hkjit_version=manifest.get("hkjit_version", ""),
                current=None if not with_current or cur is None else key in cur, config=config))
    return out


def _spelled_key(arch: str, kernel: str, config: str) -> set[str]:
    """{the key this process would use for `config`} when it is a configuration outside specs.CONFIGS that its name
    spells (specs.find_config), else {} (listed ones are in current_keys; an unknown name has no current key)."""
    from ..keys import entry_key
    from ..specs import config_spec, configs_for
    try:
        if not config or any(c.name == config for c in configs_for(arch)):
            return set()
        return {entry_key(config_spec(arch, config, kernel))[0]}
    except Exception:      # not a name that spells one, or no compiler / headers for that arch here
        return set()


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
    from .lock import lock_dir
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
    manifest's checksum (entry.verify_entry, never trusting the .verified stamp), the manifest's module file a plain
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
        from ..tuning import clear_records
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
    """Evict least recently used entries (entry.last_used) of the writable root until its v1/ folder is at most
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
    from ..keys import diff_inputs, from_record
    from ..keys import entry_key
    from ..specs import get_spec
    from ..targets import detect_target
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
