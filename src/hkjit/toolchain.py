"""The build request: every toolchain fact a kernel's build depends on, resolved once into one record.

``resolve(spec, memo_path)`` finds the compiler (the way torch's cpp_extension finds it, without importing
cpp_extension) and its identity, torch's identity, the header libraries (include dir and content hash), the
build-affecting environment (config.VARS' ``build`` variables), the include dirs and flags, and our kernel
sources with their content hashes. The result, a ``BuildRequest``, is the single source of two things:

- the cache key: ``keys.key_inputs_of(request)`` is a pure function of its fields;
- the build: ``request.worker_request(...)`` is what builder.py hands to the load_inline worker (sources, flags,
  include dirs, the environment, the compiler pinned), nothing derived again.

So what is hashed is, by construction, what is built (tests/test_toolchain.py checks it field by field). doctor
reports the same record.

Three facts cost a subprocess or reading files: the compiler's version, our sources' hashes and a header tree's
hash. All are memoized on disk (``Memo``, ``Layout.memo``: ``<cache>/v1/memo.json``) keyed by the stat signature
(inode, size, mtime, ctime) of the files they come from, so a warm start in a fresh process costs a few stats,
not a `--version` run or a read of every header. Content hashes are xxh3-128 (xxhash is imported only when
something must be hashed), stat signatures blake2b-128 from hashlib, which torch has already imported.

The records are ``records.Record`` subclasses, not dataclasses: this module is on every warm start's path, and
defining two frozen dataclasses costs ~3 ms in a fresh process (the warm start's whole budget is ~5 ms).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

from .cache.memo import Memo, file_identity, stat_signature
from .config import BUILD_ENV_VARS, build_env, env_str
from .errors import MissingLibraryError, UnsupportedTargetError
from .fsutil import file_xxh3
from .libraries import find_library, tree_hash, tree_listing
from .records import Record
from .specs import KernelSpec, kernels_dir
from .targets import Target, target_for_arch


def listing_signature(root: Path, dirs: list[str], files: list[str]) -> str | None:
    """The stat identity of a tree listing (libraries.tree_listing): inode, mtime and ctime of each folder (they
    change when an entry is added, removed or renamed) and each file's identity. None when a recorded path is
    gone."""
    base = str(root) + os.sep
    rows: list[tuple[int, ...]] = []
    try:
        for rel in dirs:
            st = os.stat(base + rel)
            rows.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
        for rel in files:
            rows.append(file_identity(os.stat(base + rel)))
    except OSError:
        return None
    return hashlib.blake2b(repr((dirs, files, rows)).encode(), digest_size=16).hexdigest()


def source_hash(path: Path, memo: Memo) -> str:
    return memo.get(f"file:{path}", stat_signature(str(path)), lambda: file_xxh3(path))   # hashed only when the file changed


def library_hash(include_dir: Path, memo: Memo) -> str:
    """The content hash of a header library's include tree (libraries.tree_hash), memoized by its listing."""
    name = f"tree:{include_dir}"
    hit = memo.peek(name)
    if hit is not None and isinstance(hit[1], dict):
        # A warm start stats the recorded folders and files (no directory walk): an added, removed or renamed
        # file changes its folder's mtime, an edit changes the file's own identity.
        if listing_signature(include_dir, hit[1]["dirs"], hit[1]["files"]) == hit[0]:
            return hit[1]["hash"]
    dirs, files = tree_listing(include_dir)
    signature = listing_signature(include_dir, dirs, files)
    digest = tree_hash(include_dir, files)
    if signature is not None:           # None: a file vanished while listing; hashed, not memoized
        memo.put(name, signature, {"hash": digest, "dirs": dirs, "files": files})
    return digest


# ------------------------------------------------------------------------------------------------ compilers
def torch_backend() -> str:
    """Which device backend this torch build can compile extensions for."""
    if torch.version.hip:
        return "hip"
    if torch.version.cuda:
        return "cuda"
    return "cpu"


def torch_identity() -> dict:
    """What of torch changes a built extension: its version and build, the GPU toolkit it was built with, its
    C++ ABI."""
    return {
        "version": torch.__version__,
        "git": getattr(torch.version, "git_version", ""),
        "hip": torch.version.hip or "",
        "cuda": torch.version.cuda or "",
        "cxx11abi": bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True)),
    }


