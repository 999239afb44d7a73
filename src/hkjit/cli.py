"""`python -m hkjit` / `hkjit`: warmup, cache management, doctor, selftest, bench, tune.

Exit codes: 0 ok; 1 a check failed (a kernel failed to build, a bad cache entry, a selftest failure, a refused
archive entry, doctor found a blocking problem, a tuned shape with no correct configuration); 2 usage or
environment error (bad arguments, no GPU and no --arch, a missing compiler or header library, an unusable
archive, a cache that cannot be written), printed as one message without a traceback.
Reports go to stdout (``--json``: one JSON document), progress and logging to stderr.

Heavy imports (torch) happen inside the commands, so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from .config import env_str
from .errors import HkjitError, UsageError
from .layout import FORMAT_DIR, TRASH
from .version import CACHE_FORMAT, __version__

log = logging.getLogger("hkjit")


# --------------------------------------------------------------------------------------------------- output helpers
def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit_json(doc) -> None:
    print(json.dumps(doc, indent=1, sort_keys=False, default=str))


def _dur(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    fmt = lambda r: "  ".join(str(v).rjust(w) if i in right else str(v).ljust(w)  # noqa: E731
                              for i, (v, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([fmt(headers)] + [fmt(r) for r in rows])


def _size_arg(text: str) -> int:
    from .cachetool import parse_size
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _shapes_arg(text: str) -> list[tuple[int, int, int]]:
    from .shapes import parse_shapes
    try:
        return parse_shapes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _shape_arg(text: str) -> tuple[int, int, int]:
    from .selftest import parse_shape
    try:
        return parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# --------------------------------------------------------------------------------------------------- warmup
class _Progress:
    """Progress lines for parallel builds: one line per finished kernel, and a note for builds still running."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet = total, quiet
        self.done = 0
        self.running: dict[str, float] = {}
        self.noted: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self):
        if not self.quiet:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()

    def _tick(self) -> None:
        while not self.stop.wait(1.0):
            now = time.monotonic()
            with self.lock:
                for name, t0 in self.running.items():
                    last = self.noted.get(name)
                    if (last is None and now - t0 >= 2) or (last is not None and now - last >= 15):
                        self.noted[name] = now
                        _err(f"hkjit warmup: building {name} ... ({now - t0:.0f} s)")

    def start(self, spec) -> None:
        with self.lock:
            self.running[f"{spec.arch}/{spec.name}" + (f" {spec.config}" if spec.config else "")] = time.monotonic()

    def finish(self, r) -> None:
        with self.lock:
            self.running.pop(f"{r.arch}/{r.kernel}" + (f" {r.config}" if r.config else ""), None)
            self.done += 1
            if self.quiet:
                return
            what = {"hit": f"hit in {_dur(r.seconds)}", "built": f"built in {_dur(r.seconds)}",
                    "failed": f"FAILED after {_dur(r.seconds)}: {r.error.splitlines()[0] if r.error else ''}"}[r.status]
            _err(f"hkjit warmup: [{self.done}/{self.total}] {r.arch}/{r.kernel} {what}"
                 + (f" (configuration {r.config})" if r.config else ""))


def cmd_warmup(args) -> int:
    import torch.distributed as dist
    from .cache import cache_root
    from .warmup import default_archs, warmup, warmup_specs
    archs = args.arch or default_archs("cli")
    configs = _config_names(args.config)
    root = cache_root()
    specs = warmup_specs(archs, args.kernel, config=configs, root=root)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else int(env_str("RANK", "0"))
    quiet = args.quiet
    t0 = time.perf_counter()
    with _Progress(len(specs), quiet) as prog:
        results = warmup(arch=archs, kernel=args.kernel, jobs=args.jobs, root=root, on_start=prog.start,
                         on_done=prog.finish, config=configs)
    total = time.perf_counter() - t0
    counts = {s: sum(r.status == s for r in results) for s in ("built", "hit", "failed")}
    if args.json:
        _emit_json({"root": str(root), "seconds": round(total, 3), "counts": counts, "rank": rank,
                    "results": [vars(r) | {"seconds": round(r.seconds, 4)} for r in results]})
    else:
        rows = [[r.arch, r.kernel, r.status, _dur(r.seconds), r.config or "-", r.key[:12] or "-",
                 r.path or (r.error.splitlines()[0] if r.error else "")] for r in results]
        print(_table(["arch", "kernel", "status", "time", "config", "key", "entry / error"], rows, right={3}))
        for r in results:
            if r.status == "failed" and "\n" in r.error:
                print(f"\n{r.arch}/{r.kernel} {r.config}: {r.error}")
        print(f"warmup: {counts['built']} built, {_n(counts['hit'], 'hit')}, {counts['failed']} failed in {_dur(total)} "
              f"(cache {root})")
    return 1 if counts["failed"] else 0


