"""`python -m hkjit doctor`: what hkjit finds on this machine, and what stops it from building or running.

``diagnose(archs)`` gathers everything into a ``Report`` (torch, device, per-arch toolchain and headers, cache
root and layers, locks, environment) plus a list of *problems*, each with the command or variable that fixes it;
it formats nothing (cli/doctor.py prints it as text or JSON). The toolchain part is the build request
(toolchain.resolve) of each arch's kernel: the compiler and headers shown are those the key hashes and a build
uses. A problem is ``blocking`` when it stops a build (or a run) for one of the archs checked: the current
device's arch by default, or the ``--arch`` values (check a CI pre-bake machine with ``--arch gfx950``).
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import sysconfig
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

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


@dataclass
class Report:
    """What doctor found. Each section is a JSON-able dict (its keys are the --json output's); problems: each
    with its fix; ok: no problem blocks a build (or a run) for the archs in `target`."""
    hkjit: dict
    python: dict
    platform: str
    torch: dict
    device: dict
    target: list
    settings: dict
    build_tools: dict
    libraries: dict
    archs: dict
    runs_prebaked: list
    cache: dict
    env: dict
    problems: list
    ok: bool

    def to_json(self) -> dict:
        """The --json document: the fields in order, problems as dicts."""
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["problems"] = [p.to_json() for p in self.problems]
        return doc


def _torch_info() -> dict:
    import torch
    from .toolchain import torch_backend
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


def _library_info(lib) -> dict:
    """A header library as the build requests found it (toolchain.HeaderLibrary)."""
    from .libraries import LIBRARIES
    meta = LIBRARIES[lib.name]
    out: dict[str, object] = {"env_var": meta.env_var, "env": env_str(meta.env_var), "url": meta.url}
    if lib.hash is not None:
        out.update(path=lib.include_dir, hash=lib.hash, found=True)
    else:
        out.update(found=False, error=lib.error)
    return out


def _arch_info(arch: str, request_of: Callable, libs: dict, problems: list[Problem], blocking: bool) -> dict:
    """The arch's compiler (from its kernel's build request), whether this torch can build for it, and its
    header libraries."""
    from .errors import HkjitError
    from .specs import specs_for
    from .targets import target_for_arch
    from .toolchain import check_can_build
    out: dict = {"checked": blocking}
    try:
        target = target_for_arch(arch)
        specs = specs_for(arch)
    except HkjitError as e:
        problems.append(Problem(f"arch {arch}", str(e), "name one of the known archs with --arch", True))
        return out
    out["backend"] = target.backend
    request = request_of(specs[0])
    if isinstance(request, (OSError, ValueError)):
        out["compiler"] = {"path": None, "error": f"--version failed: {request}"}
        problems.append(Problem(f"compiler ({arch})", f"the compiler does not run: {request}", "reinstall it",
                                blocking))
    elif request.compiler is not None:
        out["compiler"] = {"path": request.compiler, "version": request.compiler_version}
    else:
        error = dict(request.missing)["compiler"]
        out["compiler"] = {"path": None, "error": error}
        fix = {"cpu": "apt-get install g++ (or set CXX)", "hip": "install ROCm (hipcc) or set ROCM_HOME/ROCM_PATH",
               "cuda": "install the CUDA toolkit (nvcc) or set CUDA_HOME"}[target.backend]
        problems.append(Problem(f"compiler ({arch})", error, fix, blocking))
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


def _entry_state(arch: str, request_of: Callable, problems: list[Problem], blocking: bool) -> dict:
    """Whether the current key of each kernel for arch is cached, and its validation record on this device."""
    import torch
    from .errors import HkjitError
    from .cache.roots import cache_root
    from .keys import from_record, resolve_key
    from .loader import find_published
    from .specs import specs_for
    from .cache.trust import check_root
    from .validation import device_label, read_record
    out = {}
    for spec in specs_for(arch):
        state: dict = {}
        try:
            root = cache_root()
            check_root(root)                  # trust: a refused root's memo.json is neither read nor written
            request = request_of(spec)
            if isinstance(request, Exception):
                raise request
            key, _inputs = resolve_key(request, root)
            state["key"] = key
            state["from_record"] = list(from_record(key))    # inputs not verifiable here (no compiler/headers)
            found = find_published(spec, key, root)
            state["cached"] = found is not None
            state["path"] = str(found.path) if found else None
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
    out: dict[str, object] = {}
    try:
        out["dispatch"] = current_mode()
    except ValueError as e:
        problems.append(Problem("HKJIT_DISPATCH", str(e), "unset HKJIT_DISPATCH or set auto, kernel or torch", True))
    try:
        out["lock_timeout"] = lock_timeout()
    except ValueError as e:
        problems.append(Problem("HKJIT_LOCK_TIMEOUT", str(e), "set HKJIT_LOCK_TIMEOUT to seconds, e.g. 900", True))
    problems += _unknown_variables()
    return out


def _unknown_variables() -> list[Problem]:
    """A note per HKJIT_* variable that is set but read by nothing: a misspelt name is otherwise silently ignored
    (HKJIT_CAHCE_DIR leaves the cache where it was). Not blocking: it changes nothing."""
    import difflib

    from .config import VARS, unknown_hkjit_vars
    notes = []
    for name in unknown_hkjit_vars():
        close = difflib.get_close_matches(name, list(VARS), n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}? " if close else ""
        notes.append(Problem(name, f"{name} is set, but hkjit reads no variable of that name (a typo, or one from "
                             f"another version): it has no effect", f"{hint}unset it; README's Environment "
                             f"variables table lists the ones hkjit reads", False))
    return notes


def _runs_prebaked(info: dict) -> bool:
    """Whether every kernel of an arch is cached under a key matched from a pre-baked entry's record (keys.
    resolve_key: the compiler or headers are absent here)."""
    kernels = info.get("kernels") or {}
    return bool(kernels) and all(k.get("cached") and k.get("from_record") for k in kernels.values())


def _run_only(p: Problem) -> Problem:
    return Problem(p.what, f"{p.message} (nothing can be built here; the pre-baked entries in the cache run, "
                           f"their compiler/header inputs taken from their records)", p.fix, False)


def _memo_path() -> Path | None:
    """The cache root's memo.json, or None when the root is refused (trust: its memo is neither read nor
    written)."""
    from .cache.layout import Layout
    from .cache.roots import cache_root
    from .cache.trust import check_root
    from .errors import HkjitError
    try:
        root = cache_root()
        check_root(root)
    except HkjitError:
        return None
    return Layout(root).memo


def _request_resolver(memo: Path | None) -> Callable:
    """spec -> its build request (toolchain.resolve), resolved once per spec; a compiler that does not run
    (OSError, ValueError from `--version`) is returned, not raised, for doctor to report."""
    from .toolchain import resolve
    done: dict = {}

    def request_of(spec):
        if spec not in done:
            try:
                done[spec] = resolve(spec, memo)
            except (OSError, ValueError) as e:
                done[spec] = e
        return done[spec]
    return request_of


def _libraries(request_of: Callable, memo: Path | None) -> dict:
    """Every known header library, as the build requests found it (one not needed by any kernel: found alone)."""
    from .libraries import LIBRARIES
    from .specs import SPECS
    from .cache.memo import Memo
    from .toolchain import header_library
    found = {}
    for spec in SPECS:
        request = request_of(spec)
        if not isinstance(request, Exception):
            found.update({lib.name: lib for lib in request.libraries})
    return {name: _library_info(found.get(name) or header_library(name, Memo(memo))) for name in LIBRARIES}


def diagnose(archs: list[str] | None = None) -> Report:
    """Everything doctor reports (a Report: "problems", and "ok" when no problem blocks); formats nothing."""
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
    memo = _memo_path()
    request_of = _request_resolver(memo)
    report["libraries"] = _libraries(request_of, memo)
    report["archs"] = {}
    prebaked: list[str] = []
    for arch in dict.fromkeys(checked + [a for a in KNOWN_ARCHS if a not in checked]):
        blocking = arch in checked
        sub: list[Problem] = []
        info = _arch_info(arch, request_of, report["libraries"], sub, blocking)
        if blocking and "backend" in info:
            info["kernels"] = _entry_state(arch, request_of, sub, blocking)
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
    return Report(**report, problems=problems, ok=not any(p.blocking for p in problems))
