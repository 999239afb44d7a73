"""`hkjit cache ls|info|verify|clear|prune|export|import|why`: the text and JSON reports over hkjit.cache.admin
and hkjit.cache.archive, which do the work (tests and scripts call them directly)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cache.layout import FORMAT_DIR, TRASH
from ._common import ARCHS, add_arch_option, emit_json, err, parents, plural, size_arg, table, when


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cache", help="list, verify, clear, prune, export, import the cache; explain a miss",
                       description="Manage the kernel cache (writable root HKJIT_CACHE_DIR / --cache-dir, "
                       "read-only layers HKJIT_CACHE_PATH).")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION")
    c.set_defaults(func=lambda a: (c.print_help(sys.stderr), 2)[1])
    common = parents()

    def filt(sp, many: bool = False):
        action = "append" if many else "store"
        add_arch_option(sp, f"only this arch ({ARCHS})", repeat=many)
        sp.add_argument("--kernel", action=action, metavar="NAME", help="only this kernel")

    x = csub.add_parser("ls", parents=common, help="one line per entry",
                        description="List the entries of the root and the layers: arch, kernel, key, size, built, "
                        "last used, layer, status ('unverified' unless --verify checked it; 'current': the one this "
                        "process would load).")
    filt(x)
    x.add_argument("--verify", action="store_true", help="checksum every module (slower)")
    x.set_defaults(func=cmd_cache_ls)
    x = csub.add_parser("info", parents=common, help="where the cache is and what it holds; one entry's details",
                        description="Summarize the cache root and layers, or show one entry (key prefix, kernel, "
                        "or arch/kernel): manifest, key inputs, validation records.")
    x.add_argument("entry", nargs="?", help="key prefix (or kernel, or arch/kernel) of the entry to describe")
    x.set_defaults(func=cmd_cache_info)
    x = csub.add_parser("verify", parents=common, help="check every entry; exit 1 naming bad ones",
                        description="Verify every entry's manifest, key and module checksum. Exit 1 if any is bad.")
    filt(x)
    x.add_argument("--fix", action="store_true", help=f"move bad entries of the writable root to {FORMAT_DIR}/{TRASH}")
    x.set_defaults(func=cmd_cache_verify)
    x = csub.add_parser("clear", parents=common, help="remove entries (or only validation records)",
                        description="Remove entries of the writable root, with their validation records, trash and "
                        "failed build logs. --validation removes only the validation records (un-rejects a "
                        "toolchain that failed selftest).")
    filt(x)
    x.add_argument("--validation", action="store_true", help="remove only the validation records")
    x.set_defaults(func=cmd_cache_clear)
    x = csub.add_parser("prune", parents=common, help="evict least recently used entries down to a size",
                        description="Evict least recently used entries of the writable root until its size is at "
                        "most SIZE (bytes, or K/M/G/T: powers of 1024).")
    x.add_argument("--max-size", type=size_arg, required=True, metavar="SIZE", help="e.g. 500M, 2G, 1048576")
    x.set_defaults(func=cmd_cache_prune)
    x = csub.add_parser("export", parents=common, help="write chosen entries to one archive",
                        description="Write the valid entries (root and layers; filter with --arch/--kernel) to one "
                        "tar archive (.tar.gz/.tgz: compressed) for `cache import` or HKJIT_CACHE_PATH elsewhere.")
    x.add_argument("file", metavar="FILE", help="archive to write (.tar, .tar.gz, .tgz)")
    filt(x, many=True)
    x.set_defaults(func=cmd_cache_export)
    x = csub.add_parser("import", parents=common, help="unpack an archive, verified and atomic per entry",
                        description="Unpack an archive made by `cache export` into the writable root. Each entry is "
                        "verified, then renamed into place; valid existing entries are kept. Refuses archives of "
                        "another cache format (exit 2), and foreign, unsafe or corrupt members (exit 1).")
    x.add_argument("file", metavar="FILE", help="archive made by `python -m hkjit cache export`")
    x.add_argument("--expect-sha256", metavar="HEX", help="refuse the archive (exit 2, nothing imported) unless the "
                   "file's sha256 is HEX, as `cache export` printed it: an archive is code that hkjit will load")
    x.set_defaults(func=cmd_cache_import)
    x = csub.add_parser("why", parents=common, help="explain a cache miss: key inputs diffed against the "
                        "nearest entry", description="Compute the current key inputs of KERNEL and diff them "
                        "against the nearest existing entry (fewest differing fields).")
    x.add_argument("kernel", nargs="?", default="gemm_bf16", metavar="KERNEL", help="default: %(default)s")
    add_arch_option(x, f"default: this device's ({ARCHS})")
    x.set_defaults(func=cmd_cache_why)


def cmd_cache_ls(args: argparse.Namespace) -> int:
    from ..cache.admin import list_entries
    from ..cache.roots import all_roots
    from ..config import human_size
    from ..tuning import iter_records
    entries = list_entries(arch=args.arch, kernel=args.kernel, verify=args.verify, with_current=True)
    tuning = [] if args.kernel not in (None, "gemm_bf16") else list(iter_records(all_roots(), args.arch))
    if args.json:
        emit_json({"entries": [e.to_json() for e in entries], "tuning": tuning})
        return 0
    if not entries:
        print(f"no entries in {', '.join(str(p) for p, _ in all_roots())}")
    else:
        rows = []
        for e in entries:
            status = e.status + (" (current)" if e.current else "")
            rows.append([e.arch, e.kernel, e.config, e.key[:12], human_size(e.size), when(e.built_at),
                         when(e.last_used), "root" if e.writable else e.layer, status])
        print(table(["arch", "kernel", "config", "key", "size", "built", "last used", "layer", "status"], rows,
                     right={4}))
        if any(e.status == "unverified" for e in entries):
            print("(unverified: manifest present, module not checksummed; `python -m hkjit cache ls --verify` checks)")
    if tuning:
        print("\ntuning records (`python -m hkjit tune`; explain names the configuration a call uses):")
        rows = [[t["arch"], t["device"] or "?", (t["toolchain_key"] or "?")[:12], when(t["recorded"]),
                 ", ".join(f"{s} {c}" for s, c in sorted(t["winners"].items())) or "-",
                 "root" if t["writable"] else t["layer"], t["status"]] for t in tuning]
        print(table(["arch", "device", "toolchain", "recorded", "winners", "layer", "status"], rows))
    return 0


def cmd_cache_info(args: argparse.Namespace) -> int:
    from ..cache.admin import cache_summary, entry_details
    from ..config import human_size
    if args.entry:
        details = entry_details(args.entry)
        if args.json:
            emit_json({"entries": details})
        elif not details:
            print(f"no entry matches {args.entry!r} (give a key prefix, a kernel name or arch/kernel)")
        for d in [] if args.json else details:
            m = d.get("manifest") or {}
            print(f"{d['arch']}/{d['kernel']}-{d['key']}")
            print(f"  path        {d['path']} ({'root' if d['writable'] else 'read-only layer'})")
            print(f"  status      {d['status']}")
            print(f"  size        {human_size(d['size'])}  module {m.get('module_file', '?')}")
            print(f"  built       {when(d['built_at'])} on {d['host'] or '?'} in {d['build_seconds']} s by hkjit "
                  f"{d['hkjit_version'] or '?'}")
            print(f"  last used   {when(d['last_used'])}")
            ki = d.get("key_inputs") or {}
            print(f"  torch       {ki.get('torch', {}).get('version', '?')}   compiler {ki.get('compiler', '?')}")
            print(f"  flags       {json.dumps(ki.get('flags', {}))}")
            env = {k: v for k, v in (ki.get("env") or {}).items() if v}
            print(f"  env         {json.dumps(env) if env else '(none)'}")
            for rec in d["validation"]:
                kind = " (emulated, not a device run)" if rec.get("kind") == "emulated" else ""
                print(f"  validation  {'passed' if rec.get('passed') else 'FAILED'}{kind} on {rec.get('device')} "
                      f"({when(rec.get('time'))}): {rec.get('detail')}")
        return 0 if details else 1
    s = cache_summary()
    if args.json:
        emit_json(s)
        return 0
    print(f"hkjit {s['hkjit_version']}, cache format {s['format']} (folder {s['format_dir']}/)")
    for layer in [s["root"]] + s["layers"]:
        free = human_size(layer["free"]) if layer["free"] is not None else "?"
        state = ("writable" if layer["writable"] else "read-only") if layer["exists"] else "does not exist yet"
        print(f"{layer['role']:<6} {layer['path']} ({state}, {free} free)")
        by_arch = ", ".join(f"{a}: {n}" for a, n in layer["entries_by_arch"].items()) or "none"
        print(f"  entries      {layer['entries']} ({by_arch}), {human_size(layer['size'])} in all")
        vr = layer["validation_records"]
        er = layer["emulated_records"]
        print(f"  validation   {vr['passed']} passed, {vr['failed']} failed records on a device; "
              f"emulated {er['passed']} passed, {er['failed']} failed")
        print(f"  in progress  {layer['in_progress']} build folder(s)")
        print(f"  trash        {layer['trash']['count']} ({human_size(layer['trash']['size'])})   failed build "
              f"logs {layer['failed_logs']['count']}")
    if not s["layers"]:
        print("layers: none (HKJIT_CACHE_PATH unset)")
    print(f"locks  {s['lock_dir']} (cache filesystem: {s['root'].get('filesystem') or '?'})")
    return 0


def cmd_cache_verify(args: argparse.Namespace) -> int:
    from ..cache.admin import verify
    results = verify(fix=args.fix, arch=args.arch, kernel=args.kernel)
    bad = [r for r in results if not r.ok]
    if args.json:
        emit_json({"ok": not bad, "checked": len(results),
                    "results": [{"entry": r.entry.path, "layer": r.entry.layer, "ok": r.ok, "reason": r.reason,
                                 "moved_to": r.moved_to} for r in results]})
    else:
        for r in results:
            name = f"{r.entry.arch}/{r.entry.kernel}-{r.entry.key}"
            where = "root" if r.entry.writable else f"layer {r.entry.layer}"
            if r.ok:
                print(f"ok   {name} ({where})")
            else:
                fate = (f"; moved to {r.moved_to}" if r.moved_to else
                        "" if not args.fix else "; not moved (read-only layer)" if not r.entry.writable else "")
                print(f"BAD  {name} ({where}): {r.reason}{fate}")
        hint = "" if not bad or args.fix else " (`python -m hkjit cache verify --fix` moves them aside)"
        print(f"verify: {plural(len(results), 'entry', 'entries')}, {len(bad)} bad{hint}")
    return 1 if bad else 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from ..cache.admin import clear
    from ..cache.roots import cache_root
    from ..config import human_size
    removed = clear(arch=args.arch, kernel=args.kernel, validation_only=args.validation)
    if args.json:
        emit_json(removed.to_json() | {"root": str(cache_root())})
    elif args.validation:
        print(f"cleared {plural(len(removed.records), 'validation record')} in {cache_root()}")
    else:
        print(f"cleared {plural(len(removed.entries), 'entry', 'entries')}, "
              f"{plural(len(removed.records), 'validation record')}, {plural(len(removed.tuning), 'tuning record')}, "
              f"{plural(len(removed.other), 'other item')}: "
              f"{human_size(removed.bytes_freed)} freed in {cache_root()}")
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    from ..cache.admin import prune
    from ..config import human_size
    res = prune(args.max_size)
    if args.json:
        emit_json(res.to_json())
        return 0
    for e in res.evicted:
        print(f"evicted {e.arch}/{e.kernel}-{e.key} ({human_size(e.size)}, last used {when(e.last_used)})")
    if res.other:
        print(f"emptied trash: {len(res.other)} item(s)")
    print(f"prune: {human_size(res.before)} -> {human_size(res.after)} (limit {human_size(res.max_bytes)}), "
          f"{len(res.evicted)} evicted")
    if res.after > res.max_bytes:
        print("prune: still over the limit: what remains is builds in progress, locks and records")
    return 0


def cmd_cache_export(args: argparse.Namespace) -> int:
    from ..cache.archive import export
    from ..config import human_size
    res = export(Path(args.file), arch=args.arch, kernel=args.kernel)
    if args.json:
        emit_json(res.to_json())
    else:
        for e in res.entries:
            print(f"exported {e.arch}/{e.kernel}-{e.key} ({human_size(e.size)})")
        for p, why in res.skipped:
            print(f"skipped  {p}: {why}")
        if res.entries:
            print(f"export: {plural(len(res.entries), 'entry', 'entries')} -> {res.path} ({human_size(res.size)}, "
                  f"sha256 {res.sha256})")
    if not res.entries:
        err("hkjit: nothing exported: no valid entry matches (build some with `python -m hkjit warmup --arch ...`)")
        return 1
    return 0


def cmd_cache_import(args: argparse.Namespace) -> int:
    from ..cache.archive import import_archive
    from ..cache.roots import cache_root
    res = import_archive(Path(args.file), expect_sha256=args.expect_sha256)
    if args.json:
        emit_json(res.to_json() | {"root": str(cache_root())})
    else:
        for n in res.imported:
            print(f"imported {n}")
        for n, why in res.skipped:
            print(f"skipped  {n}: {why}")
        for n, why in res.refused:
            print(f"REFUSED  {n}: {why}")
        print(f"import: {len(res.imported)} imported, {len(res.skipped)} skipped, {len(res.refused)} refused "
              f"into {cache_root()} (archive sha256 {res.sha256})")
    return 0 if res.ok else 1


def _fmt_value(v) -> str:
    if v is None:
        return "(absent)"
    if isinstance(v, str) and v and not any(c.isspace() for c in v):
        return v
    return json.dumps(v)


def cmd_cache_why(args: argparse.Namespace) -> int:
    from ..cache.admin import why
    res = why(args.kernel, args.arch)
    if args.json:
        emit_json(res.to_json())
        return 0
    head = f"{res.kernel} for {res.arch}: current key {res.key}"
    if res.status == "hit":
        print(f"{head}\nhit: {res.entry} is valid; nothing would be rebuilt")
        if res.from_record:
            print(f"pre-baked: {', '.join(res.from_record)} taken from the entry's key.json, not verified here (no "
                  f"compiler/headers found); every other input matched")
    elif res.status == "bad":
        print(f"{head}\nthe entry {res.entry} has this key but is bad ({res.reason}): it would be moved aside and "
              f"rebuilt")
    elif res.entry is None:
        print(f"{head}\nmiss: no {res.arch}/{res.kernel} entry in the cache to compare with (never built here, or "
              f"cleared); `python -m hkjit warmup --arch {res.arch}` builds it")
    else:
        print(f"{head}\nmiss: nearest entry {res.entry} (of {res.candidates}) differs in {len(res.diffs)} "
              f"key input(s):")
        for field, old, new in res.diffs:
            print(f"  {field}: {_fmt_value(old)} -> {_fmt_value(new)}")
    return 0
