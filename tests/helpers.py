"""Helpers shared by the test files: real subprocesses against a given cache, device lists, build counting,
read-only and small filesystems, and the reliability figures printed at the end of the run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from hkjit.cache.layout import BUILD_LOG, Layout

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU with an hkjit kernel (run `pytest -m gpu` there)")])]


TOL = 1e-2  # relative Frobenius error of a bf16 product (fp32 accumulation) against float64


def rel_err(c: torch.Tensor, ref: torch.Tensor) -> float:
    assert torch.isfinite(c).all(), "non-finite output (unwritten or NaN)"
    return ((c.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def rand(*shape, device="cpu"):
    return torch.randn(*shape, device=device).bfloat16()


def child_env(cache: Path | str | None = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HKJIT_")}
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    if cache is not None:
        env["HKJIT_CACHE_DIR"] = str(cache)
    env.update({k: str(v) for k, v in extra.items()})
    return env


# A child that runs one CPU product through hkjit and prints a JSON line: whether it compiled, the relative
# error against float64, and the time from `import hkjit` to the kernel being ready.
CHILD = textwrap.dedent("""
    import json, logging, sys, time
    import torch
    t0 = time.perf_counter()
    import hkjit
    from hkjit.loader import load
    from hkjit.specs import get_spec
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    loaded = load(get_spec("cpu"), call_site=True)
    ready = time.perf_counter() - t0
    g = torch.Generator().manual_seed(int(time.time_ns()) % 2**31)
    a = torch.randn(67, 150, generator=g).bfloat16(); b = torch.randn(150, 45, generator=g).bfloat16()
    c = hkjit.gemm(a, b)
    ref = a.double() @ b.double()
    err = ((c.double() - ref).norm() / ref.norm()).item()
    print(json.dumps({"built": loaded.built, "err": err, "ready_ms": ready * 1e3, "path": str(loaded.path)}))
""")


# A child that only imports the CPU kernel if cached (loader.load_cached, never a build) and prints
# {"loaded": path} or {"miss": ...}.
LOAD = textwrap.dedent("""
    import json, logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from hkjit.loader import load_cached
    from hkjit.specs import get_spec
    loaded = load_cached(get_spec("cpu"))
    print(json.dumps({"loaded": str(loaded.path)} if loaded else {"miss": "cpu/gemm_bf16 is not in the cache"}))
""")


def run_child(cache: Path | str, code: str = CHILD, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=child_env(cache, **env), capture_output=True, text=True,
                          timeout=timeout)


def start_child(cache: Path | str, code: str = CHILD, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env=child_env(cache, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def child_result(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count_builds(root: Path) -> int:
    """Number of compiles that published into root: each published entry's build.log names one compile."""
    layout = Layout(root)
    return sum(1 for _ in layout.format_dir.glob(f"*/*/{BUILD_LOG}")) + \
        sum(1 for _ in layout.trash_dir.glob(f"*/{BUILD_LOG}"))



FIGURES: Counter = Counter()
OUTCOMES: list[str] = []


def record(outcome: str, **counts: int) -> None:
    FIGURES.update(counts)
    OUTCOMES.append(outcome)


def write_figures(tr) -> None:
    if not OUTCOMES:
        return
    tr.section("hkjit reliability figures")
    for name in ("processes", "compiles", "kills", "corruptions", "lock_scenarios", "disk_scenarios",
                 "skew_scenarios"):
        tr.write_line(f"{name:>16}: {FIGURES.get(name, 0)}")
    for line in OUTCOMES:
        tr.write_line(f"  - {line}")


def copy_cache(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


@contextmanager
def read_only(path: Path):
    """Make `path` read-only for this process, also as root (a read-only bind mount); skip where impossible."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    ok = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode == 0 and \
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode == 0
    if not ok:
        subprocess.run(["umount", str(path)], capture_output=True)
        pytest.skip("running as root without permission to mount: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextmanager
def small_filesystem(path: Path, size: str = "4m"):
    """A tmpfs of `size` at path (a full disk on demand); skip where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root/CAP_SYS_ADMIN) to simulate a full disk")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)
