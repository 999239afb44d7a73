"""Target detection: which architecture a tensor's device is.

An arch string names everything downstream: the kernel spec (specs.py), the cache folder (v1/<arch>/...) and the
compiler. Three exist: ``cpu`` (the portable C++ reference kernel, built by the host C++ compiler), ``gfx950``
(AMD MI350X/MI355X, read from a ROCm torch's ``gcnArchName``, built by hipcc) and ``sm_90a`` (NVIDIA Hopper,
compute capability 9.0, built by nvcc). Which compiler builds an arch, and whether this torch can, is
toolchain.py's business.
"""
from __future__ import annotations

import functools

import torch

from .errors import UnsupportedTargetError
from .records import Record

#: The archs hkjit has a kernel for; the order is the order `warmup` builds them in.
KNOWN_ARCHS = ("cpu", "gfx950", "sm_90a")


class Target(Record):
    """arch: "cpu" | "gfx950" | "sm_90a"; backend: "cpu" | "hip" | "cuda", which torch build and device
    compiler the arch needs."""
    __slots__ = ("arch", "backend")
    arch: str
    backend: str


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
    if type(device) is torch.device and (device.index is not None or device.type == "cpu"):  # type: ignore[union-attr]
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
    dev = torch.device(device)
    index = dev.index if dev.index is not None else (torch.cuda.current_device() if dev.type == "cuda" else 0)
    arch = _device_arch(dev.type, index)
    if arch not in BACKENDS:
        name = torch.cuda.get_device_name(index) if dev.type == "cuda" else dev.type
        raise UnsupportedTargetError(
            f"no hkjit kernel for {name} ({arch}); supported archs: {', '.join(KNOWN_ARCHS)}. "
            f"Use torch.matmul, or set HKJIT_DISPATCH=torch to route hkjit.gemm there.")
    return target_for_arch(arch)
