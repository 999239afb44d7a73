"""mypy over src/hkjit with the settings of pyproject.toml ([tool.mypy]: Python 3.10, torch's own annotations
skipped so that a cold run stays well under a minute on the 2-core CI machine); skipped without mypy (`pip install
-e .[test]` installs it). The mutation twin plants a type error in a copy of a clean module and sees mypy fail.

mypy keeps its cache in .mypy_cache/ at the repository root: a second run on an unchanged tree takes seconds."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                                reason="mypy is not installed (pip install mypy, or the package's [test] extra)")


def mypy(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_mypy_passes():
    p = mypy()
    assert p.returncode == 0, f"`python -m mypy` (pyproject.toml's [tool.mypy]) found problems:\n{p.stdout}{p.stderr}"


def test_mypy_catches_a_type_error(tmp_path):
    """Mutation: a copy of a clean module (no relative imports) with a function returning the wrong type fails."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    module = tmp_path / "fsutil.py"
    shutil.copy(REPO / "src" / "hkjit" / "fsutil.py", module)
    cache = str(tmp_path / "mypy-cache")
    assert mypy("--cache-dir", cache, "fsutil.py", cwd=tmp_path).returncode == 0
    module.write_text(module.read_text() + "\n\ndef planted(n: int) -> str:\n    return n\n")
    p = mypy("--cache-dir", cache, "fsutil.py", cwd=tmp_path)
    assert p.returncode == 1 and "Incompatible return value type" in p.stdout, p.stdout
