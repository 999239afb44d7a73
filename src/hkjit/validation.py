"""Per-(device, toolchain) validation records written by `python -m hkjit selftest`.

A compiled kernel is not a correct kernel (hk-dsl saw a ROCm 7.1 build of the MI350X GEMM compute wrong rows
without any error). The selftest records a pass or a fail for the toolchain key of each kernel it ran, in
``<root>/v1/<arch>/validated/<kernel>-<key>.json``. A fail marks that toolchain bad: later builds of the same key
refuse with a message until the record is cleared (`python -m hkjit cache clear --validation`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .cache import format_dir, host_id
from .errors import ToolchainRejectedError
from .fsutil import atomic_write_text
from .specs import KernelSpec


def record_path(root: Path, spec: KernelSpec, key: str) -> Path:
    return format_dir(root) / spec.arch / "validated" / f"{spec.name}-{key}.json"


def read_record(root: Path, spec: KernelSpec, key: str) -> dict | None:
    try:
        return json.loads(record_path(root, spec, key).read_text())
    except (OSError, ValueError):
        return None


def write_record(root: Path, spec: KernelSpec, key: str, passed: bool, device: str, detail: str = "") -> Path:
    path = record_path(root, spec, key)
    atomic_write_text(path, json.dumps({"passed": passed, "device": device, "host": host_id(), "time": time.time(),
                                        "detail": detail}, indent=1))
    return path


def check_not_rejected(spec: KernelSpec, key: str, root: Path) -> None:
    rec = read_record(root, spec, key)
    if rec is not None and not rec.get("passed", True):
        raise ToolchainRejectedError(
            f"the selftest failed for {spec.name} on {spec.arch} with this toolchain (key {key}, {rec.get('detail')}); "
            f"builds are refused until `python -m hkjit cache clear --validation` (upgrade ROCm/CUDA first)")
