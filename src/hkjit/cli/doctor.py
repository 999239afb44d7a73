"""`hkjit doctor`: what hkjit finds here (hkjit.doctor gathers a Report, this module prints it), exit 1 when a
build is blocked."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import ARCHS, add_arch_option, emit_json, parents

if TYPE_CHECKING:
    from ..doctor import Report


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("doctor", parents=parents(), help="what hkjit finds here, and what blocks a build",
                       description="Report torch, device, compilers, header libraries, cache and locks, env vars; "
                       "each problem with its fix. Exit 1 when something blocks a build for the checked archs.")
    add_arch_option(d, f"check building for this arch (repeatable; {ARCHS}); default: this device's", repeat=True)
    d.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import diagnose
    if args.arch:
        from ..targets import target_for_arch
        for a in args.arch:
            target_for_arch(a)
    report = diagnose(args.arch)
    if args.json:
        emit_json(report.to_json())
    else:
        print(format_report(report))
    return 0 if report.ok else 1


def _short(h: str | None) -> str:
    return (h or "")[:16]


def format_report(r: Report) -> str:
    """The human-readable doctor report."""
    from ..config import human_size
    lines: list[str] = []
    add = lines.append
    h, t, d = r.hkjit, r.torch, r.device
    add(f"hkjit {h['version']} (cache format {h['cache_format']}) at {h['package']}")
    add(f"  python      {r.python['version']} ({r.python['executable']})")
    extra = f"CUDA {t['cuda']}" if t["cuda"] else f"HIP {t['hip']}" if t["hip"] else "CPU-only build"
    add(f"  torch       {t['version']} ({extra}; extensions for: {t['backend']})")
    if d["gpu"]:
        add(f"  device      {d['name']} (cuda:{d['index']}, {d['memory_gib']} GiB) arch {d.get('arch') or 'unsupported'}")
    else:
        add(f"  device      no GPU: cpu (the reference kernel); arch {d.get('arch')}")
    add(f"  checking    {', '.join(r.target) or '(nothing: no supported device)'}")
    bt = r.build_tools
    add(f"  ninja       {bt['ninja'] or 'NOT FOUND'}")
    add(f"  Python.h    {bt['python_headers'] or 'NOT FOUND'}")
    s = r.settings
    add(f"  dispatch    {s.get('dispatch', 'INVALID')}   lock timeout {s.get('lock_timeout', 'INVALID')} s")
    add("toolchains")
    for arch, a in r.archs.items():
        mark = "" if a.get("checked") else "  (not checked: another device)"
        c = a.get("compiler") or {}
        comp = f"{c['path']}  [{c.get('version', '')}]" if c.get("path") else "NOT FOUND"
        add(f"  {arch:<8} compiler {comp}{mark}")
        if "torch_can_build" in a and not a["torch_can_build"]:
            add(f"  {'':<8} torch    {t['version']} cannot build {a['backend']} extensions")
        for kname, k in (a.get("kernels") or {}).items():
            if "error" in k:
                add(f"  {'':<8} {kname}: key not computable ({k['error'].splitlines()[0]})")
                continue
            state = f"cached at {k['path']}" if k.get("cached") else "not cached"
            if "validation" not in k:
                vtxt = ""
            elif k["validation"] is None:
                vtxt = ", validation: none yet"
            else:
                vtxt = f", validation: {'passed' if k['validation']['passed'] else 'FAILED'}"
            if k.get("emulated") is not None:
                vtxt += f", emulated (not a device run): {'passed' if k['emulated']['passed'] else 'FAILED'}"
            elif "emulated" in k:
                vtxt += ", emulated: none yet (`python -m hkjit selftest --arch gfx950 --emulate`)"
            add(f"  {'':<8} {kname}: key {_short(k['key'])}… {state}{vtxt}")
            if k.get("from_record"):
                add(f"  {'':<8} {'':<{len(kname)}}  pre-baked: {', '.join(k['from_record'])} taken from the entry's "
                    f"key.json, not verified here (everything else matched)")
    add("headers")
    for name, lib in r.libraries.items():
        if lib.get("found"):
            add(f"  {name:<15} {lib['path']}  (content {_short(lib['hash'])}…)")
        else:
            add(f"  {name:<15} not found ({lib['env_var']} {'= ' + lib['env'] if lib['env'] else 'unset'})")
    c = r.cache
    add("cache")
    if "error" in c:
        add(f"  ERROR {c['error']}")
    else:
        for layer in [c["root"]] + c["layers"]:
            free = human_size(layer["free"]) if layer["free"] is not None else "?"
            flags = ("writable" if layer["writable"] else "read-only") if layer["exists"] else "missing"
            fs = f", {layer['filesystem']}" if layer.get("filesystem") else ""
            add(f"  {layer['role']:<6} {layer['path']}  ({flags}{fs}, {free} free, {layer['entries']} entr{'y' if layer['entries'] == 1 else 'ies'}, "
                f"{human_size(layer['size'])})")
            if "trust" in layer:
                tr = layer["trust"]
                verdict = ("trusted (HKJIT_TRUSTED_CACHE_DIRS)" if tr["explicit"] else
                           "trusted (owned by you or root, writable by nobody else)") if tr["trusted"] else \
                    ("REFUSED: " if layer["role"] == "root" else "SKIPPED: ") + tr["reason"]
                add(f"  {'':<6} trust  {verdict}")
        lk = c["locks"]
        add(f"  locks  {lk['dir']}  ({lk['filesystem'] or '?'}{', HKJIT_LOCK_DIR' if lk['explicit'] else ''}"
            f"{', writable' if lk['writable'] else ', NOT writable'})")
    add("environment")
    if r.env:
        for k, v in r.env.items():
            add(f"  {k}={v}")
    else:
        add("  (no HKJIT_* or toolchain variables set)")
    probs = r.problems
    if probs:
        add("problems")
        for p in probs:
            add(f"  {'BLOCKS' if p.blocking else 'note  '} {p.what}: {p.message}")
            add(f"         fix: {p.fix}")
    target = ", ".join(r.target) or "this device"
    n_block = sum(p.blocking for p in probs)
    if r.ok and r.target and r.runs_prebaked == r.target:
        add(f"doctor: ok: the pre-baked entries run for {target} (nothing can be built here)")
        return "\n".join(lines)
    add(f"doctor: {'ok' if r.ok else 'FAILED'}: " + (f"nothing blocks a build for {target}" if r.ok else
                                                        f"{n_block} problem(s) block a build for {target}"))
    return "\n".join(lines)
