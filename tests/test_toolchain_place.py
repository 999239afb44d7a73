"""The runtime package finds the gfx950 check toolchain through configuration only (issue #15 item 5):
HKJIT_TOOLCHAIN_DIR, else a documented default that is no development checkout; a folder without the HIP headers
is an error naming the variable. And no module of the package spells the checkout's ../shared folder."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hkjit.config import VARS
from hkjit.errors import MissingLibraryError
from hkjit.gfx950 import hipcheck

SRC = Path(__file__).resolve().parents[1] / "src" / "hkjit"


def test_the_toolchain_comes_from_configuration(monkeypatch, tmp_path):
    monkeypatch.delenv("HKJIT_TOOLCHAIN_DIR", raising=False)
    assert hipcheck.toolchain_root() == Path(hipcheck.DEFAULT_TOOLCHAIN_DIR)
    assert VARS["HKJIT_TOOLCHAIN_DIR"].default == f"`{hipcheck.DEFAULT_TOOLCHAIN_DIR}`"     # documented as used
    monkeypatch.setenv("HKJIT_TOOLCHAIN_DIR", str(tmp_path))
    assert hipcheck.toolchain_root() == tmp_path
    src = tmp_path / "k.hip"
    src.write_text("__global__ void k() {}\n")
    for compile_ in (lambda: hipcheck.compile_device(src), lambda: hipcheck.compile_code_object(src, tmp_path / "o")):
        with pytest.raises(MissingLibraryError, match=f"no gfx950 check toolchain at {tmp_path}.*HKJIT_TOOLCHAIN_DIR"):
            compile_()


def test_no_module_looks_beside_the_checkout():
    """A string "shared" (a path part: ../shared/toolchain) anywhere in the package is a development machine's
    layout leaking into the runtime."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    node.value == "shared" or "shared/toolchain" in node.value):
                if "test suite sets it" not in node.value:        # config.VARS' meaning, which says who sets it
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value[:60]!r}")
    assert not found, found
