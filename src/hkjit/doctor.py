"""`python -m hkjit doctor`: what hkjit finds on this machine, and what stops it from building or running.

``diagnose(archs)`` gathers everything as one JSON-able dict (torch, device, per-arch toolchain and headers,
cache root and layers, locks, environment) plus a list of *problems*, each with the command or variable that
fixes it. A problem is ``blocking`` when it stops a build (or a run) for one of the archs checked: the current
device's arch by default, or the ``--arch`` values (check a CI pre-bake machine with ``--arch gfx950``).
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import env_in_force, env_str

LOW_SPACE = 1 << 30


@dataclass
class Problem:
    what: str          # the component: "compiler (gfx950)", "cache root", ...
    message: str
    fix: str
    blocking: bool     # stops a build/run for a checked arch

    def to_json(self) -> dict:
        return asdict(self)


def _torch_info() -> dict:
    import torch
    from .targets import torch_backend
    return {"version": torch.__version__, "backend": torch_backend(), "cuda": torch.version.cuda or "",
            "hip": torch.version.hip or "", "git": getattr(torch.version, "git_version", ""),
            "cxx11abi": bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True)), "path": os.path.dirname(torch.__file__)}


def _device_info(problems: list[Problem]) -> dict:
    import torch
    from .errors import HkjitError
    from .targets import detect_target
    out: dict = {"gpu": torch.cuda.is_available(), "count": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    if out["gpu"]:
        idx = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        out["name"] = props.name
        out["index"] = idx
        out["memory_gib"] = round(props.total_memory / 2 ** 30, 1)
        out["gcn_arch"] = getattr(props, "gcnArchName", "")
        out["capability"] = f"{props.major}.{props.minor}"
    else:
        out["name"] = "cpu"
    try:
        out["arch"] = detect_target().arch
    except HkjitError as e:
        out["arch"] = None
        problems.append(Problem("device", str(e), "use torch.matmul or HKJIT_DISPATCH=torch on this device", True))
    return out


def _library_info(name: str) -> dict:
    from .cache.layout import Layout
    from .cache.roots import cache_root
    from .cache.trust import check_root
    from .errors import HkjitError
    from .keys import library_hash
    from .libraries import LIBRARIES, find_library
    lib = LIBRARIES[name]
    out = {"env_var": lib.env_var, "env": env_str(lib.env_var), "url": lib.url}
    try:
        out["path"] = str(find_library(name))
        try:
            memo = str(Layout(cache_root()).memo)
            check_root(cache_root())          # trust: never read or write the memo of a refused root
        except HkjitError:
            memo = None
        out["hash"] = library_hash(name, memo)
        out["found"] = True
    except HkjitError as e:
        out.update(found=False, error=str(e))
    return out


def _arch_info(arch: str, libs: dict, problems: list[Problem], blocking: bool) -> dict:
    from .targets import check_can_build
    from .errors import HkjitError
    from .specs import specs_for
    from .targets import compiler_path, compiler_version, target_for_arch
    out: dict = {"checked": blocking}
    try:
        target = target_for_arch(arch)
        specs = specs_for(arch)
    except HkjitError as e:
        problems.append(Problem(f"arch {arch}", str(e), "name one of the known archs with --arch", True))
        return out
    out["backend"] = target.backend
    try:
        path = compiler_path(target)
        out["compiler"] = {"path": path, "version": compiler_version(path)}
    except HkjitError as e:
        out["compiler"] = {"path": None, "error": str(e)}
        fix = {"cpu": "apt-get install g++ (or set CXX)", "hip": "install ROCm (hipcc) or set ROCM_HOME/ROCM_PATH",
               "cuda": "install the CUDA toolkit (nvcc) or set CUDA_HOME"}[target.backend]
        problems.append(Problem(f"compiler ({arch})", str(e), fix, blocking))
    except (OSError, ValueError) as e:
        out["compiler"] = {"path": None, "error": f"--version failed: {e}"}
        problems.append(Problem(f"compiler ({arch})", f"the compiler does not run: {e}", "reinstall it", blocking))
    try:
        check_can_build(specs[0].arch, specs[0].name)
        out["torch_can_build"] = True
    except HkjitError as e:
        out["torch_can_build"] = False
        problems.append(Problem(f"torch ({arch})", str(e), {"hip": "pip install a ROCm build of torch",
                                                             "cuda": "pip install a CUDA build of torch"}.get(
            target.backend, "reinstall torch"), blocking))
    need = sorted({lib for s in specs for lib in s.libraries})
    out["libraries"] = need
    for lib in need:
        info = libs[lib]
        if not info.get("found"):
            problems.append(Problem(f"{lib} headers ({arch})", info.get("error", "not found"),
                                    f"git clone {info['url']} and export {info['env_var']}=<that folder>", blocking))
    return out


def _entry_state(arch: str, problems: list[Problem], blocking: bool) -> dict:
    """Whether the current key of each kernel for arch is cached, and its validation record on this device."""
    import torch
    from .errors import HkjitError
    from .cache.roots import cache_root
    from .keys import from_record
    from .loader import entry_key, find_published
    from .specs import specs_for
    from .cache.trust import check_root
    from .validation import device_label, read_record
    out = {}
    for spec in specs_for(arch):
        state: dict = {}
        try:
            root = cache_root()
            check_root(root)                  # trust: a refused root's memo.json is neither read nor written
            key, _inputs = entry_key(spec, root)
            state["key"] = key
            state["from_record"] = list(from_record(key))    # inputs not verifiable here (no compiler/headers)
            found = find_published(spec, key, root)
            state["cached"] = found is not None
            state["path"] = str(found[0]) if found else None
        except HkjitError as e:
            state["error"] = str(e)
            out[spec.name] = state
            continue
        if not found:
            problems.append(Problem(f"{spec.name} ({arch})", f"{spec.name} for {arch} is not in the cache: the first "
                                    f"hkjit.gemm call will compile it (about a minute)",
                                    f"python -m hkjit warmup --arch {arch}", False))
        label = None
        if arch == "cpu":
            label = "cpu"
        elif torch.cuda.is_available():
            try:
                label = device_label(torch.device("cuda", torch.cuda.current_device()))
            except Exception:
                label = None
        if label:
            rec = read_record(root, arch, spec.name, key, label)
            state["validation"] = None if rec is None else {"passed": rec.get("passed"), "detail": rec.get("detail"),
                                                            "device": label}
            if rec is not None and not rec.get("passed"):
                problems.append(Problem(f"{spec.name} ({arch})", f"this toolchain was rejected on {label}: "
                                        f"{rec.get('detail')} (hkjit.gemm refuses it)",
                                        "fix the toolchain, then `python -m hkjit cache clear --validation` and "
                                        "`python -m hkjit selftest`", blocking))
        if arch == "gfx950":
            state["emulated"] = emulated_state(root, arch, spec.name, key, problems)
        out[spec.name] = state
    return out


def emulated_state(root: Path, arch: str, kernel: str, key: str, problems: list[Problem]) -> dict | None:
    """The `selftest --emulate` record of an entry (a CI machine without the GPU ran its code object on the gfx950
    emulator): reported as such, never as a device validation; a failed one is a (non-blocking) problem."""
    from .validation import EMULATOR_LABEL, read_record
    rec = read_record(root, arch, kernel, key, EMULATOR_LABEL, kind="emulated")
    if rec is None:
        return None
    if not rec.get("passed"):
        problems.append(Problem(f"{kernel} ({arch})", f"the gfx950 emulator found this entry's code object wrong: "
                                f"{rec.get('detail')}", "rebuild with another ROCm, or report it with `python -m "
                                "hkjit doctor` output; `python -m hkjit selftest` on the GPU is the device check",
                                False))
    return {"passed": rec.get("passed"), "detail": rec.get("detail"), "time": rec.get("time")}


def _cache_info(problems: list[Problem]) -> dict:
    from .cache.admin import cache_summary
    from .cache.lock import NETWORK_FS
    from .config import human_size
    from .errors import HkjitError
    from .fsutil import filesystem_type
    try:
        summary = cache_summary()
    except HkjitError as e:
        problems.append(Problem("cache root", str(e), "export HKJIT_CACHE_DIR=<a writable folder>", True))
        return {"error": str(e)}
    root = summary["root"]
    if not root["writable"]:
        problems.append(Problem("cache root", f"{root['path']} is not writable: builds cannot be published",
                                "export HKJIT_CACHE_DIR=<a writable folder> (a read-only pre-baked cache goes in "
                                "HKJIT_CACHE_PATH)", True))
    elif root["free"] is not None and root["free"] < LOW_SPACE:
        problems.append(Problem("cache root", f"only {human_size(root['free'])} free at {root['path']}",
                                "python -m hkjit cache prune --max-size 2G, or point HKJIT_CACHE_DIR elsewhere", False))
    for layer in summary["layers"]:
        if not layer["exists"]:
            problems.append(Problem("cache layer", f"HKJIT_CACHE_PATH names {layer['path']}, which does not exist",
                                    "fix HKJIT_CACHE_PATH", False))
    _trust_info(summary, problems)
    ldir = Path(summary["lock_dir"])
    fstype = root.get("filesystem", "")
    locks = {"dir": str(ldir), "filesystem": filesystem_type(ldir), "cache_filesystem": fstype,
             "network_cache": fstype in NETWORK_FS, "explicit": bool(env_str("HKJIT_LOCK_DIR"))}
    from .fsutil import writable
    locks["writable"] = writable(ldir)
    if not locks["writable"]:
        problems.append(Problem("lock dir", f"{ldir} is not writable: builds cannot take their lock",
                                "export HKJIT_LOCK_DIR=<a local writable folder>", True))
    if locks["filesystem"] in NETWORK_FS:
        problems.append(Problem("lock dir", f"locks in {ldir} are on {locks['filesystem']}, where flock is unreliable",
                                "export HKJIT_LOCK_DIR=<a local folder, e.g. /tmp/hkjit-locks>", False))
    summary["locks"] = locks
    return summary


def _trust_info(summary: dict, problems: list[Problem]) -> None:
    """Whether the root and each layer may be trusted (trust.py): an untrusted root blocks, a layer is skipped."""
    from .cache.trust import TRUST_VAR, fix_hint, trust_report
    for layer in [summary["root"]] + summary["layers"]:
        layer["trust"] = t = trust_report(Path(layer["path"]))
        if t["trusted"]:
            continue
        if layer["role"] == "root":
            problems.append(Problem("cache root", f"refused: {t['reason']} (another user could replace the modules "
                                    f"hkjit loads)", fix_hint(layer["path"]), True))
        else:
            problems.append(Problem("cache layer", f"skipped: {t['reason']}", fix_hint(layer["path"]), False))
    summary["trusted_dirs_var"] = TRUST_VAR


def _build_tools(problems: list[Problem]) -> dict:
    ninja = shutil.which("ninja")
    out = {"ninja": ninja}
    if not ninja:
        problems.append(Problem("ninja", "ninja is not on PATH: torch's load_inline needs it for every build",
                                "pip install ninja", True))
    inc = sysconfig.get_paths().get("include", "")
    out["python_headers"] = inc if os.path.isfile(os.path.join(inc, "Python.h")) else None
    if not out["python_headers"]:
        problems.append(Problem("Python.h", f"Python development headers not found in {inc}",
                                f"apt-get install python{sys.version_info.major}.{sys.version_info.minor}-dev "
                                f"(or your distribution's python3-dev)", True))
    return out


def _settings(problems: list[Problem]) -> dict:
    from .config import lock_timeout
    from .policy import current_mode
    out = {}
    try:
        out["dispatch"] = current_mode()
    except ValueError as e:
        problems.append(Problem("HKJIT_DISPATCH", str(e), "unset HKJIT_DISPATCH or set auto, kernel or torch", True))
    try:
        out["lock_timeout"] = lock_timeout()
    except ValueError as e:
        problems.append(Problem("HKJIT_LOCK_TIMEOUT", str(e), "set HKJIT_LOCK_TIMEOUT to seconds, e.g. 900", True))
    return out


def _runs_prebaked(info: dict) -> bool:
    """Whether every kernel of an arch is cached under a key matched from a pre-baked entry's record (keys.
    resolve_key: the compiler or headers are absent here)."""
    kernels = info.get("kernels") or {}
    return bool(kernels) and all(k.get("cached") and k.get("from_record") for k in kernels.values())


def _run_only(p: Problem) -> Problem:
    return Problem(p.what, f"{p.message} (nothing can be built here; the pre-baked entries in the cache run, "
                           f"their compiler/header inputs taken from their records)", p.fix, False)


def diagnose(archs: list[str] | None = None) -> dict:
    """Everything doctor reports, as a JSON-able dict with "problems" and "ok" (no blocking problem)."""
    from .libraries import LIBRARIES
    from .targets import KNOWN_ARCHS
    from .version import CACHE_FORMAT, __version__
    from .specs import kernels_dir
    problems: list[Problem] = []
    report: dict = {
        "hkjit": {"version": __version__, "cache_format": CACHE_FORMAT, "package": str(Path(__file__).parent)},
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "soabi": sysconfig.get_config_var("SOABI") or ""},
        "platform": platform.platform(),
    }
    try:
        report["hkjit"]["kernels"] = str(kernels_dir())
    except FileNotFoundError as e:
        problems.append(Problem("kernels", str(e), "pip install --force-reinstall hkjit", True))
    report["torch"] = _torch_info()
    report["device"] = _device_info(problems)
    checked = list(archs) if archs else ([report["device"]["arch"]] if report["device"].get("arch") else [])
    report["target"] = checked
    report["settings"] = _settings(problems)
    report["build_tools"] = _build_tools(problems)
    report["libraries"] = {name: _library_info(name) for name in LIBRARIES}
    report["archs"] = {}
    prebaked: list[str] = []
    for arch in dict.fromkeys(checked + [a for a in KNOWN_ARCHS if a not in checked]):
        blocking = arch in checked
        sub: list[Problem] = []
        info = _arch_info(arch, report["libraries"], sub, blocking)
        if blocking and "backend" in info:
            info["kernels"] = _entry_state(arch, sub, blocking)
        report["archs"][arch] = info
        if blocking and _runs_prebaked(info):
            prebaked.append(arch)
            sub = [_run_only(p) if p.what in (f"compiler ({arch})", *(f"{lib} headers ({arch})" for lib in
                                                                        info.get("libraries", ()))) else p for p in sub]
        # problems of archs nobody asked about are not problems on this machine (gfx950 on a CPU box)
        problems += sub if blocking else []
    report["runs_prebaked"] = prebaked
    if checked and len(prebaked) == len(checked):
        # a node that only runs a pre-baked cache: what a build needs is missing, and nothing needs building
        problems[:] = [_run_only(p) if p.what in ("ninja", "Python.h") else p for p in problems]
    report["cache"] = _cache_info(problems)
    report["env"] = env_in_force()          # what config.VARS lists as set, and any HKJIT_* variable
    report["problems"] = [p.to_json() for p in problems]
    report["ok"] = not any(p.blocking for p in problems)
    return report


def _short(h: str | None) -> str:
    return (h or "")[:16]


def format_report(r: dict) -> str:
    """The human-readable doctor report."""
    from .config import human_size
    lines = []
    add = lines.append
    h, t, d = r["hkjit"], r["torch"], r["device"]
    add(f"hkjit {h['version']} (cache format {h['cache_format']}) at {h['package']}")
    add(f"  python      {r['python']['version']} ({r['python']['executable']})")
    extra = f"CUDA {t['cuda']}" if t["cuda"] else f"HIP {t['hip']}" if t["hip"] else "CPU-only build"
    add(f"  torch       {t['version']} ({extra}; extensions for: {t['backend']})")
    if d["gpu"]:
        add(f"  device      {d['name']} (cuda:{d['index']}, {d['memory_gib']} GiB) arch {d.get('arch') or 'unsupported'}")
    else:
        add(f"  device      no GPU: cpu (the reference kernel); arch {d.get('arch')}")
    add(f"  checking    {', '.join(r['target']) or '(nothing: no supported device)'}")
    bt = r["build_tools"]
    add(f"  ninja       {bt['ninja'] or 'NOT FOUND'}")
    add(f"  Python.h    {bt['python_headers'] or 'NOT FOUND'}")
    s = r["settings"]
    add(f"  dispatch    {s.get('dispatch', 'INVALID')}   lock timeout {s.get('lock_timeout', 'INVALID')} s")
    add("toolchains")
    for arch, a in r["archs"].items():
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
    for name, lib in r["libraries"].items():
        if lib.get("found"):
            add(f"  {name:<15} {lib['path']}  (content {_short(lib['hash'])}…)")
        else:
            add(f"  {name:<15} not found ({lib['env_var']} {'= ' + lib['env'] if lib['env'] else 'unset'})")
    c = r["cache"]
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
    if r["env"]:
        for k, v in r["env"].items():
            add(f"  {k}={v}")
    else:
        add("  (no HKJIT_* or toolchain variables set)")
    probs = r["problems"]
    if probs:
        add("problems")
        for p in probs:
            add(f"  {'BLOCKS' if p['blocking'] else 'note  '} {p['what']}: {p['message']}")
            add(f"         fix: {p['fix']}")
    target = ", ".join(r["target"]) or "this device"
    n_block = sum(p["blocking"] for p in probs)
    if r["ok"] and r["target"] and r.get("runs_prebaked") == r["target"]:
        add(f"doctor: ok: the pre-baked entries run for {target} (nothing can be built here)")
        return "\n".join(lines)
    add(f"doctor: {'ok' if r['ok'] else 'FAILED'}: " + (f"nothing blocks a build for {target}" if r["ok"] else
                                                        f"{n_block} problem(s) block a build for {target}"))
    return "\n".join(lines)
