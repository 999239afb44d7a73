"""The cache package's shape: the old flat modules are gone (no shims), every cache name is imported from the one
module that defines it (no re-exports), and a warm hit imports only the warm-path modules of the package.

The import checks read src/, tests/ and benchmarks/ with ast; the warm-path check runs two real processes against a
copy of the session's built cache (the first writes the .verified stamp a copy lacks, the second is the warm hit).
Each check has a mutation twin that plants the thing it guards against and sees it caught.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import REPO, child_env, copy_cache

SRC = REPO / "src"
PKG = SRC / "hkjit"
#: modules whose names moved into hkjit/cache/ (or fsutil / config) in the split: importing one must fail
REMOVED = ("hkjit.cachetool", "hkjit.layout", "hkjit.locking", "hkjit.manifest", "hkjit.trust")
#: the package's modules a warm hit must not import (tarfile and the decompressors, filelock, dataclasses)
NOT_ON_WARM_PATH = {"hkjit.cache.admin", "hkjit.cache.archive", "hkjit.cache.lock"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_at_top(path: Path) -> set[str]:
    """The names a module binds by importing them at module level (what would be a re-export if imported from it)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update(a.asname or a.name.split(".")[0] for a in node.names)
    return out


def _target(importer: str, node: ast.ImportFrom, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    if not importer:
        return None
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def reexports_in(path: Path, module: str) -> list[str]:
    """'file:line: name from module' for every `from <cache module> import name` in the file at `path` (the module
    named `module`; "" outside src/) where that cache module only imports `name` from elsewhere. Checked modules:
    the cache package, fsutil and config."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    checked = {m for m in modules if m.startswith("hkjit.cache.") or m in ("hkjit.fsutil", "hkjit.config")}
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _target(module, node, path.name == "__init__.py")
        if target not in checked:
            continue
        borrowed = _imported_at_top(modules[target])
        found += [f"{shown}:{node.lineno}: {a.name} from {target}" for a in node.names
                  if a.name in borrowed and f"{target}.{a.name}" not in modules]
    return found


def _sources() -> list[Path]:
    return sorted(p for d in ("src", "tests", "benchmarks") for p in (REPO / d).rglob("*.py"))


def test_the_flat_cache_modules_are_gone():
    assert not (PKG / "cache.py").exists() and (PKG / "cache" / "__init__.py").is_file()
    left = [name for name in REMOVED if importlib.util.find_spec(name) is not None]
    assert not left, f"old modules still importable (no shims: import from hkjit.cache.*): {left}"


def test_cache_names_are_imported_from_their_home():
    found = [s for p in _sources() for s in reexports_in(p, _module_name(p) if p.is_relative_to(SRC) else "")]
    assert not found, ("names imported from a module that only re-exports them (import each from the module "
                       "that defines it):\n" + "\n".join(found))


def test_reexport_check_catches_a_planted_import(tmp_path):
    """Mutation: names a cache module only imports (entry.py imports MANIFEST from layout), taken from it by a test
    and by a module inside the package (relative imports), must be reported; their homes must not."""
    planted = tmp_path / "planted.py"
    planted.write_text("from hkjit.cache.entry import MANIFEST, verify_entry\nfrom hkjit.cache.layout import MANIFEST\n")
    assert reexports_in(planted, "") == ["planted.py:1: MANIFEST from hkjit.cache.entry"]
    planted.write_text("from .roots import Layout, cache_root\nfrom ..config import FORMAT_DIR, env_str\n")
    assert reexports_in(planted, "hkjit.cache._planted") == ["planted.py:1: Layout from hkjit.cache.roots",
                                                             "planted.py:2: FORMAT_DIR from hkjit.config"]


# A warm hit, then which hkjit modules (and which others, beyond torch's) it imported. argv[1]: one more module
# to import first (the mutation twin), or "".
WARM = textwrap.dedent("""
    import json, sys
    import torch
    before = set(sys.modules)
    if sys.argv[1]:
        __import__(sys.argv[1])
    import hkjit
    from hkjit.loader import load_cached
    from hkjit.specs import get_spec
    loaded = load_cached(get_spec("cpu"))       # a hit imports the module; a miss is None (never a build)
    new = sorted(set(sys.modules) - before)
    print(json.dumps({"built": loaded is None or loaded.built, "hkjit": [m for m in new if m.split(".")[0] == "hkjit"],
                      "other": [m for m in new if m.split(".")[0] != "hkjit"]}))
""")


def _warm_hit(root: Path, extra: str = "") -> dict:
    p = subprocess.run([sys.executable, "-c", WARM, extra], env=child_env(root), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warm_root(built_cache, tmp_path_factory) -> Path:
    root = copy_cache(built_cache, tmp_path_factory.mktemp("warm") / "cache")
    assert not _warm_hit(root)["built"]          # a copy: the full check, which writes the .verified stamp
    return root


def test_a_warm_hit_imports_only_the_warm_path(warm_root):
    res = _warm_hit(warm_root)
    assert not res["built"]
    assert not NOT_ON_WARM_PATH & set(res["hkjit"]), res["hkjit"]
    assert {"hkjit.cache.entry", "hkjit.cache.layout", "hkjit.cache.roots", "hkjit.cache.trust"} <= set(res["hkjit"])
    assert res["other"] == [], f"a warm hit imported modules beyond torch's: {res['other']}"


def test_warm_path_check_sees_a_planted_import(warm_root):
    """Mutation: the same child importing cache.archive first (as a loader that imported it would) is caught."""
    res = _warm_hit(warm_root, "hkjit.cache.archive")
    assert NOT_ON_WARM_PATH & set(res["hkjit"]), res
