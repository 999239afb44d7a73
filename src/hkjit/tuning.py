"""Tuning records and the per-call choice of a kernel configuration.

Which configuration (specs.CONFIGS) a kernel call uses, in order: one forced by ``force_config`` (tune and bench
time each candidate that way); the winner that `python -m hkjit tune` recorded for this exact shape on this device
with this toolchain; the arch's selection table (policy.SELECTION). Nothing here ever times anything: the call path
only reads records, once per process.

A record is one JSON file per (arch, kernel, device, toolchain key)::

    <root>/v1/tuning/<arch>/<kernel>-<device>-<toolchain key>.json

The toolchain key is the cache key of the arch's default configuration (keys.py: compiler, torch, Python, our
sources, flags, header libraries), so a process with the same device and toolchain — on this machine, or on another
that shares the cache (a read-only layer in HKJIT_CACHE_PATH) — reuses the winners, and a different torch,
compiler, kernel source or device ignores them. Records are written atomically (temp + rename), read with the
same trust rules as entries (no symlinks, owned by this user or root, or under HKJIT_TRUSTED_CACHE_DIRS), and a
corrupt or foreign one is ignored with one warning: never an exception on a call path. Peer: Triton's autotuner
tunes on the call path, in process, and caches per process (or per machine with its cache dir); hkjit tunes ahead
of time and shares the result through the cache.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Iterator

from .cache.layout import Layout
from .config import env_raw
from .errors import UnsupportedTargetError
from .records import Record

log = logging.getLogger("hkjit")

RECORD_FORMAT = 1
_warned: set[str] = set()


class Choice(Record):
    __slots__ = ("config", "rule", "reason")
    config: str      # a specs.CONFIGS name
    rule: str        # "forced" | "tuned" | a policy.SELECTION rule name ("default" when none applied)
    reason: str      # what explain prints: "tuned (recorded <date> ...)" or "table rule <name>: <why>"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:80]


def shape_name(m: int, n: int, k: int) -> str:
    return f"{m}x{n}x{k}"


def record_path(root: Path, arch: str, kernel: str, device: str, toolchain_key: str) -> Path:
    return Layout(root).tuning_record(arch, kernel, _slug(device), toolchain_key)


def toolchain_key(arch: str, root: Path | None = None, kernel: str = "gemm_bf16") -> str:
    """The key tuning records are filed under: the cache key of `arch`'s default configuration."""
    from .keys import entry_key
    from .specs import get_spec
    return entry_key(get_spec(arch, kernel), root)[0]


def _warn_once(what: str, msg: str, *args) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning(msg, *args)


def record_problem(rec: object, arch: str, kernel: str, device: str, key: str) -> str:
    """Why `rec` (a parsed record file) may not be used for (arch, kernel, device, key); "" when it may."""
    from .specs import configs_for, find_config
    if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
        return f"not a tuning record of format {RECORD_FORMAT}"
    for field, want in (("arch", arch), ("kernel", kernel), ("device", device), ("toolchain_key", key)):
        if rec.get(field) != want:
            return f"its {field} is {rec.get(field)!r}, this process's is {want!r} (a copied or renamed record)"
    winners = rec.get("winners")

    def known(name: object) -> bool:          # a listed configuration, or one its name spells (specs.find_config)
        try:
            return isinstance(name, str) and bool(find_config(arch, name))
        except UnsupportedTargetError:
            return False
    if not isinstance(winners, dict) or not all(
            isinstance(w, dict) and known(w.get("config")) and re.fullmatch(r"\d+x\d+x\d+", s)
            for s, w in winners.items()):
        return (f"its winners are not shape -> known configuration ({', '.join(c.name for c in configs_for(arch))}, "
                f"or a name that spells one)")
    return ""


def _read_file(path: Path) -> tuple[object, str]:
    """(parsed JSON, "") of the file at `path`, read once, without following a link, and trust-checked; else
    (None, why). A missing file is (None, "missing")."""
    from .fsutil import read_nofollow
    from .cache.trust import entry_file_problem, explicitly_trusted
    try:
        raw, st = read_nofollow(path)
    except FileNotFoundError:
        return None, "missing"
    except OSError as e:
        return None, f"unreadable ({e.strerror})"
    if (why := entry_file_problem(path, st, "tuning record", explicitly_trusted(path))) is not None:
        return None, why
    try:
        return json.loads(raw), ""
    except ValueError as e:
        return None, f"not JSON ({e})"