def check_can_build(arch: str, kernel: str) -> None:
    """Raise UnsupportedTargetError unless this torch can build `kernel` for `arch`.

    load_inline compiles device code only for the GPU platform torch was built for. Such a torch cannot hit a
    cached entry of that arch either (the key holds torch's HIP/CUDA version), so the loader checks this first:
    the error names the real blocker, not whatever the key computation would trip on."""
    need = target_for_arch(arch).backend
    have = torch_backend()
    if need != "cpu" and need != have:
        wanted = {"hip": "a ROCm build of torch (hipcc)", "cuda": "a CUDA build of torch (nvcc)"}[need]
        raise UnsupportedTargetError(
            f"building {kernel} for {arch} needs {wanted}; this torch is {torch.__version__} ({have}). "
            f"Pre-bake on a machine with that torch installed (it needs no GPU), then ship the cache "
            f"(`python -m hkjit cache export` / HKJIT_CACHE_PATH)")


def _which(*candidates: str | None) -> str | None:
    for c in candidates:
        if not c:
            continue
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def compiler_path(target: Target) -> str:
    """The compiler torch's load_inline will run for `target`'s device code (host C++ compiler for cpu)."""
    if target.backend == "cpu":
        path = _which(env_str("CXX") or None, "c++", "g++", "clang++")
        fix = "install a C++ compiler (e.g. apt-get install g++) or set CXX"
    elif target.backend == "hip":
        home = env_str("ROCM_HOME") or env_str("ROCM_PATH") or "/opt/rocm"
        path = _which(os.path.join(home, "bin", "hipcc"), "hipcc")
        fix = "install ROCm (hipcc) or set ROCM_HOME / ROCM_PATH"
    else:
        home = env_str("CUDA_HOME") or env_str("CUDA_PATH") or "/usr/local/cuda"
        path = _which(os.path.join(home, "bin", "nvcc"), "nvcc")
        fix = "install the CUDA toolkit (nvcc) or set CUDA_HOME"
    if path is None:
        raise MissingLibraryError(f"no compiler found for {target.arch}: {fix}; `python -m hkjit doctor` shows what was found")
    return path


def compiler_version(path: str) -> str:
    """First meaningful line(s) of `<compiler> --version`: the compiler's identity for the cache key."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    # nvcc prints its release on the last lines; gcc/clang/hipcc on the first ones.
    keep = [ln for ln in lines if "release" in ln.lower() or "version" in ln.lower()] or lines[:1]
    return " | ".join(keep[:3])


@functools.lru_cache(maxsize=None)
def _compiler(arch: str, memo_path: str | None) -> tuple[str, str]:
    """(path, identity) of arch's compiler; the identity is memoized by the stat signature of the real file."""
    path = compiler_path(target_for_arch(arch))
    real = os.path.realpath(path)
    identity = Memo(Path(memo_path) if memo_path else None).get(f"compiler:{real}", stat_signature(real),
                                                                  lambda: compiler_version(real))
    return path, identity


def compiler_pin(backend: str, path: str) -> dict[str, str]:
    """The variable that makes torch's load_inline run the compiler at `path` (the one whose identity is hashed):
    CXX for CPU builds, ROCM_HOME / CUDA_HOME (the folder above bin/) for hipcc / nvcc."""
    if backend == "cpu":
        return {"CXX": path}
    home = os.path.dirname(os.path.dirname(path))
    return {"ROCM_HOME": home} if backend == "hip" else {"CUDA_HOME": home}


# ------------------------------------------------------------------------------------------------ the request
class HeaderLibrary(Record):
    """A header library a kernel includes: its include dir and content hash (None both, and `error` saying why,
    when it is not found here)."""
    __slots__ = ("name", "include_dir", "hash", "error")
    _defaults = {"include_dir": None, "hash": None, "error": ""}
    name: str
    include_dir: str | None
    hash: str | None
    error: str


class Source(Record):
    """One of our kernel files: name (relative to kernels/), absolute path, content hash, and role: "host" and
    "device" files are compiled, "header" files are included through the kernels/ include dir."""
    __slots__ = ("name", "path", "hash", "role")
    name: str
    path: str
    hash: str
    role: str


