"""The build request (toolchain.BuildRequest): what the builder hands to load_inline is, field by field, what the
key hashes; and the loader's three steps (find / ensure / load) each do their one job.

The agreement check (`unhashed`) recomputes every hash itself from the files (xxh3 of each source, tree hash of
each include dir, the compiler's own `--version`), so it does not trust the request's copy of them. Its mutation
test drops one input from the hashed side and checks that the argument it covers is reported."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xxhash

from helpers import child_env, child_result, copy_cache

from hkjit.config import BUILD_ENV_VARS
from hkjit.keys import key_inputs_of, key_of
from hkjit.libraries import tree_hash
from hkjit.specs import get_spec, kernels_dir
from hkjit.toolchain import compiler_version, resolve




@pytest.fixture
def request_env(monkeypatch, library_tree):
    """A CPU spec that includes a header library, with extra flags and a compiler variable set."""
    monkeypatch.setenv("HIPKITTENS_ROOT", str(library_tree))
    monkeypatch.setenv("HKJIT_EXTRA_CFLAGS", "-DHKJIT_EXTRA_ONE=1  -fno-math-errno")
    monkeypatch.setenv("NVCC_APPEND_FLAGS", "-lineinfo")
    return get_spec("cpu").replace(libraries=("hipkittens",))


def unhashed(worker: dict, inputs: dict) -> list[str]:
    """Every argument of the load_inline call (`worker`: BuildRequest.worker_request) that the key inputs do not
    account for; [] when everything built is hashed."""
    problems = []
    kdir = str(kernels_dir())
    for role in ("host_sources", "device_sources"):
        for path in worker[role]:
            name = os.path.relpath(path, kdir)
            digest = xxhash.xxh3_128_hexdigest(Path(path).read_bytes())
            if inputs["files"].get(name) != digest:
                problems.append(f"{role}: {path}")
    flags = inputs["flags"]
    extra = inputs["env"].get("HKJIT_EXTRA_CFLAGS", "").split()
    for which in ("cflags", "device_cflags"):
        own = list(worker[which])
        if extra and own[-len(extra):] == extra:    # the extra flags come last, in order
            own = own[:-len(extra)]
        for flag in own:
            if flag.startswith("-I"):
                inc = flag[2:]
                if inc == kdir:                  # our headers: each one the sources include is hashed
                    continue
                hashed = set(inputs["libraries"].values())
                if tree_hash(Path(inc)) not in hashed:
                    problems.append(f"{which}: {flag}")
            elif flag not in flags[which]:
                problems.append(f"{which}: {flag}")
        if [f for f in own if not f.startswith("-I")] != flags[which]:
            problems.append(f"{which}: order or content differs from the hashed {flags[which]}")
    if worker["ldflags"] != flags["ldflags"]:
        problems.append(f"ldflags: {worker['ldflags']}")
    if worker["functions"] != flags["functions"]:
        problems.append(f"functions: {worker['functions']}")
    for name, value in worker["env"].items():
        if name in BUILD_ENV_VARS:
            if inputs["env"].get(name) != value:
                problems.append(f"env: {name}={value}")
        elif name == "CXX":                      # the compiler pinned: its identity is hashed
            if compiler_version(os.path.realpath(value)) != inputs["compiler"]:
                problems.append(f"env: {name}={value}")
        else:
            problems.append(f"env: {name}={value} (not a build variable)")
    return problems


def test_everything_the_builder_hands_to_load_inline_is_hashed(request_env, tmp_path):
    request = resolve(request_env)
    worker = request.worker_request("hkjit_probe", tmp_path / "build")
    inputs = key_inputs_of(request)
    assert unhashed(worker, inputs) == []
    # what the check went through: nothing was empty
    assert worker["host_sources"] and f"-I{kernels_dir()}" in worker["cflags"]
    assert any(f.startswith("-I") and "lib" in f for f in worker["cflags"])
    assert worker["cflags"][-2:] == ["-DHKJIT_EXTRA_ONE=1", "-fno-math-errno"]
    assert worker["env"]["NVCC_APPEND_FLAGS"] == "-lineinfo" and worker["env"]["CXX"] == request.compiler
    assert "HKJIT_EXTRA_CFLAGS" in worker["env"]
    assert set(inputs["files"]) == {s.name for s in request.sources}


@pytest.mark.parametrize("drop", ["files", "library", "flag", "extra", "env", "compiler", "functions"])
def test_the_agreement_check_fails_when_the_key_drops_an_input(request_env, tmp_path, drop):
    """Mutation: remove one input from the hashed side; the check must name the load_inline argument it covered."""
    request = resolve(request_env)
    worker = request.worker_request("hkjit_probe", tmp_path / "build")
    inputs = copy.deepcopy(key_inputs_of(request))
    if drop == "files":
        inputs["files"].pop("gemm_binding.cpp")
    elif drop == "library":
        inputs["libraries"].clear()
    elif drop == "flag":
        inputs["flags"]["cflags"] = inputs["flags"]["cflags"][1:]
    elif drop == "extra":
        inputs["env"]["HKJIT_EXTRA_CFLAGS"] = ""
    elif drop == "env":
        inputs["env"]["NVCC_APPEND_FLAGS"] = ""
    elif drop == "compiler":
        inputs["compiler"] = "g++ (Other) 1.0"
    elif drop == "functions":
        inputs["flags"]["functions"] = inputs["flags"]["functions"][:1]
    assert unhashed(worker, inputs), f"dropping {drop} from the key went unnoticed"


@pytest.mark.parametrize("change", ["cflags", "device_cflags", "ldflags", "functions", "extra", "build_env",
                                    "library_byte"])
def test_changing_any_built_input_changes_the_key(request_env, library_tree, monkeypatch, change):
    base = resolve(request_env)
    spec = request_env
    if change in ("cflags", "device_cflags", "ldflags"):
        spec = spec.replace(**{change: getattr(spec, change) + ("-DHKJIT_MUTATED=1",)})
    elif change == "functions":
        spec = spec.replace(functions=spec.functions[:1])
    elif change == "extra":
        monkeypatch.setenv("HKJIT_EXTRA_CFLAGS", "-DHKJIT_EXTRA_ONE=2")
    elif change == "build_env":
        monkeypatch.setenv("HIPCC_COMPILE_FLAGS_APPEND", "-O1")
    elif change == "library_byte":
        header = library_tree / "include" / "common" / "base.cuh"
        header.write_bytes(header.read_bytes().replace(b"64", b"65"))
    changed = resolve(spec)
    old, new = base.worker_request("m", Path("/b")), changed.worker_request("m", Path("/b"))
    assert old != new or change == "library_byte", "the mutation did not reach the build"
    assert key_of(key_inputs_of(changed)) != key_of(key_inputs_of(base))


def test_the_key_is_a_pure_function_of_the_request(request_env):
    a, b = resolve(request_env), resolve(request_env)
    assert a == b and key_inputs_of(a) == key_inputs_of(b)


def test_missing_compiler_and_headers_are_recorded_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("ROCM_HOME", str(tmp_path / "no-rocm"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("HIPKITTENS_ROOT", str(tmp_path / "no-hipkittens"))
    request = resolve(get_spec("gfx950"))
    missing = dict(request.missing)
    assert list(missing) == ["libraries.hipkittens", "compiler"]
    assert "HIPKITTENS_ROOT" in missing["libraries.hipkittens"] and "ROCM_HOME" in missing["compiler"]
    assert request.compiler is None and key_inputs_of(request)["compiler"] is None
    assert "hipkittens" not in key_inputs_of(request)["libraries"]


# ------------------------------------------------------------------------------------------------ the loader
STEPS = textwrap.dedent("""
    import json, sys
    from hkjit import loader
    from hkjit.specs import get_spec
    spec = get_spec("cpu")
    found = loader.find(spec)
    out = {"found": None if found is None else str(found.path)}
    if found is not None:
        ensured = loader.ensure(spec)
        out["ensure"] = [str(ensured.path), ensured.built, ensured.key == found.key]
        out["imported_after_ensure"] = any(m.startswith("hkjit_gemm_bf16_cpu") for m in sys.modules)
        loaded = loader.load(spec)
        out["load"] = [str(loaded.path), loaded.built, loaded.module.__name__.startswith("hkjit_gemm_bf16_cpu")]
        out["cpp_extension"] = "torch.utils.cpp_extension" in sys.modules
    print(json.dumps(out))