def read_record(path: Path, arch: str, kernel: str, device: str, key: str) -> tuple[dict | None, str]:
    """(record, "") when the file at `path` may be used for (arch, kernel, device, key), else (None, why)."""
    rec, why = _read_file(path)
    why = why or record_problem(rec, arch, kernel, device, key)
    return (None, why) if why else (rec, "")    # type: ignore[return-value]  # record_problem checked the dict


#: (root, arch, kernel, device) -> {shape: (config, recorded time)}: the records, read once per process
_tables: dict[tuple[str, str, str, str], dict[str, tuple[str, float]]] = {}


def tuned_table(arch: str, device: str, root: Path | None = None, kernel: str = "gemm_bf16"
                ) -> dict[str, tuple[str, float]]:
    """shape -> (configuration, time recorded) of the winners recorded for this device and toolchain, from the
    writable root and the read-only layers (the root's record wins for a shape in both). Read once per process;
    every unusable record is named in one warning and ignored."""
    from .cache.roots import cache_root
    from .cache.trust import search_roots
    root = root or cache_root()
    memo = (str(root), arch, kernel, device)
    table = _tables.get(memo)
    if table is not None:
        return table
    table = {}
    try:
        dirs = [(layer, Layout(layer).tuning_dir / arch) for layer in search_roots(root)]
        dirs = [(layer, d) for layer, d in dirs if d.is_dir()]
        key = toolchain_key(arch, root, kernel) if dirs else ""
    except Exception as e:             # an untrusted root, no compiler here: the load itself will say so
        _warn_once(f"key:{root}:{arch}", "hkjit: tuning records for %s not read (%s)", arch, e)
        dirs, key = [], ""
    for layer, d in reversed(dirs):    # layers first, so that the root's winners overwrite theirs
        path = record_path(layer, arch, kernel, device, key)
        rec, why = read_record(path, arch, kernel, device, key)
        if rec is not None:
            for shape, w in rec["winners"].items():
                table[shape] = (w["config"], float(w.get("recorded", rec.get("recorded", 0)) or 0))
        elif why != "missing":
            _warn_once(str(path), "hkjit: ignoring the tuning record %s: %s; run `python -m hkjit tune` again",
                       path, why)
        else:
            prefix = f"{kernel}-{_slug(device)}-"
            others = sorted(p.name for p in d.glob(f"{prefix}*.json"))
            if others:
                _warn_once(f"other:{d}:{device}", "hkjit: the tuning records in %s for %s are for another "
                           "toolchain (%s; this one is %s): ignored; `python -m hkjit tune` records for this one",
                           d, device, ", ".join(others), key)
    _tables[memo] = table
    return table


_forget_hooks: list[Callable[[], None]] = []


def on_forget(hook: Callable[[], None]) -> None:
    """Call `hook` whenever this process drops what it read (routing.py's memo holds the choices made from it)."""
    _forget_hooks.append(hook)


def forget() -> None:
    """Drop what this process has read (after `tune` wrote, `cache clear`, tests), and every choice made from it."""
    _tables.clear()
    _warned.clear()
    for hook in _forget_hooks:
        hook()


def write_winners(arch: str, device: str, winners: dict[str, dict], root: Path | None = None,
                  kernel: str = "gemm_bf16") -> Path:
    """Merge `winners` (shape -> {"config", "ms": {config: median ms}, ...}) into this device's and toolchain's
    record in the writable root, atomically. CacheError (naming the fix) when the root is not writable."""
    from .cache.entry import host_id
    from .cache.roots import cache_root, ensure_writable
    from .fsutil import atomic_write_text
    from .version import __version__
    from .cache.layout import tuning_lock_name
    from .cache.lock import BuildLock
    root = root or cache_root()
    ensure_writable(root)
    key = toolchain_key(arch, root, kernel)
    path = record_path(root, arch, kernel, device, key)
    # read, merge, replace under the record's lock: two `tune` runs at once (other shapes, other processes or
    # machines sharing the cache) each keep the other's winners instead of the last writer's alone
    with BuildLock(root, tuning_lock_name(arch, kernel, _slug(device), key), what=f"writing {path.name}"):
        old, _why = read_record(path, arch, kernel, device, key)
        if env_raw("HKJIT_TEST_FAULT") == "pause_tuning_merge":
            time.sleep(1.5)                  # tests: widen the read-to-write window two writers race in
        now = time.time()
        merged = dict(old["winners"]) if old else {}
        merged.update({s: dict(w, recorded=now) for s, w in winners.items()})
        rec = {"format": RECORD_FORMAT, "arch": arch, "kernel": kernel, "device": device, "toolchain_key": key,
               "host": host_id(), "hkjit_version": __version__, "recorded": now, "winners": merged}
        try:
            atomic_write_text(path, json.dumps(rec, indent=1, sort_keys=True))
        except OSError as e:
            from .errors import CacheError
            raise CacheError(f"cannot write the tuning record {path} ({e.strerror}): set HKJIT_CACHE_DIR to a "
                             f"writable folder") from None
    forget()
    return path


