"""Fixtures: one session cache (so the CPU kernel is compiled once for the in-process tests) and a built cache
that subprocess tests copy. Helpers live in helpers.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import child_result, run_child, write_figures


def pytest_terminal_summary(terminalreporter):
    write_figures(terminalreporter)


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


@pytest.fixture(scope="session")
def built_cache(tmp_path_factory) -> Path:
    """A cache root holding a published CPU entry, built by a real subprocess (copy it, don't mutate it)."""
    root = tmp_path_factory.mktemp("built-cache")
    res = child_result(run_child(root))
    assert res["built"] and res["err"] < 1e-2
    return root
