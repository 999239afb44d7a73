"""The configuration registry (hkjit/config.py) is the only place hkjit reads the environment, and README's
environment table is generated from it.

    python tests/test_config.py --write     # rewrites README's table from the registry

Each check has a mutation twin that plants the fault it guards against and sees it reported.
"""
from __future__ import annotations

import ast
import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
sys.path.insert(0, str(SRC))

from hkjit import config  # noqa: E402
from hkjit.errors import ConfigError, HkjitError  # noqa: E402

README = REPO / "README.md"
TABLE_HEADING = "## Environment variables"
WRITE_COMMAND = "python tests/test_config.py --write"
#: run as a script by file path (no package around it): it reads the one variable its parent sets for it
STANDALONE = {"_buildworker.py"}


# ------------------------------------------------------------------------------------------------ README table
def readme_table(text: str) -> tuple[int, int]:
    """(start, end) offsets of the table under the environment heading."""
    head = text.index(TABLE_HEADING)
    start = text.index("\n|", head) + 1
    end = start
    while end < len(text) and text.startswith("|", end):
        end = text.index("\n", end) + 1
    return start, end


def table_diff(text: str) -> str:
    start, end = readme_table(text)
    return "".join(difflib.unified_diff(text[start:end].splitlines(True), config.markdown_table().splitlines(True),
                                        "README.md", "python -m hkjit.config --markdown"))


def test_readme_table_is_the_registry():
    diff = table_diff(README.read_text())
    assert not diff, f"README's environment table is not the registry's; run `{WRITE_COMMAND}`:\n{diff}"


def test_readme_table_check_catches_an_edit():
    """Mutation: a README whose table lost a row (or gained a word) differs."""
    text = README.read_text()
    start, end = readme_table(text)
    rows = text[start:end].splitlines(True)
    assert table_diff(text[:start] + "".join(rows[:3] + rows[4:]) + text[end:])
    assert table_diff(text.replace("writable cache root", "writable cache folder", 1))


def test_markdown_command():
    p = subprocess.run([sys.executable, "-m", "hkjit.config", "--markdown"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(SRC)})
    assert p.returncode == 0 and p.stdout == config.markdown_table()


# ------------------------------------------------------------------------------------------------ env reads
def env_reads(path: Path) -> list[str]:
    """'file:line' of every read of the environment in the module at `path`: os.environ.get / [...] / `in` /
    iteration, os.getenv, os.environ.copy. Passing the environment on (``{**os.environ, ...}``) and setting a
    variable are not reads."""
    tree = ast.parse(path.read_text(), str(path))
    spread = {id(v) for node in ast.walk(tree) if isinstance(node, ast.Dict)
              for k, v in zip(node.keys, node.values) if k is None}
    stores = {id(node.value) for node in ast.walk(tree)
              if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del))}
    found = []
    for node in ast.walk(tree):
        is_environ = isinstance(node, ast.Attribute) and node.attr == "environ" and \
            isinstance(node.value, ast.Name) and node.value.id == "os"
        is_getenv = isinstance(node, ast.Attribute) and node.attr in ("getenv", "getenvb") and \
            isinstance(node.value, ast.Name) and node.value.id == "os"
        if (is_environ and id(node) not in spread and id(node) not in stores) or is_getenv:
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_only_config_reads_the_environment():
    pkg = SRC / "hkjit"
    offenders = [r for p in sorted(pkg.rglob("*.py")) if p.name not in {"config.py", *STANDALONE}
                 for r in env_reads(p)]
    assert not offenders, ("environment read outside hkjit/config.py (register the variable in config.VARS and "
                           "read it with config.env_str / env_float / ...):\n" + "\n".join(offenders))


@pytest.mark.parametrize("planted", ['os.environ.get("HKJIT_X")', 'os.getenv("HKJIT_X")', '"HKJIT_X" in os.environ',
                                     'os.environ["HKJIT_X"]'])
def test_env_read_check_catches_a_planted_read(tmp_path, planted):
    copy = tmp_path / "builder.py"
    shutil.copy(SRC / "hkjit" / "builder.py", copy)        # passes os.environ on to its worker: not a read
    assert env_reads(copy) == []
    copy.write_text(copy.read_text() + f"\n\ndef _planted():\n    return {planted}\n")
    assert env_reads(copy), planted