""")


def test_find_ensure_load_on_a_hit(built_cache, tmp_path):
    """A warm cache: find gives the entry, ensure the same one without importing it, load imports it; nothing
    imports cpp_extension (the hit path never builds)."""
    root = copy_cache(built_cache, tmp_path / "warm")
    res = child_result(subprocess.run([sys.executable, "-c", STEPS], env=child_env(root), capture_output=True,
                                      text=True, timeout=300))
    assert res["found"] and Path(res["found"]).is_relative_to(root)
    assert res["ensure"] == [res["found"], False, True] and res["imported_after_ensure"] is False
    assert res["load"] == [res["found"], False, True] and res["cpp_extension"] is False


def test_find_on_a_miss_is_none_and_builds_nothing(tmp_path):
    root = tmp_path / "empty"
    res = child_result(subprocess.run([sys.executable, "-c", STEPS], env=child_env(root), capture_output=True,
                                      text=True, timeout=300))
    assert res == {"found": None}
    assert not any(root.rglob("*.so")) and not any(root.rglob("build.log"))


def test_a_built_flag_reaches_the_compiler(tmp_path, monkeypatch):
    """The extra flags of the request reach the compiler's command line (and a build that fails is a "failed"
    warmup result naming it). A flag g++ rejects makes the compile fail at once: no kernel is compiled."""
    from hkjit.warmup import warmup_one
    monkeypatch.setenv("HKJIT_EXTRA_CFLAGS", "-DHKJIT_PROBE_FLAG=7 -fhkjit-no-such-flag")
    res = warmup_one(get_spec("cpu"), tmp_path / "cache")
    assert res.status == "failed" and "hkjit-no-such-flag" in res.error, res
    logs = list((tmp_path / "cache").rglob("*.log"))
    assert logs and "-DHKJIT_PROBE_FLAG=7" in logs[0].read_text(errors="replace")
