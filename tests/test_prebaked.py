"""A pre-baked cache on a node that only runs (issue 17.1): no compiler and no header library on PATH or in the
environment, the cache read-only. The hit must still load and compute correctly, taking the compiler identity
(and, for GPU kernels, the header content) from the entry's key.json; every input that can be checked there
(hkjit's sources and flags, torch, Python, arch, cache format) must still match, and a node that can build keeps
the full key.

Real processes: a child whose PATH holds only a link to this Python, a real read-only mount (or chmod)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import child_env, copy_cache, read_only

from hkjit.cache.entry import iter_entries, verify_entry
from hkjit.cache.layout import KEY_JSON, MANIFEST, VERIFIED_STAMP, Layout
from hkjit.fsutil import atomic_write_text
from hkjit.keys import key_of

#: Variables that locate a compiler or a header library: a node that only runs has none of them.
TOOL_VARS = ("CXX", "CC", "HIPKITTENS_ROOT", "THUNDERKITTENS_ROOT", "CUDA_HOME", "CUDA_PATH", "HIP_PATH",
             "HIP_CLANG_PATH", "HKJIT_TOOLCHAIN_DIR", "HKJIT_HIP_CLANG")

RUN = textwrap.dedent("""
    import json, shutil, sys, time
    import torch
    import hkjit
    from hkjit.keys import from_record
    from hkjit.loader import load_cached
    from hkjit.specs import get_spec
    assert shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("ninja") is None
    try:
        loaded = load_cached(get_spec("cpu"))
    except Exception as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
        sys.exit(0)
    g = torch.Generator().manual_seed(time.time_ns() % 2**31)
    a = torch.randn(67, 150, generator=g).bfloat16(); b = torch.randn(150, 45, generator=g).bfloat16()
    c = torch.full((67, 45), float("nan"), dtype=torch.bfloat16)
    with hkjit.dispatch("kernel"):
        hkjit.gemm(a, b, out=c)
    ref = a.double() @ b.double()
    err = ((c.double() - ref).norm() / ref.norm()).item()
    print(json.dumps({"built": loaded.built, "err": err, "path": str(loaded.path), "key": loaded.key,
                      "from_record": list(from_record(loaded.key))}))
