"""hkjit.warmup as users call it (issue 17.2): arch= a string or a list, kernel=, jobs=, as the CLI's --arch,
--kernel, -j; bad arguments raise naming the fix in Python terms. Also the packaging promises users meet on the
first command (17.3, 17.4): ninja and numpy are dependencies, and a CLI call prints nothing torch did not mean."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib

from helpers import REPO, child_env, copy_cache

from hkjit.cache.layout import Layout

CALLS = textwrap.dedent("""
    import json, torch
    import hkjit
    out = {}
    def row(results):
        return [(r.arch, r.kernel, r.status, bool(r.path)) for r in results]
    out["arch_kw"] = row(hkjit.warmup(arch="cpu"))
    out["positional"] = row(hkjit.warmup("cpu"))
    out["list"] = row(hkjit.warmup(arch=["cpu"], kernel="gemm_bf16", jobs=2))
    out["kernel_list"] = row(hkjit.warmup(arch="cpu", kernel=["gemm_bf16"]))
    out["cpu_gfx950"] = [(a, s) for a, _k, s, _p in row(hkjit.warmup(arch=["cpu", "gfx950"]))]
    errors = {}
    for name, kwargs in {"unknown_arch": {"arch": "c"}, "unknown_kernel": {"arch": "cpu", "kernel": "gemm_fp8"},
                         "jobs": {"arch": "cpu", "jobs": 0}, "bad_type": {"arch": 950},
                         "no_gpu_default": {}}.items():
        try:
            hkjit.warmup(**kwargs)
        except Exception as e:
            errors[name] = [type(e).__name__, str(e)]
    out["errors"] = errors
    out["gpu"] = torch.cuda.is_available()
    print(json.dumps(out))
""")


def test_warmup_python_api_mirrors_the_cli(built_cache, tmp_path):
    root = copy_cache(built_cache, tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-c", CALLS], env=child_env(root), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    hit = [["cpu", "gemm_bf16", "hit", True]]
    assert out["arch_kw"] == hit and out["positional"] == hit and out["list"] == hit and out["kernel_list"] == hit
    assert out["cpu_gfx950"] == [["cpu", "hit"], ["gfx950", "failed"]]       # this CPU torch cannot build gfx950
    err = out["errors"]
    assert err["unknown_arch"][0] == "UnsupportedTargetError" and "'c'" in err["unknown_arch"][1]
    assert "gfx950" in err["unknown_arch"][1] and "cpu" in err["unknown_arch"][1]
    assert err["unknown_kernel"][0] == "UnsupportedTargetError" and "gemm_fp8" in err["unknown_kernel"][1]
    assert err["jobs"][0] == "ValueError" and "jobs" in err["jobs"][1]
    assert err["bad_type"][0] == "TypeError" and "arch=" in err["bad_type"][1]
    if not out["gpu"]:
        kind, msg = err["no_gpu_default"]
        assert kind == "UnsupportedTargetError" and "arch=" in msg and "--arch" not in msg, msg
    assert sorted(p.name for p in (Layout(root).arch_dir("cpu")).iterdir()) == \
        sorted(p.name for p in (Layout(built_cache).arch_dir("cpu")).iterdir())          # nothing was rebuilt


def test_first_command_needs_nothing_outside_the_dependencies():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in deps}
    assert {"torch", "ninja", "numpy"} <= names, names          # load_inline builds with ninja; torch imports numpy


def test_cli_prints_nothing_unasked(tmp_path):
    """torch without numpy prints "Failed to initialize NumPy" on import: no CLI call may show such noise."""
    proc = subprocess.run([sys.executable, "-m", "hkjit", "cache", "ls"], env=child_env(tmp_path / "empty"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
