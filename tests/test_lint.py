"""ruff over src/ tests/ benchmarks/ tools/ with the rules of pyproject.toml ([tool.ruff.lint]); skipped without ruff
(`pip install -e .[test]` installs it). The mutation twin plants an unused import and sees ruff fail on it."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                                reason="ruff is not installed (pip install ruff, or the package's [test] extra)")


def ruff(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_ruff_passes():
    p = ruff("src", "tests", "benchmarks", "tools")
    assert p.returncode == 0, f"`python -m ruff check src tests benchmarks tools` found problems:\n{p.stdout}{p.stderr}"


def test_ruff_catches_an_unused_import(tmp_path):
    """Mutation: a copy of a clean module with `import json` added that nothing uses fails with F401."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    module = tmp_path / "layout.py"
    shutil.copy(REPO / "src" / "hkjit" / "cache" / "layout.py", module)
    assert ruff("layout.py", cwd=tmp_path).returncode == 0
    module.write_text("import json\n" + module.read_text())
    p = ruff("layout.py", cwd=tmp_path)
    assert p.returncode == 1 and "F401" in p.stdout, p.stdout