""")


def run_only_env(tmp_path: Path, root: Path, **extra: str) -> dict:
    """The environment of a node that only runs: no compiler or header variable, PATH = a folder holding a link
    to this Python and nothing else (so c++, g++, clang++, hipcc, nvcc and ninja are not found)."""
    bare = tmp_path / "bare-bin"
    bare.mkdir(exist_ok=True)
    if not (bare / "python").exists():
        (bare / "python").symlink_to(sys.executable)
    env = {k: v for k, v in child_env(root, **extra).items()
           if k not in TOOL_VARS and not k.startswith("ROCM_")}
    env["PATH"] = str(bare)
    return env


def run_in(env: dict, code: str = RUN) -> dict:
    proc = subprocess.run([env["PATH"] + "/python", "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def the_entry(root: Path) -> Path:
    entries = [e for _a, _k, _key, e in iter_entries(root)]
    assert len(entries) == 1, entries
    return entries[0]


def rewrite_record(entry: Path, change) -> Path:
    """Give the entry consistent key inputs changed by `change` (key.json, folder name and manifest agree: a
    valid entry built elsewhere, not a corrupt one)."""
    inputs = json.loads((entry / KEY_JSON).read_text())
    change(inputs)
    key = key_of(inputs)
    moved = entry.parent / f"{entry.name.rsplit('-', 1)[0]}-{key}"
    entry.rename(moved)
    atomic_write_text(moved / KEY_JSON, json.dumps(inputs))
    manifest = json.loads((moved / MANIFEST).read_text())
    manifest["key"] = key
    atomic_write_text(moved / MANIFEST, json.dumps(manifest))
    (moved / VERIFIED_STAMP).unlink(missing_ok=True)
    assert verify_entry(moved).ok
    return moved


def test_read_only_prebaked_cache_runs_without_compiler_or_headers(built_cache, tmp_path):
    shipped = copy_cache(built_cache, tmp_path / "shipped")
    entry = the_entry(shipped)
    (entry / VERIFIED_STAMP).unlink(missing_ok=True)              # as unpacked on the node: never checked there
    own = tmp_path / "own"
    with read_only(shipped):
        # the shipped cache as a read-only layer beside an empty writable root, then as the (read-only) root itself
        as_layer = run_in(run_only_env(tmp_path, own, HKJIT_CACHE_PATH=str(shipped)))
        as_root = run_in(run_only_env(tmp_path, shipped))
        doctor, why = (subprocess.run([str(tmp_path / "bare-bin" / "python"), "-m", "hkjit", *cmd, "--json"],
                                      env=run_only_env(tmp_path, own, HKJIT_CACHE_PATH=str(shipped)),
                                      capture_output=True, text=True, timeout=300)
                       for cmd in (["doctor"], ["cache", "why"]))
    for res in (as_layer, as_root):
        assert "error" not in res, res
        assert not res["built"] and res["err"] < 1e-2, res        # bf16 inputs, fp32 accumulation: ~2e-3
        assert Path(res["path"]) == entry and res["key"] == entry.name.rsplit("-", 1)[1]
        assert res["from_record"] == ["compiler"]
    assert not own.exists() or not list(iter_entries(own))        # nothing was built
    assert json.loads(why.stdout)["status"] == "hit" and json.loads(why.stdout)["from_record"] == ["compiler"]
    report = json.loads(doctor.stdout)
    state = report["archs"]["cpu"]["kernels"]["gemm_bf16"]
    assert state["cached"] and state["from_record"] == ["compiler"], state
    compiler = [p for p in report["problems"] if p["what"] == "compiler (cpu)"]
    assert compiler and not compiler[0]["blocking"] and "pre-baked" in compiler[0]["message"], compiler


def test_prebaked_entry_of_another_torch_or_other_sources_is_refused_without_compiler(built_cache, tmp_path):
    def other_torch(inputs):
        inputs["torch"]["version"] = "2.12.0+cpu"

    def other_sources(inputs):
        inputs["files"]["gemm_binding.cpp"] = "0" * 32

    for name, change, field in (("torch", other_torch, "torch.version"),
                                ("sources", other_sources, "files.gemm_binding.cpp")):
        shipped = copy_cache(built_cache, tmp_path / f"shipped-{name}")
        rewrite_record(the_entry(shipped), change)
        with read_only(shipped):
            res = run_in(run_only_env(tmp_path, tmp_path / f"own-{name}", HKJIT_CACHE_PATH=str(shipped)))
        assert res.get("error") == "MissingLibraryError", res
        assert "no compiler found for cpu" in res["message"] and field in res["message"], res["message"]


def test_a_node_that_can_build_keeps_the_full_key(built_cache, tmp_path):
    """An entry whose only difference is the compiler is never taken where a compiler is on PATH."""
    root = copy_cache(built_cache, tmp_path / "other-compiler")
    rewrite_record(the_entry(root), lambda inputs: inputs.update(compiler="g++ (Other) 99.1.0"))
    code = ("from hkjit.loader import find\nfrom hkjit.specs import get_spec\n"
            "if find(get_spec('cpu')) is None:\n    print('miss')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(root), capture_output=True, text=True,
                          timeout=300)
    assert proc.stdout.startswith("miss"), proc.stdout + proc.stderr


def test_run_key_for_gfx950_takes_compiler_and_headers_from_the_record(tmp_path, monkeypatch):
    """The field-by-field match for a GPU kernel, in-process (this torch cannot load a gfx950 module, but the key
    logic is arch-independent): hipcc absent, HipKittens absent; the record's compiler and header hash are taken,
    everything else must match."""
    from hkjit.errors import MissingLibraryError
    from hkjit.keys import from_record, key_inputs_of, resolve_key
    from hkjit.specs import get_spec
    from hkjit.toolchain import resolve
    monkeypatch.setenv("ROCM_HOME", str(tmp_path / "no-rocm"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("HIPKITTENS_ROOT", str(tmp_path / "no-hipkittens"))
    monkeypatch.delenv("HKJIT_CACHE_PATH", raising=False)
    spec = get_spec("gfx950")
    request = resolve(spec)
    inputs = key_inputs_of(request)
    assert sorted(dict(request.missing)) == ["compiler", "libraries.hipkittens"]
    root = tmp_path / "cache"

    def publish(recorded: dict) -> str:
        key = key_of(recorded)
        entry = Layout(root).entry("gfx950", spec.name, key)
        entry.mkdir(parents=True)
        module = entry / "hkjit_gemm_gfx950.so"
        module.write_bytes(os.urandom(4096))
        from hkjit.fsutil import file_xxh3
        (entry / KEY_JSON).write_text(json.dumps(recorded))
        (entry / MANIFEST).write_text(json.dumps({"format": recorded["format"], "key": key,
                                                  "module_file": module.name, "module_name": "hkjit_gemm_gfx950",
                                                  "size": 4096, "xxh3": file_xxh3(module)}))
        return key

    with pytest.raises(MissingLibraryError, match="no pre-baked gfx950/gemm_bf16 entry"):
        resolve_key(request, root)
    baked = dict(inputs, compiler="HIP version: 7.2.3 | AMD clang version 20.0.0",
                 libraries={"hipkittens": "ab" * 16})
    stale = json.loads(json.dumps(baked))
    stale["flags"]["device_cflags"] = stale["flags"]["device_cflags"][:-1]
    publish(stale)                                   # other flags: never taken
    with pytest.raises(MissingLibraryError, match="flags.device_cflags"):
        resolve_key(request, root)
    key = publish(baked)
    assert resolve_key(request, root) == (key, baked)
    assert from_record(key) == ("compiler", "libraries.hipkittens")
