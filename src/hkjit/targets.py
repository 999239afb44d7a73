"""Target detection: which architecture a tensor's device is, and which compiler builds for it.

An arch string names everything downstream: the kernel spec (specs.py), the cache folder (v1/<arch>/...) and the
compiler. Three exist: ``cpu`` (the portable C++ reference kernel, built by the host C++ compiler), ``gfx950``
(AMD MI350X/MI355X, read from a ROCm torch's ``gcnArchName``, built by hipcc) and ``sm_90a`` (NVIDIA Hopper,
compute capability 9.0, built by nvcc). The compiler is located the way torch.utils.cpp_extension locates it,
without importing cpp_extension (which costs ~100 ms and pulls in setuptools) on the hot path.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import torch

from .config import env_str
from .errors import MissingLibraryError, UnsupportedTargetError

#: The archs hkjit has a kernel for; the order is the order `warmup` builds them in.
KNOWN_ARCHS = ("cpu", "gfx950", "sm_90a")


class Target:
    """arch: "cpu" | "gfx950" | "sm_90a"; backend: "cpu" | "hip" | "cuda", which torch build and device
    compiler the arch needs."""
    # a plain slotted class, not a NamedTuple: class creation is on every warm start's path (~50 us less)
    __slots__ = ("arch", "backend")

    def __init__(self, arch: str, backend: str) -> None:
        self.arch, self.backend = arch, backend

    def __repr__(self) -> str:
        return f"Target(arch={self.arch!r}, backend={self.backend!r})"


BACKENDS = {"cpu": "cpu", "gfx950": "hip", "sm_90a": "cuda"}


def target_for_arch(arch: str) -> Target:
    if arch not in BACKENDS:
        raise UnsupportedTargetError(f"unknown arch {arch!r}; hkjit has kernels for {', '.join(KNOWN_ARCHS)}")
    return Target(arch, BACKENDS[arch])


@functools.lru_cache(maxsize=None)
def _device_arch(device_type: str, index: int) -> str:
    if device_type == "cpu":
        return "cpu"
    if device_type != "cuda":
        raise UnsupportedTargetError(f"hkjit does not support {device_type} tensors; supported: cpu, cuda (ROCm or CUDA)")
    props = torch.cuda.get_device_properties(index)
    if torch.version.hip:
        name = getattr(props, "gcnArchName", "") or ""
        return name.split(":")[0]              # "gfx950:sramecc+:xnack-" -> "gfx950"
    major, minor = props.major, props.minor
    return "sm_90a" if (major, minor) == (9, 0) else f"sm_{major}{minor}"


_by_device: dict[torch.device, Target] = {}


def detect_target(device: torch.device | str | None = None) -> Target:
    """The target of `device` (default: the current CUDA/HIP device if there is one, else the CPU).

    Raises UnsupportedTargetError naming the arch found and the supported ones."""
    if type(device) is torch.device and (device.index is not None or device.type == "cpu"):
        # on every call's path: one dict lookup per tensor's device ("cuda" without an index follows
        # the current device, so it is not memoized)
        target = _by_device.get(device)
        if target is None:
            target = _by_device[device] = _detect_target(device)
        return target
    return _detect_target(device)


def _detect_target(device: torch.device | str | None) -> Target:
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    index = device.index if device.index is not None else (torch.cuda.current_device() if device.type == "cuda" else 0)
    arch = _device_arch(device.type, index)
    if arch not in BACKENDS:
        name = torch.cuda.get_device_name(index) if device.type == "cuda" else device.type
        raise UnsupportedTargetError(
            f"no hkjit kernel for {name} ({arch}); supported archs: {', '.join(KNOWN_ARCHS)}. "
            f"Use torch.matmul, or set HKJIT_DISPATCH=torch to route hkjit.gemm there.")
    return target_for_arch(arch)


def torch_backend() -> str:
    """Which device backend this torch build can compile extensions for."""
    if torch.version.hip:
        return "hip"
    if torch.version.cuda:
        return "cuda"
    return "cpu"


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