def _config_names(values: list[str] | None) -> list[str] | None:
    """--config NAME|all, repeatable and comma-separated."""
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    return names or None


# --------------------------------------------------------------------------------------------------- cache
def cmd_cache_ls(args) -> int:
    from .cachetool import human_size, list_entries
    from .cachetool import all_roots
    from .tuning import iter_records
    entries = list_entries(arch=args.arch, kernel=args.kernel, verify=args.verify, with_current=True)
    tuning = [] if args.kernel not in (None, "gemm_bf16") else list(iter_records(all_roots(), args.arch))
    if args.json:
        _emit_json({"entries": [e.to_json() for e in entries], "tuning": tuning})
        return 0
    if not entries:
        print(f"no entries in {', '.join(str(p) for p, _ in all_roots())}")
    else:
        rows = []
        for e in entries:
            status = e.status + (" (current)" if e.current else "")
            rows.append([e.arch, e.kernel, e.config, e.key[:12], human_size(e.size), _when(e.built_at),
                         _when(e.last_used), "root" if e.writable else e.layer, status])
        print(_table(["arch", "kernel", "config", "key", "size", "built", "last used", "layer", "status"], rows,
                     right={4}))
        if any(e.status == "unverified" for e in entries):
            print("(unverified: manifest present, module not checksummed; `python -m hkjit cache ls --verify` checks)")
    if tuning:
        print("\ntuning records (`python -m hkjit tune`; explain names the configuration a call uses):")
        rows = [[t["arch"], t["device"] or "?", (t["toolchain_key"] or "?")[:12], _when(t["recorded"]),
                 ", ".join(f"{s} {c}" for s, c in sorted(t["winners"].items())) or "-",
                 "root" if t["writable"] else t["layer"], t["status"]] for t in tuning]
        print(_table(["arch", "device", "toolchain", "recorded", "winners", "layer", "status"], rows))
    return 0


def cmd_cache_info(args) -> int:
    from .cachetool import cache_summary, entry_details, human_size
    if args.entry:
        details = entry_details(args.entry)
        if args.json:
            _emit_json({"entries": details})
        elif not details:
            print(f"no entry matches {args.entry!r} (give a key prefix, a kernel name or arch/kernel)")
        for d in [] if args.json else details:
            m = d.get("manifest") or {}
            print(f"{d['arch']}/{d['kernel']}-{d['key']}")
            print(f"  path        {d['path']} ({'root' if d['writable'] else 'read-only layer'})")
            print(f"  status      {d['status']}")
            print(f"  size        {human_size(d['size'])}  module {m.get('module_file', '?')}")
            print(f"  built       {_when(d['built_at'])} on {d['host'] or '?'} in {d['build_seconds']} s by hkjit "
                  f"{d['hkjit_version'] or '?'}")
            print(f"  last used   {_when(d['last_used'])}")
            ki = d.get("key_inputs") or {}
            print(f"  torch       {ki.get('torch', {}).get('version', '?')}   compiler {ki.get('compiler', '?')}")
            print(f"  flags       {json.dumps(ki.get('flags', {}))}")
            env = {k: v for k, v in (ki.get("env") or {}).items() if v}
            print(f"  env         {json.dumps(env) if env else '(none)'}")
            for rec in d["validation"]:
                kind = " (emulated, not a device run)" if rec.get("kind") == "emulated" else ""
                print(f"  validation  {'passed' if rec.get('passed') else 'FAILED'}{kind} on {rec.get('device')} "
                      f"({_when(rec.get('time'))}): {rec.get('detail')}")
        return 0 if details else 1
    s = cache_summary()
    if args.json:
        _emit_json(s)
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


