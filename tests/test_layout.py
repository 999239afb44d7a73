"""The cache's on-disk names are spelled once, in hkjit/cache/layout.py, and Layout builds the paths the modules use.

test_no_module_spells_cache_names reads every module of src/hkjit with ast: a string literal (an f-string's literal
parts included; docstrings, dict keys and subscripts excluded) that is one of layout's file names, a path join
``x / "trash"`` with any of its names, or a path in a literal through ``v1/`` or ending in an entry file name fails
it, naming the file and line. Its mutation twin plants
such a spelling in a copy of a module and checks that it is caught.
"""
from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest

import hkjit
from hkjit.cache import layout
from hkjit.cache.entry import iter_entries, move_aside, temp_dir_owner
from hkjit.cache.layout import Layout

SRC = Path(hkjit.__file__).resolve().parent
#: the one module allowed to spell cache names (by path: another module named layout.py is checked like any other)
LAYOUT_MODULE = SRC / "cache" / "layout.py"
#: names that mean a cache path wherever they occur as a whole literal
FILE_NAMES = (layout.MANIFEST, layout.KEY_JSON, layout.BUILD_LOG, layout.USED_STAMP, layout.VERIFIED_STAMP,
              layout.MEMO, layout.TRASH, layout.LOCKS, layout.VALIDATED, layout.LOCK_SUFFIX, layout.LEASE_SUFFIX)
#: names that are also ordinary words ("failed" is a status, "tmp" a suffix): caught in path joins only
FOLDER_NAMES = (*layout.SPECIAL_DIRS, layout.VALIDATED, layout.FORMAT_DIR)


def _not_paths(tree: ast.AST) -> set[int]:
    """ids of the string constants that are no path: docstrings, dict keys and subscripts (report fields such as
    summary["trash"] name a JSON field, not a folder)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
        elif isinstance(node, ast.Dict):
            ids.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Subscript):
            ids.add(id(node.slice))
    return ids


def _spelled_path(word: str) -> bool:
    """Whether one whitespace-free piece of a literal spells a cache path: a component "v1" in a path, or an entry
    file name after a "/" ("{path}/build.log")."""
    parts = word.strip(".,;:()'\"`").split("/")
    return len(parts) > 1 and (layout.FORMAT_DIR in parts[:-1] or any(p in FILE_NAMES for p in parts[1:]))


def spellings(path: Path, base: Path = SRC.parent) -> list[str]:
    """'file:line: literal' for every spelling of a cache name in the module at `path`."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _not_paths(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                and node.right.value in FOLDER_NAMES + FILE_NAMES:
            found.append((node.lineno, node.right.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if node.value in FILE_NAMES or any(_spelled_path(w) for w in node.value.split()):
                found.append((node.lineno, node.value))
    return [f"{path.relative_to(base)}:{line}: {text!r}" for line, text in sorted(set(found))]


def offenders() -> list[str]:
    """Every spelling of a cache name in src/hkjit outside cache/layout.py."""
    assert LAYOUT_MODULE.is_file(), f"{LAYOUT_MODULE} moved: point LAYOUT_MODULE at the module that owns the names"
    return [s for p in sorted(SRC.rglob("*.py")) if p != LAYOUT_MODULE for s in spellings(p)]


def test_no_module_spells_cache_names():
    found = offenders()
    assert not found, ("cache paths spelled outside hkjit/cache/layout.py (use Layout / its names):\n"
                       + "\n".join(found))


def test_only_the_layout_module_may_spell_names():
    """The exemption is by path and names the module that does spell the names: pointed at another file, the check
    above would pass over the wrong module (and a module named layout.py elsewhere is checked like any other)."""
    assert spellings(LAYOUT_MODULE), "the layout module spells no cache name: is LAYOUT_MODULE the right file?"


@pytest.mark.parametrize("planted", ['root / "trash"', '"build.log"', 'f"{root}/v1/tmp/x"', 'fmt / "failed"',
                                     'name + ".lease"'])
def test_spelling_check_catches_a_planted_name(tmp_path, planted):
    """Mutation: a copy of loader.py with one hand-spelled cache path must be reported (and the clean copy not)."""
    copy = tmp_path / "loader.py"
    shutil.copy(SRC / "loader.py", copy)
    assert spellings(copy, tmp_path) == []
    copy.write_text(copy.read_text() + f"\n\ndef _planted(root, fmt, name):\n    return {planted}\n")
    assert spellings(copy, tmp_path), f"{planted} was not caught"


def test_layout_paths(tmp_path):
    lay = Layout(tmp_path)
    key = "0123456789abcdef" * 2
    assert lay.format_dir == tmp_path / layout.FORMAT_DIR
    entry = lay.entry("cpu", "gemm_bf16", key)
    assert Layout.of_entry(entry).root == tmp_path and entry.parent == lay.arch_dir("cpu")
    assert layout.split_entry_name(entry.name) == ("gemm_bf16", key)
    assert lay.failed_log("cpu", "gemm_bf16", key).name.startswith("cpu-")   # what `cache clear --arch` matches
    slots = {lay.trash_slot(entry.name) for _ in range(3)}
    assert len(slots) == 3 and all(s.parent == lay.trash_dir and s.name.startswith(entry.name + ".") for s in slots)
    staging = lay.staging("gemm_bf16", key, "host.with.dots", "imp7")
    assert staging.parent == lay.staging_dir and temp_dir_owner(staging.name) == ("host.with.dots", os.getpid())
    assert layout.lock_file(lay.locks_dir, "n").name == "n" + layout.LOCK_SUFFIX


def test_special_folders_are_never_entries(tmp_path):
    """An entry-shaped folder inside tmp/, trash/, failed/ or locks/ is not listed; the entry beside them is."""
    lay = Layout(tmp_path)
    key = "f" * 32
    entry = lay.entry("cpu", "gemm_bf16", key)
    entry.mkdir(parents=True)
    for d in lay.special_dirs():
        (d / layout.entry_name("gemm_bf16", key)).mkdir(parents=True)
    lay.validated_dir("cpu").mkdir()
    assert [p for *_x, p in iter_entries(tmp_path)] == [entry]


def test_move_aside_uses_the_trash_slot(tmp_path):
    lay = Layout(tmp_path)
    entry = lay.entry("cpu", "gemm_bf16", "a" * 32)
    entry.mkdir(parents=True)
    dest = move_aside(entry, "test", then="")
    assert dest is not None and dest.parent == lay.trash_dir and not entry.exists()
