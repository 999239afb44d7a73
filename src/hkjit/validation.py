"""Validation records: a kernel is checked once per (device, toolchain key) before its results are trusted.

A compiled kernel is not a correct kernel (hk-dsl saw a ROCm 7.1 build of the MI350X GEMM compute wrong rows
without any error). On first use in a process, hkjit.gemm looks for a record for (device, entry key) in
``Layout.validated_dir(arch)`` (``<root>/v1/<arch>/validated/``); without one it runs a small product that spans several K tiles and ragged edges
against an fp32 reference (milliseconds), and records the outcome, so later processes skip it.
`python -m hkjit selftest` writes the same records over its full grid. A *fail* marks that toolchain bad:
the kernel is refused (ToolchainRejectedError) until `python -m hkjit cache clear --validation`.

Every record has a *kind*: "device" (a run on the GPU or CPU it names: the only kind that lets hkjit.gemm skip
its check or refuses a toolchain) or "emulated" (`selftest --emulate`: the entry's code object run on the gfx950
emulator, e.g. on a CI machine without the GPU). Emulated records live in their own files and read_record of one
kind never returns the other, so an emulated pass is never taken for a device validation.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from .cache.entry import host_id
from .cache.layout import Layout
from .cache.roots import cache_root
from .errors import CaptureError, ToolchainRejectedError
from .fsutil import atomic_write_text

#: relative Frobenius error above which a bf16 product (fp32 accumulation) is wrong, not just rounded
REL_TOL = 1e-2
_checked: set[tuple[str, int | None, str]] = set()


def device_label(device: torch.device) -> str:
    if device.type == "cpu":
        return "cpu"
    props = torch.cuda.get_device_properties(device)
    arch = (getattr(props, "gcnArchName", "") if torch.version.hip else "") or f"sm_{props.major}{props.minor}"
    return f"{props.name} {arch}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:80]


KINDS = ("device", "emulated")
#: the `device` of an emulated record
EMULATOR_LABEL = "gfx950 emulator"


def record_path(root: Path, arch: str, kernel: str, key: str, device: str, kind: str = "device") -> Path:
    if kind not in KINDS:
        raise ValueError(f"validation kind {kind!r}: one of {', '.join(KINDS)}")
    tag = "" if kind == "device" else f"{kind}-"
    return Layout(root).validation_record(arch, kernel, key, f"{tag}{_slug(device)}")


def read_record(root: Path, arch: str, kernel: str, key: str, device: str, kind: str = "device") -> dict | None:
    """The record of `kind` for (device, key), or None (also when the file holds a record of another kind)."""
    try:
        rec = json.loads(record_path(root, arch, kernel, key, device, kind).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("kind", "device") == kind else None


def write_record(root: Path, arch: str, kernel: str, key: str, device: str, passed: bool, detail: str = "",
                 kind: str = "device") -> Path:
    path = record_path(root, arch, kernel, key, device, kind)
    atomic_write_text(path, json.dumps({"passed": passed, "kind": kind, "device": device, "key": key,
                                        "host": host_id(), "time": time.time(), "detail": detail}, indent=1))
    return path


def relative_error(c: torch.Tensor, ref: torch.Tensor) -> float:
    c64, r64 = c.double(), ref.double()
    if not torch.isfinite(c64).all():
        return float("inf")
    return ((c64 - r64).norm() / r64.norm().clamp_min(1e-30)).item()


def quick_check(module, device: torch.device) -> tuple[bool, str]:
    """A product with 7 K tiles of 64 and ragged M/N, poisoned output, against an fp32 reference."""
    m, n, k = (320, 272, 448) if device.type != "cpu" else (96, 80, 200)
    gen = torch.Generator(device="cpu").manual_seed(int(time.time_ns()) & 0xFFFFFFFF)
    a = torch.randn(m, k, generator=gen).bfloat16().to(device)
    bt = torch.randn(n, k, generator=gen).bfloat16().to(device)
    c = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device=device)
    module.gemm_out(a, bt, c)
    err = relative_error(c, a.float() @ bt.float().t())
    return err <= REL_TOL, f"{m}x{n}x{k} relative error {err:.2e}"


def mark_checked(device: torch.device, key: str) -> None:
    """Skip the first-use check for (device, key) in this process: `python -m hkjit selftest` runs the full grid."""
    _checked.add((device.type, device.index, key))


def ensure_validated(arch: str, kernel: str, key: str, module, device: torch.device) -> None:
    """Raise ToolchainRejectedError if this (device, key) failed; run and record the quick check if unchecked."""
    if (device.type, device.index, key) in _checked:
        return
    label = device_label(device)
    root = cache_root()
    rec = read_record(root, arch, kernel, key, label)
    if rec is None:
        if device.type != "cpu" and torch.cuda.is_current_stream_capturing():
            raise CaptureError("hkjit validates each kernel once per device before first use, and a graph is being "
                               "captured: call hkjit.gemm once before capturing, or run `python -m hkjit selftest`")
        passed, detail = quick_check(module, device)
        rec = {"passed": passed, "detail": detail}
        try:
            write_record(root, arch, kernel, key, label, passed, f"first-use check: {detail}")
        except OSError:
            pass  # read-only cache: the check is repeated by the next process
    if not rec.get("passed"):
        raise ToolchainRejectedError(
            f"{kernel} for {arch} built with this toolchain (key {key[:12]}…) computed wrong results on {label} "
            f"({rec.get('detail')}). It is refused until `python -m hkjit cache clear --validation`; check your "
            f"ROCm/CUDA version and report it with `python -m hkjit doctor` output")
    mark_checked(device, key)