def cmd_cache_verify(args) -> int:
    from .cachetool import verify
    results = verify(fix=args.fix, arch=args.arch, kernel=args.kernel)
    bad = [r for r in results if not r.ok]
    if args.json:
        _emit_json({"ok": not bad, "checked": len(results),
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
        print(f"verify: {_n(len(results), 'entry', 'entries')}, {len(bad)} bad{hint}")
    return 1 if bad else 0


def cmd_cache_clear(args) -> int:
    from .cachetool import clear, human_size
    from .cache import cache_root
    removed = clear(arch=args.arch, kernel=args.kernel, validation_only=args.validation)
    if args.json:
        _emit_json(removed.to_json() | {"root": str(cache_root())})
    elif args.validation:
        print(f"cleared {_n(len(removed.records), 'validation record')} in {cache_root()}")
    else:
        print(f"cleared {_n(len(removed.entries), 'entry', 'entries')}, "
              f"{_n(len(removed.records), 'validation record')}, {_n(len(removed.tuning), 'tuning record')}, "
              f"{_n(len(removed.other), 'other item')}: "
              f"{human_size(removed.bytes_freed)} freed in {cache_root()}")
    return 0


def cmd_cache_prune(args) -> int:
    from .cachetool import human_size, prune
    res = prune(args.max_size)
    if args.json:
        _emit_json(res.to_json())
        return 0
    for e in res.evicted:
        print(f"evicted {e.arch}/{e.kernel}-{e.key} ({human_size(e.size)}, last used {_when(e.last_used)})")
    if res.other:
        print(f"emptied trash: {len(res.other)} item(s)")
    print(f"prune: {human_size(res.before)} -> {human_size(res.after)} (limit {human_size(res.max_bytes)}), "
          f"{len(res.evicted)} evicted")
    if res.after > res.max_bytes:
        print("prune: still over the limit: what remains is builds in progress, locks and records")
    return 0


def cmd_cache_export(args) -> int:
    from .cachetool import export, human_size
    res = export(Path(args.file), arch=args.arch, kernel=args.kernel)
    if args.json:
        _emit_json(res.to_json())
    else:
        for e in res.entries:
            print(f"exported {e.arch}/{e.kernel}-{e.key} ({human_size(e.size)})")
        for p, why in res.skipped:
            print(f"skipped  {p}: {why}")
        if res.entries:
            print(f"export: {_n(len(res.entries), 'entry', 'entries')} -> {res.path} ({human_size(res.size)}, "
                  f"sha256 {res.sha256})")
    if not res.entries:
        _err("hkjit: nothing exported: no valid entry matches (build some with `python -m hkjit warmup --arch ...`)")
        return 1
    return 0


def cmd_cache_import(args) -> int:
    from .cachetool import import_archive
    from .cache import cache_root
    res = import_archive(Path(args.file), expect_sha256=args.expect_sha256)
    if args.json:
        _emit_json(res.to_json() | {"root": str(cache_root())})
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


def cmd_cache_why(args) -> int:
    from .cachetool import why
    res = why(args.kernel, args.arch)
    if args.json:
        _emit_json(res.to_json())
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


# --------------------------------------------------------------------------------------------------- doctor
def cmd_doctor(args) -> int:
    from .doctor import diagnose, format_report
    if args.arch:
        from .targets import target_for_arch
        for a in args.arch:
            target_for_arch(a)
    report = diagnose(args.arch)
    if args.json:
        _emit_json(report)
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1


# --------------------------------------------------------------------------------------------------- selftest
def cmd_selftest_emulate(args) -> int:
    if args.arch not in (None, "gfx950"):
        raise UsageError(f"--emulate: the emulator runs gfx950 code objects only (got --arch {args.arch})")
    if args.shapes:
        raise UsageError("--emulate runs its own grid of cases (one or two workgroups each); drop --shapes")
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    from .selftest import EMULATED_HEADER, emulated_selftest, format_emulated_row, format_emulated_summary
    streamed = not args.json

    def on_case(i, total, r):
        if streamed:
            if i == 0:
                print(EMULATED_HEADER)
            print(format_emulated_row(r), flush=True)

    rep = emulated_selftest(args.module, seeds=tuple(range(1, args.seeds + 1)), input_seed=args.seed,
                            record=not args.no_record,
                            say=(lambda m: None) if args.quiet else _err, on_case=on_case)
    if args.json:
        _emit_json(rep.to_json())
    else:
        print(format_emulated_summary(rep))
    return 0 if rep.passed else 1


def cmd_selftest(args) -> int:
    if args.emulate:
        return cmd_selftest_emulate(args)
    if args.module:
        raise UsageError("--module only goes with --emulate (the device selftest runs the cached module itself)")
    from .selftest import HEADER, LAYOUTS, Case, format_row, format_summary, selftest
    cases = None
    if args.shapes:
        layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
        bad = [x for x in layouts if x not in LAYOUTS]
        if bad:
            raise UsageError(f"--layouts: unknown {', '.join(bad)}; choose from {', '.join(LAYOUTS)}")
        cases = [Case(m, n, k, lay) for (m, n, k) in args.shapes for lay in layouts]
    streamed = not args.json

    def on_case(i, total, r):
        if streamed:
            if i == 0:
                print(HEADER)
            print(format_row(r), flush=True)

    rep = selftest(cases, arch=args.arch, seed=args.seed, record=not args.no_record,
                   say=(lambda m: None) if args.quiet else _err, on_case=on_case)
    if args.json:
        _emit_json(rep.to_json())
    else:
        print(format_summary(rep))
    return 0 if rep.passed else 1


# --------------------------------------------------------------------------------------------------- bench
def cmd_bench(args) -> int:
    from . import bench
    plot_error = None
    if args.plot and not bench.have_matplotlib():
        # one message, at the end beside the exit code: the table is still worth having (a device run may be rare)
        plot_error = ("--plot needs matplotlib, which is not installed: pip install 'hkjit[plot]' (or pip install "
                      "matplotlib); the table above was printed without the plot")
    shapes = [s for group in args.shapes for s in group] if args.shapes else None
    ctx, rows = bench.run(shapes, repeat=args.repeat, warmup=args.warmup, sets=args.sets,
                          say=(lambda m: None) if args.quiet else _err, configs=_config_names(args.configs))
    if args.plot and plot_error is None:
        bench.plot(ctx, rows, args.plot)
        _err(f"hkjit bench: plot written to {args.plot}")
    if args.json:
        extra = {"plot": args.plot if args.plot and not plot_error else None}
        _emit_json(bench.to_json(ctx, rows) | extra | ({"plot_error": plot_error} if plot_error else {}))
    else:
        print(bench.format_table(ctx, rows))
    if plot_error:
        _err(f"hkjit: error: {plot_error}")
        return 2
    return 0


# --------------------------------------------------------------------------------------------------- tune
def cmd_tune(args) -> int:
    from .tune import format_report, tune
    shapes = [s for group in args.shapes for s in group]
    try:
        rep = tune(shapes, configs=_config_names(args.configs), repeat=args.repeat, warmup=args.warmup,
                   sets=args.sets, record=not args.no_record, say=(lambda m: None) if args.quiet else _err)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.json:
        _emit_json(rep.to_json())
    else:
        print(format_report(rep))
    return 0 if all(r.winner for r in rep.rows) else 1


# --------------------------------------------------------------------------------------------------- parser
#: targets.KNOWN_ARCHS, repeated here so that `--help` does not import torch (tests/test_cli.py checks they agree)
KNOWN_ARCHS = ("cpu", "gfx950", "sm_90a")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", metavar="DIR",
                        help="the writable cache root (same as HKJIT_CACHE_DIR; read-only layers: HKJIT_CACHE_PATH)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress or log lines on stderr")
    js = argparse.ArgumentParser(add_help=False)
    js.add_argument("--json", action="store_true", help="print one machine-readable JSON document on stdout")
    archs = ", ".join(KNOWN_ARCHS)

    p = argparse.ArgumentParser(
        prog="python -m hkjit", description="hkjit: build ahead of time, manage the kernel cache, diagnose, test "
        "and benchmark.", epilog="exit codes: 0 ok, 1 a check failed, 2 usage or environment error")
    p.add_argument("--version", action="version", version=f"hkjit {__version__} (cache format {CACHE_FORMAT})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    w = sub.add_parser("warmup", parents=[common, js], help="build every kernel ahead of time (CI pre-baking too)",
                       description="Build (or find in the cache) every kernel for this device, or for the archs "
                       "named with --arch (no GPU needed). Exit 1 when a kernel fails to build.")
    w.add_argument("--arch", action="append", metavar="ARCH", help=f"arch to build for, repeatable ({archs}); "
                   "default: this machine's GPU")
    w.add_argument("--kernel", action="append", metavar="NAME", help="kernel to build, repeatable (default: all)")
    w.add_argument("--config", action="append", metavar="NAME|all", help="kernel configurations to build, "
                   "repeatable or comma-separated, or all (default: the arch's default, those the selection table "
                   "names and those a tuning record in the cache names)")
    w.add_argument("-j", "--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="parallel builds (default: %(default)s)")
    w.set_defaults(func=cmd_warmup)

    c = sub.add_parser("cache", help="list, verify, clear, prune, export, import the cache; explain a miss",
                       description="Manage the kernel cache (writable root HKJIT_CACHE_DIR / --cache-dir, "
                       "read-only layers HKJIT_CACHE_PATH).")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION")
    c.set_defaults(func=lambda a: (c.print_help(sys.stderr), 2)[1])

    def filt(sp, many: bool = False):
        action = "append" if many else "store"
        sp.add_argument("--arch", action=action, metavar="ARCH", help=f"only this arch ({archs})")
        sp.add_argument("--kernel", action=action, metavar="NAME", help="only this kernel")

    x = csub.add_parser("ls", parents=[common, js], help="one line per entry",
                        description="List the entries of the root and the layers: arch, kernel, key, size, built, "
                        "last used, layer, status ('unverified' unless --verify checked it; 'current': the one this process "
                        "would load).")
    filt(x)
    x.add_argument("--verify", action="store_true", help="checksum every module (slower)")
    x.set_defaults(func=cmd_cache_ls)
    x = csub.add_parser("info", parents=[common, js], help="where the cache is and what it holds; one entry's details",
                        description="Summarize the cache root and layers, or show one entry (key prefix, kernel, "
                        "or arch/kernel): manifest, key inputs, validation records.")
    x.add_argument("entry", nargs="?", help="key prefix (or kernel, or arch/kernel) of the entry to describe")
    x.set_defaults(func=cmd_cache_info)
    x = csub.add_parser("verify", parents=[common, js], help="check every entry; exit 1 naming bad ones",
                        description="Verify every entry's manifest, key and module checksum. Exit 1 if any is bad.")
    filt(x)
    x.add_argument("--fix", action="store_true", help=f"move bad entries of the writable root to {FORMAT_DIR}/{TRASH}")
    x.set_defaults(func=cmd_cache_verify)
    x = csub.add_parser("clear", parents=[common, js], help="remove entries (or only validation records)",
                        description="Remove entries of the writable root, with their validation records, trash and "
                        "failed build logs. --validation removes only the validation records (un-rejects a "
                        "toolchain that failed selftest).")
    filt(x)
    x.add_argument("--validation", action="store_true", help="remove only the validation records")
    x.set_defaults(func=cmd_cache_clear)
    x = csub.add_parser("prune", parents=[common, js], help="evict least recently used entries down to a size",
                        description="Evict least recently used entries of the writable root until its size is at "
                        "most SIZE (bytes, or K/M/G/T: powers of 1024).")
    x.add_argument("--max-size", type=_size_arg, required=True, metavar="SIZE", help="e.g. 500M, 2G, 1048576")
    x.set_defaults(func=cmd_cache_prune)
    x = csub.add_parser("export", parents=[common, js], help="write chosen entries to one archive",
                        description="Write the valid entries (root and layers; filter with --arch/--kernel) to one "
                        "tar archive (.tar.gz/.tgz: compressed) for `cache import` or HKJIT_CACHE_PATH elsewhere.")
    x.add_argument("file", metavar="FILE", help="archive to write (.tar, .tar.gz, .tgz)")
    filt(x, many=True)
    x.set_defaults(func=cmd_cache_export)
    x = csub.add_parser("import", parents=[common, js], help="unpack an archive, verified and atomic per entry",
                        description="Unpack an archive made by `cache export` into the writable root. Each entry is "
                        "verified, then renamed into place; valid existing entries are kept. Refuses archives of "
                        "another cache format (exit 2), and foreign, unsafe or corrupt members (exit 1).")
    x.add_argument("file", metavar="FILE", help="archive made by `python -m hkjit cache export`")
    x.add_argument("--expect-sha256", metavar="HEX", help="refuse the archive (exit 2, nothing imported) unless the "
                   "file's sha256 is HEX, as `cache export` printed it: an archive is code that hkjit will load")
    x.set_defaults(func=cmd_cache_import)
    x = csub.add_parser("why", parents=[common, js], help="explain a cache miss: key inputs diffed against the "
                        "nearest entry", description="Compute the current key inputs of KERNEL and diff them "
                        "against the nearest existing entry (fewest differing fields).")
    x.add_argument("kernel", nargs="?", default="gemm_bf16", metavar="KERNEL", help="default: %(default)s")
    x.add_argument("--arch", metavar="ARCH", help=f"default: this device's ({archs})")
    x.set_defaults(func=cmd_cache_why)

    d = sub.add_parser("doctor", parents=[common, js], help="what hkjit finds here, and what blocks a build",
                       description="Report torch, device, compilers, header libraries, cache and locks, env vars; "
                       "each problem with its fix. Exit 1 when something blocks a build for the checked archs.")
    d.add_argument("--arch", action="append", metavar="ARCH",
                   help=f"check building for this arch (repeatable; {archs}); default: this device's")
    d.set_defaults(func=cmd_doctor)

    s = sub.add_parser("selftest", parents=[common, js], help="hkjit.gemm vs a float64 reference on this device",
                       description="Run hkjit.gemm (kernel forced) over edge-case shapes with fresh random inputs "
                       "and poisoned outputs against float64; record the outcome for this (device, toolchain). "
                       "Exit 1 on any failure.")
    s.add_argument("--shapes", nargs="+", type=_shape_arg, metavar="MxNxK", help="shapes instead of the default grid")
    s.add_argument("--layouts", default="rows,bt", help="layouts for --shapes, comma-separated (rows, bt, a-strided, "
                   "a-t, batched; default: %(default)s)")
    s.add_argument("--arch", metavar="ARCH", help="the device to test: cpu, or the GPU's arch (default: the GPU if any)")
    s.add_argument("--seed", type=int, help="random seed (default: from the clock; printed)")
    s.add_argument("--no-record", action="store_true", help="do not write the validation record")
    s.add_argument("--emulate", action="store_true", help="gfx950 only, no GPU needed: run the cached entry's code "
                   "object on hkjit's gfx950 emulator (hazards and numbers over edge-case blocks); recorded as an "
                   "'emulated' validation, never as a device's")
    s.add_argument("--module", metavar="PATH", help="with --emulate: the code object to run instead of the cached "
                   "entry's: a cache entry folder (recorded there), a built HIP module (.so), an offload bundle or "
                   "a code object (.o/.co)")
    s.add_argument("--seeds", type=int, default=3, metavar="N", help="with --emulate: run every case under the "
                   "latency/interleaving seeds 1..N (seed 1: no memory operation lands before a wait forces it; "
                   "default: %(default)s)")
    s.set_defaults(func=cmd_selftest)

    b = sub.add_parser("bench", parents=[common, js], help="TFLOP/s of hkjit.gemm vs torch.matmul",
                       description="Time hkjit.gemm with the kernel forced, hkjit.gemm as users call it (the dispatch "
                       "policy's path) and torch.matmul per shape: median of timed calls after warm-up, input sets "
                       "rotated, the three functions alternated in rounds, device events on a GPU.")
    b.add_argument("--shapes", nargs="+", type=_shapes_arg, metavar="MxNxK|llm", help="shapes, or a named set "
                   "(llm: issue #16's shapes and Llama-3 8B/70B projections, prefill and decode), space- or comma-"
                   "separated; default: 1024..8192 cubes and ragged/skinny shapes on a GPU, 128..512 on the CPU")
    b.add_argument("--configs", action="append", metavar="all|NAME,...", help="also time the kernel forced in each "
                   "of these configurations (all: every one of this arch's)")
    b.add_argument("--repeat", type=int, metavar="N", help="timed calls per function and shape (GPU 200, CPU 10)")
    b.add_argument("--warmup", type=int, metavar="N", help="untimed calls first, at least one per input set (GPU 5, CPU 1)")
    b.add_argument("--sets", type=int, default=3, metavar="N", help="input sets rotated (default: %(default)s)")
    b.add_argument("--plot", metavar="FILE.png", help="plot the speed-up vs torch.matmul per shape, one bar per "
                   "configuration with --configs (needs matplotlib: hkjit[plot])")
    b.set_defaults(func=cmd_bench)

    t = sub.add_parser("tune", parents=[common, js], help="time the kernel configurations per shape; record the "
                       "winners in the cache", description="Time every candidate kernel configuration on this "
                       "device for each shape (bench's timing: rotated inputs, median of timed calls, device events "
                       "on a GPU), after checking each against float64, and record the winners in the cache for "
                       "this device and toolchain: later processes (and machines sharing the cache) use them for "
                       "those exact shapes. hkjit never tunes on a call path. Exit 1 when a shape has no correct "
                       "configuration, 2 on bad arguments or a cache that cannot be written.")
    t.add_argument("--shapes", nargs="+", type=_shapes_arg, required=True, metavar="llm|MxNxK,...",
                   help="shapes to tune (comma- or space-separated), or a named set (llm)")
    t.add_argument("--configs", action="append", metavar="all|NAME,...", help="candidate configurations (default: "
                   "all of this arch's)")
    t.add_argument("--repeat", type=int, metavar="N", help="timed calls per configuration and shape (GPU 200, CPU 10)")
    t.add_argument("--warmup", type=int, metavar="N", help="untimed calls first (GPU 5, CPU 1)")
    t.add_argument("--sets", type=int, default=3, metavar="N", help="input sets rotated (default: %(default)s)")
    t.add_argument("--no-record", action="store_true", help="report only; write no tuning record")
    t.set_defaults(func=cmd_tune)
    return p


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(getattr(args, "quiet", False))
    if getattr(args, "cache_dir", None):
        os.environ["HKJIT_CACHE_DIR"] = os.path.abspath(os.path.expanduser(args.cache_dir))
    if getattr(args, "jobs", 1) is not None and getattr(args, "jobs", 1) < 1:
        parser.error("--jobs must be at least 1")
    if getattr(args, "repeat", None) is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        return args.func(args)
    except HkjitError as e:            # UsageError and ConfigError included: one line, exit 2
        _err(f"hkjit: error: {e}")
        return 2
    except KeyboardInterrupt:
        _err("hkjit: interrupted")
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