def iter_records(roots: list[tuple[Path, bool]], arch: str | None = None) -> Iterator[dict]:
    """One dict per tuning record file under the roots ((root, writable) pairs, cache.roots.all_roots): for
    `cache ls` / `cache clear`. Fields: path, arch, writable, layer, device, toolchain_key, shapes, recorded,
    status ("ok" or why it is unusable, checked against its own fields, not this process's)."""
    for root, writable in roots:
        base = Layout(root).tuning_dir
        if not base.is_dir():
            continue
        for arch_dir in sorted(base.iterdir()):
            if not arch_dir.is_dir() or (arch and arch_dir.name != arch):
                continue
            for path in sorted(arch_dir.glob("*.json")):
                info = {"path": str(path), "arch": arch_dir.name, "writable": writable, "layer": str(root),
                        "device": None, "toolchain_key": None, "winners": {}, "recorded": None}
                raw, why = _read_file(path)             # one read: no link followed, trust-checked
                if not why:
                    try:
                        own = (raw["arch"], raw["kernel"], raw["device"], raw["toolchain_key"])  # type: ignore[index]
                        ok_name = path.name == record_path(root, *own).name and own[0] == arch_dir.name
                        why = record_problem(raw, *own) or (
                            "" if ok_name else "filed under another name (copied or renamed)")
                    except (KeyError, TypeError) as e:
                        why = f"not a tuning record (no {e})"
                status = why or "ok"
                if not isinstance(raw, dict):
                    raw = {}
                winners = raw.get("winners")
                if not isinstance(winners, dict):
                    winners = {}
                info.update(device=raw.get("device"), toolchain_key=raw.get("toolchain_key"), recorded=raw.get(
                    "recorded"), winners={s: w.get("config") for s, w in winners.items() if isinstance(w, dict)},
                    status=status)
                yield info


def clear_records(root: Path, arch: str | None = None) -> list[str]:
    """Remove the tuning records of the writable root (of one arch): `cache clear`."""
    removed = []
    for info in iter_records([(root, True)], arch):
        try:
            os.unlink(info["path"])
            removed.append(info["path"])
        except FileNotFoundError:
            pass
    forget()
    return removed


# ----------------------------------------------------------------------------------------------- the call-time choice
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("hkjit_config", default=None)


@contextlib.contextmanager
def force_config(name: str):
    """``with force_config("128x128"): ...``: kernel calls inside use that configuration (tune and bench time each
    candidate this way). The name is checked when a call plans for an arch (UnsupportedTargetError if unknown)."""
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def forced_config() -> str | None:
    """The configuration force_config set for this context, if any (part of routing.py's memo key)."""
    return _forced.get()


_labels: dict[object, str] = {}


def _device_label(device) -> str:
    label = _labels.get(device)
    if label is None:
        from .validation import device_label
        label = _labels[device] = device_label(device)
    return label


def choose_config(arch: str, device, m: int, n: int, k: int) -> Choice:
    """The configuration an m x n x k kernel call on `device` uses: forced, else tuned, else the table. Not
    memoized here: routing.py memoizes the whole route of a call, this choice included."""
    forced = _forced.get()
    if forced is not None:
        return Choice(forced, "forced", "forced by hkjit.tuning.force_config")
    from .policy import select_by_table
    device = _device_label(device)
    hit = tuned_table(arch, device).get(shape_name(m, n, k))
    if hit is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(hit[1])) if hit[1] else "?"
        return Choice(hit[0], "tuned", f"tuned (recorded {when} for {device}: `python -m hkjit tune`)")
    config, rule, why = select_by_table(arch, m, n, k)
    return Choice(config, rule, f"table rule {rule}: {why}")
