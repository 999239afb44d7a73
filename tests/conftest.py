"""Shared fixtures: one session cache (so the CPU kernel is compiled once for the in-process tests), helpers to
run real subprocesses against a given cache, and the device list (GPU variants marked `gpu`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TOOLCHAIN = Path(os.environ.get("HKJIT_TOOLCHAIN_DIR", REPO.parent / "shared" / "toolchain"))


def gpu_available() -> bool:
    return torch.cuda.is_available()


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU with an hkjit kernel (run `pytest -m gpu` there)")])]


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Path:
    """Every in-process test shares this cache root; the CPU kernel is built into it once."""
    root = tmp_path_factory.mktemp("hkjit-cache")
    old = os.environ.get("HKJIT_CACHE_DIR")
    os.environ["HKJIT_CACHE_DIR"] = str(root)
    os.environ.pop("HKJIT_CACHE_PATH", None)
    os.environ.pop("HKJIT_DISPATCH", None)
    yield root
    if old is None:
        os.environ.pop("HKJIT_CACHE_DIR", None)
    else:
        os.environ["HKJIT_CACHE_DIR"] = old


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
    from hkjit.loader import load_module
    from hkjit.specs import get_spec
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    loaded = load_module(get_spec("cpu"), call_site=True)
    ready = time.perf_counter() - t0
    g = torch.Generator().manual_seed(int(time.time_ns()) % 2**31)
    a = torch.randn(67, 150, generator=g).bfloat16(); b = torch.randn(150, 45, generator=g).bfloat16()
    c = hkjit.gemm(a, b)
    ref = a.double() @ b.double()
    err = ((c.double() - ref).norm() / ref.norm()).item()
    print(json.dumps({"built": loaded.built, "err": err, "ready_ms": ready * 1e3, "path": str(loaded.path)}))
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
    return sum(1 for _ in (Path(root) / "v1").glob("*/*/build.log")) + \
        sum(1 for _ in (Path(root) / "v1" / "trash").glob("*/build.log"))


@pytest.fixture(scope="session")
def built_cache(tmp_path_factory) -> Path:
    """A cache root holding a published CPU entry, built by a real subprocess (copy it, don't mutate it)."""
    root = tmp_path_factory.mktemp("built-cache")
    res = child_result(run_child(root))
    assert res["built"] and res["err"] < 1e-2
    return root