class BuildRequest(Record):
    """Everything one build of `spec` depends on, resolved once (see the module docstring).

    compiler / compiler_version: path and identity (None when no compiler is found: `missing` says why);
    torch: torch_identity() as sorted pairs; python: the extension suffix (carries the SOABI); libraries: one
    HeaderLibrary per spec.libraries; env: every build-affecting variable (config.BUILD_ENV_VARS) as (name,
    value) pairs, "" when unset; include_dirs: kernels/ first, then each library's; cflags / device_cflags /
    ldflags / functions: the spec's own; extra_cflags: HKJIT_EXTRA_CFLAGS split (added to both compiles; the
    variable itself is in env); sources: our files with their hashes; missing: (key input field, message) of
    each input this machine cannot compute ("compiler", "libraries.<name>"): a node that only runs a pre-baked
    cache has neither."""
    __slots__ = ("spec", "backend", "compiler", "compiler_version", "torch", "python", "libraries", "env",
                 "include_dirs", "cflags", "device_cflags", "ldflags", "functions", "extra_cflags", "sources",
                 "missing")
    spec: KernelSpec
    backend: str
    compiler: str | None
    compiler_version: str | None
    torch: tuple[tuple[str, Any], ...]
    python: str
    libraries: tuple[HeaderLibrary, ...]
    env: tuple[tuple[str, str], ...]
    include_dirs: tuple[str, ...]
    cflags: tuple[str, ...]
    device_cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    functions: tuple[str, ...]
    extra_cflags: tuple[str, ...]
    sources: tuple[Source, ...]
    missing: tuple[tuple[str, str], ...]

    def sources_of(self, role: str) -> list[str]:
        return [s.path for s in self.sources if s.role == role]

    def compile_flags(self, device: bool) -> list[str]:
        """The flags of the host (device=False) or device compile: the spec's, -I of each include dir, then the
        extra ones."""
        own = self.device_cflags if device else self.cflags
        return list(own) + [f"-I{d}" for d in self.include_dirs] + list(self.extra_cflags)

    def worker_env(self) -> dict[str, str]:
        """The variables the build worker sets before load_inline ("" unsets one): the build-affecting
        environment as hashed, and the compiler pinned to the one whose identity is hashed."""
        pin = compiler_pin(self.backend, self.compiler) if self.compiler else {}
        return {**dict(self.env), **pin}

    def worker_request(self, name: str, build_dir: Path) -> dict:
        """The JSON the build worker (_buildworker.py) hands to load_inline: all of it from this record."""
        return {
            "name": name,
            "host_sources": self.sources_of("host"),
            "device_sources": self.sources_of("device"),
            "functions": list(self.functions),
            "cflags": self.compile_flags(device=False),
            "device_cflags": self.compile_flags(device=True),
            "ldflags": list(self.ldflags),
            "build_directory": str(build_dir),
            "env": self.worker_env(),
        }


def header_library(name: str, memo: Memo) -> HeaderLibrary:
    """Library `name` as found here (HIPKITTENS_ROOT / THUNDERKITTENS_ROOT, then the documented places)."""
    try:
        inc = find_library(name)
    except MissingLibraryError as e:
        return HeaderLibrary(name, error=str(e))
    return HeaderLibrary(name, str(inc), library_hash(inc, memo))


def resolve(spec: KernelSpec, memo_path: Path | str | None = None) -> BuildRequest:
    """The build request of `spec` on this machine. memo_path: the cache root's memo.json (Layout.memo), None
    for no on-disk memo (a refused root's memo is neither read nor written).

    Never raises for an absent compiler or header library: those land in `missing` (keys.resolve_key then
    looks for a pre-baked entry; the builder refuses to build)."""
    memo_str = str(memo_path) if memo_path else None
    memo = Memo(Path(memo_str) if memo_str else None)
    kdir = kernels_dir()
    missing: list[tuple[str, str]] = []
    libraries = tuple(header_library(lib, memo) for lib in spec.libraries)
    missing += [(f"libraries.{lib.name}", lib.error) for lib in libraries if lib.hash is None]
    try:
        compiler, identity = _compiler(spec.arch, memo_str)
    except MissingLibraryError as e:
        compiler = identity = None      # type: ignore[assignment]
        missing.append(("compiler", str(e)))
    roles = [(f, "host") for f in spec.host_sources] + [(f, "device") for f in spec.device_sources] + \
        [(f, "header") for f in spec.headers]
    paths = [(f, kdir / f, role) for f, role in roles]
    sources = tuple(Source(f, str(path), source_hash(path, memo), role) for f, path, role in paths)
    env = build_env()
    return BuildRequest(
        spec=spec, backend=target_for_arch(spec.arch).backend, compiler=compiler, compiler_version=identity,
        torch=tuple(sorted(torch_identity().items())),
        python=importlib.machinery.EXTENSION_SUFFIXES[0],      # carries the SOABI; sysconfig costs ms
        libraries=libraries, env=tuple((name, env[name]) for name in BUILD_ENV_VARS),
        include_dirs=(str(kdir),) + tuple(lib.include_dir for lib in libraries if lib.include_dir),
        cflags=spec.cflags, device_cflags=spec.device_cflags, ldflags=spec.ldflags, functions=spec.functions,
        extra_cflags=tuple(env["HKJIT_EXTRA_CFLAGS"].split()), sources=sources, missing=tuple(missing))
