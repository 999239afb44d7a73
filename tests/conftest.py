"""Fixtures: one session cache (so the CPU kernel is compiled once for the in-process tests) and a built cache
that subprocess tests copy. Helpers live in helpers.py.

The suite runs in parallel under pytest-xdist (README's test command: ``-n auto``, one test file per worker).
The expensive session fixture (the cold stampede that builds the CPU kernel) runs once per run, not once per
worker: the first worker to need it runs it under a file lock in the run's shared temporary folder and the others
read its result. Each worker's reliability figures travel to the controller, which prints their sum."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from helpers import FIGURES, OUTCOMES, start_child, write_figures

from hkjit.cache.layout import Layout

# hkjit finds the header libraries and the gfx950 check toolchain only through configuration and its documented
# defaults (libraries.py, gfx950/hipcheck.py): the tests point the variables at the toolchain beside the checkout
# (CI provides ../shared/toolchain), when it is there and they are unset; tests that need a library or the
# toolchain still skip, with the reason, where it is absent.
TOOLCHAIN = Path(os.environ.get("HKJIT_TOOLCHAIN_DIR") or Path(__file__).resolve().parents[2] / "shared" / "toolchain")
if not os.environ.get("HKJIT_TOOLCHAIN_DIR") and TOOLCHAIN.is_dir():
    os.environ["HKJIT_TOOLCHAIN_DIR"] = str(TOOLCHAIN)
for _var, _lib in (("HIPKITTENS_ROOT", "HipKittens"), ("THUNDERKITTENS_ROOT", "ThunderKittens")):
    if not os.environ.get(_var) and (TOOLCHAIN / _lib).is_dir():
        os.environ[_var] = str(TOOLCHAIN / _lib)


def pytest_terminal_summary(terminalreporter):
    write_figures(terminalreporter)


def pytest_sessionfinish(session):
    """In an xdist worker: hand this worker's figures to the controller (workeroutput travels back with it)."""
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        out["hkjit_figures"] = json.dumps({"figures": dict(FIGURES), "outcomes": OUTCOMES})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """In the xdist controller: add a finished worker's figures to the ones printed at the end."""
    data = json.loads(getattr(node, "workeroutput", {}).get("hkjit_figures", "{}") or "{}")
    FIGURES.update(data.get("figures", {}))
    OUTCOMES.extend(data.get("outcomes", []))


def run_folder(tmp_path_factory, name: str) -> Path:
    """A folder every xdist worker of this run shares (the parent of the workers' basetemps); the basetemp itself
    without xdist. A session fixture produces its result there once, under a file lock beside it."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Path:
    """Every in-process test shares this cache root; the kernel is built into it once.

    HKJIT_TEST_CACHE_DIR reuses a warm cache (the GPU run in benchmarks/device_h100.sh warms one first)."""
    root = Path(os.environ.get("HKJIT_TEST_CACHE_DIR") or tmp_path_factory.mktemp("hkjit-cache"))
    old = os.environ.get("HKJIT_CACHE_DIR")
    os.environ["HKJIT_CACHE_DIR"] = str(root)
    os.environ.pop("HKJIT_CACHE_PATH", None)
    os.environ.pop("HKJIT_DISPATCH", None)
    yield root
    if old is None:
        os.environ.pop("HKJIT_CACHE_DIR", None)
    else:
        os.environ["HKJIT_CACHE_DIR"] = old


class Stampede:
    """What a cold stampede left: the root, each process's JSON result line and its stderr."""

    def __init__(self, root: Path, results: list[dict], stderr: list[str]) -> None:
        self.root, self.results, self.stderr = root, results, stderr


@pytest.fixture(scope="session")
def cold_stampede(tmp_path_factory) -> Stampede:
    """HKJIT_STAMPEDE processes (default 8: one node's ranks under torchrun) started at once on one cold cache root,
    each running one CPU product through hkjit (tests/reliability checks they compiled once).

    The root they leave holds one published CPU entry, built by a real subprocess: that is built_cache, so the
    suite compiles the CPU kernel once for both (a compile is ~30 s of the 2-core CI machine)."""
    n = int(os.environ.get("HKJIT_STAMPEDE", "8"))
    folder = run_folder(tmp_path_factory, "built-cache")
    root = folder / "root"
    with FileLock(str(folder) + ".lock"):
        if not (folder / "done.json").exists():
            shutil.rmtree(folder, ignore_errors=True)          # a half-run of an interrupted worker
            root.mkdir(parents=True)
            procs = [start_child(root, HKJIT_LOCK_TIMEOUT="900") for _ in range(n)]
            outs = [p.communicate(timeout=900) for p in procs]
            for p, (_out, err) in zip(procs, outs):
                assert p.returncode == 0, err[-2000:]
            done = {"results": [json.loads(out.strip().splitlines()[-1]) for out, _err in outs],
                    "stderr": [e for _o, e in outs]}
            (folder / "done.json").write_text(json.dumps(done))
        done = json.loads((folder / "done.json").read_text())
    return Stampede(root, done["results"], done["stderr"])


@pytest.fixture(scope="session")
def built_cache(cold_stampede) -> Path:
    """A cache root holding a published CPU entry, built by a real subprocess (copy it, don't mutate it)."""
    assert sum(r["built"] for r in cold_stampede.results) == 1
    assert all(r["err"] < 1e-2 for r in cold_stampede.results)
    return cold_stampede.root


@pytest.fixture(scope="session")
def warm_session_cache(session_cache, built_cache) -> Path:
    """The in-process session cache seeded with built_cache's CPU entry (the same key: same sources, compiler and
    torch), so in-process tests do not compile the kernel a second time. A key that differs just builds."""
    for entry in (Layout(built_cache).arch_dir("cpu")).glob("gemm_bf16-*"):
        dest = Layout(session_cache).arch_dir("cpu") / entry.name
        if entry.is_dir() and not dest.exists():
            shutil.copytree(entry, dest, symlinks=True)
    return session_cache


@pytest.fixture
def library_tree(tmp_path) -> Path:
    """A header library checkout (real files, HipKittens' shape: include/kittens.cuh including a second header)
    for a spec to point at through HIPKITTENS_ROOT."""
    inc = tmp_path / "lib" / "include"
    (inc / "common").mkdir(parents=True)
    (inc / "kittens.cuh").write_text('#include "common/base.cuh"\n')
    (inc / "common" / "base.cuh").write_text("#pragma once\nconstexpr int kWarp = 64;\n")
    return tmp_path / "lib"