def test_every_variable_read_is_registered():
    """config.env_* refuse a name the registry lacks, so a read cannot bypass the table."""
    with pytest.raises(KeyError, match="HKJIT_NOT_A_VARIABLE"):
        config.env_str("HKJIT_NOT_A_VARIABLE")
    literals = set()
    for p in (SRC / "hkjit").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in \
                    ("env_str", "env_raw", "env_set", "env_float", "env_choice", "env_paths") and node.args \
                    and isinstance(node.args[0], ast.Constant):
                literals.add(node.args[0].value)
    assert literals and literals <= set(config.VARS), sorted(literals - set(config.VARS))


# ------------------------------------------------------------------------------------------------ the key
def test_build_env_is_the_registry_s():
    """The key's env inputs are the registry's build variables. The set is pinned: changing it changes every key
    (all caches rebuild), so it must be a deliberate edit of this line too."""
    from hkjit.keys import key_inputs_of
    from hkjit.specs import get_spec
    from hkjit.toolchain import resolve
    assert set(config.BUILD_ENV_VARS) == {"HIPCC_COMPILE_FLAGS_APPEND", "HIPCC_LINK_FLAGS_APPEND", "HIP_PLATFORM",
                                          "NVCC_APPEND_FLAGS", "NVCC_PREPEND_FLAGS", "HKJIT_EXTRA_CFLAGS"}
    inputs = key_inputs_of(resolve(get_spec("cpu")))
    assert sorted(inputs["env"]) == sorted(config.BUILD_ENV_VARS)


# ------------------------------------------------------------------------------------------------ bad values
@pytest.mark.parametrize("name,value,call", [
    ("HKJIT_LOCK_TIMEOUT", "abc", config.lock_timeout),
    ("HKJIT_LOCK_TIMEOUT", "nan", config.lock_timeout),
    ("HKJIT_PREPARED_CACHE_MB", "lots", lambda: config.env_float("HKJIT_PREPARED_CACHE_MB", 1024)),
    ("HKJIT_DISPATCH", "fast", lambda: config.env_choice("HKJIT_DISPATCH", ("auto", "kernel", "torch"), "auto")),
])
def test_bad_value_is_a_config_error_naming_variable_value_and_fix(monkeypatch, name, value, call):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as exc:
        call()
    msg = str(exc.value)
    assert isinstance(exc.value, HkjitError) and isinstance(exc.value, ValueError)
    assert f"{name}={value!r}" in msg and "unset it for the default" in msg, msg


def test_bad_values_fail_in_one_line_at_the_cli_and_as_config_error_in_a_lock(tmp_path):
    """The CLI prints a ConfigError as one line and exits 2 (`cache import` reads HKJIT_IMPORT_MAX_BYTES before
    anything else); a build lock taken with HKJIT_LOCK_TIMEOUT=abc raises ConfigError (before: a bare
    ValueError)."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "HKJIT_CACHE_DIR": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "hkjit", "cache", "import", str(tmp_path / "none.tgz")],
                       capture_output=True, text=True, env={**env, "HKJIT_IMPORT_MAX_BYTES": "lots"})
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "HKJIT_IMPORT_MAX_BYTES='lots'" in p.stderr
    code = "from hkjit.cache.lock import BuildLock; import sys; BuildLock(sys.argv[1], 'x')"
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True,
                       env={**env, "HKJIT_LOCK_TIMEOUT": "abc"})
    assert p.returncode == 1 and "ConfigError: HKJIT_LOCK_TIMEOUT='abc' is not usable" in p.stderr, p.stderr


def test_doctor_lists_what_is_set(monkeypatch):
    monkeypatch.setenv("HKJIT_LOCK_TIMEOUT", "12")
    monkeypatch.setenv("HKJIT_MISSPELT", "1")
    monkeypatch.setenv("CXX", "c++")
    monkeypatch.setenv("RANK", "3")
    env = config.env_in_force()
    assert env["HKJIT_LOCK_TIMEOUT"] == "12" and env["HKJIT_MISSPELT"] == "1" and env["CXX"] == "c++"
    assert "RANK" not in env
    assert "HKJIT_MISSPELT" in config.unknown_hkjit_vars() and "HKJIT_LOCK_TIMEOUT" not in config.unknown_hkjit_vars()


def _write_readme() -> None:
    text = README.read_text()
    start, end = readme_table(text)
    README.write_text(text[:start] + config.markdown_table() + text[end:])
    print(f"rewrote the environment table of {README}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {WRITE_COMMAND}")
    _write_readme()
