"""The cache key: content, not paths; every build-affecting input changes it; key.json explains a miss."""
from __future__ import annotations

import copy
import shutil
import subprocess
import sys

import torch

from hkjit.config import BUILD_ENV_VARS
from hkjit.keys import diff_inputs, key_inputs, key_of
from hkjit.specs import get_spec
from helpers import REPO, child_env




def test_key_covers_every_input_kind():
    inputs = key_inputs(get_spec("cpu"))
    assert set(inputs) == {"format", "kernel", "arch", "files", "libraries", "flags", "compiler", "torch",
                           "python", "env"}
    assert inputs["torch"]["version"] == torch.__version__ and "cxx11abi" in inputs["torch"]
    assert set(inputs["files"]) == {"gemm_reference.cpp", "gemm_binding.cpp", "hkjit_gemm.h"}
    assert inputs["compiler"] and inputs["python"]
    assert set(inputs["env"]) == set(BUILD_ENV_VARS)
    assert str(REPO) not in repr(inputs), "an absolute path leaked into the key"


def test_key_changes_with_flag_torch_version_env_and_header_byte(library_tree, monkeypatch):
    spec = get_spec("cpu").replace(libraries=("hipkittens",))
    monkeypatch.setenv("HIPKITTENS_ROOT", str(library_tree))
    base = key_inputs(spec)
    k0 = key_of(base)
    assert key_of(key_inputs(spec)) == k0                                            # deterministic

    flagged = key_inputs(spec.replace(cflags=spec.cflags + ("-DHKJIT_X=1",)))
    assert key_of(flagged) != k0 and [d[0] for d in diff_inputs(base, flagged)] == ["flags.cflags"]

    other_torch = copy.deepcopy(base)
    other_torch["torch"]["version"] = "2.12.0+cpu"
    assert key_of(other_torch) != k0
    assert diff_inputs(base, other_torch) == [("torch.version", torch.__version__, "2.12.0+cpu")]

    monkeypatch.setenv("HKJIT_EXTRA_CFLAGS", "-march=native")
    assert key_of(key_inputs(spec)) != k0
    monkeypatch.setenv("HKJIT_EXTRA_CFLAGS", "")                                        # empty == unset
    assert key_of(key_inputs(spec)) == k0

    header = library_tree / "include" / "common" / "base.cuh"
    header.write_bytes(header.read_bytes().replace(b"64", b"65"))                      # one byte
    changed = key_inputs(spec)
    assert key_of(changed) != k0 and [d[0] for d in diff_inputs(base, changed)] == ["libraries.hipkittens"]


def test_same_key_from_two_checkouts_in_different_folders(tmp_path, library_tree):
    """Two copies of the project and of the library, in different folders: the same key (content, not paths)."""
    code = ("from hkjit.keys import key_inputs, key_of\nfrom hkjit.specs import get_spec\n"
            "import sys\nspec = get_spec('cpu').replace(libraries=('hipkittens',))\n"
            "print(key_of(key_inputs(spec)))")
    keys = []
    for name in ("checkout one", "elsewhere/checkout-two"):
        dst = tmp_path / name
        shutil.copytree(REPO / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copytree(REPO / "kernels", dst / "kernels")
        lib = shutil.copytree(library_tree, dst / "HipKittens")
        env = child_env(tmp_path / f"cache-{len(keys)}", HIPKITTENS_ROOT=str(lib))
        env["PYTHONPATH"] = str(dst / "src")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        keys.append(out.stdout.strip())
    assert keys[0] == keys[1] and len(keys[0]) == 32


def test_kernel_source_byte_changes_key(tmp_path):
    dst = tmp_path / "checkout"
    shutil.copytree(REPO / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "kernels", dst / "kernels")
    code = "from hkjit.keys import key_inputs, key_of\nfrom hkjit.specs import get_spec\n" \
           "print(key_of(key_inputs(get_spec('cpu'))))"
    env = child_env(tmp_path / "cache")
    env["PYTHONPATH"] = str(dst / "src")
    run = lambda: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout
    before = run()
    ref = dst / "kernels" / "gemm_reference.cpp"
    ref.write_text(ref.read_text() + "\n// one more line\n")
    assert run() != before and before.strip()


def test_warm_library_check_catches_every_kind_of_change(tmp_path, library_tree, monkeypatch):
    """A warm start stats the recorded listing instead of walking or reading the tree: each change still shows."""
    import os
    from hkjit.cache.memo import Memo
    spec = get_spec("cpu").replace(libraries=("hipkittens",))
    monkeypatch.setenv("HIPKITTENS_ROOT", str(library_tree))
    memo = tmp_path / "memo.json"

    def lib_hash() -> str:
        Memo._loaded.pop(str(memo), None)                 # as a fresh process: the memo is read from disk
        return key_inputs(spec, memo)["libraries"]["hipkittens"]

    inc = library_tree / "include"
    h0 = lib_hash()
    assert lib_hash() == h0 and "tree:" in memo.read_text()
    (inc / "common" / "extra.cuh").write_text("// new\n")                    # added in a subfolder
    h1 = lib_hash()
    assert h1 != h0
    (inc / "common" / "extra.cuh").rename(inc / "common" / "renamed.cuh")    # renamed
    h2 = lib_hash()
    assert h2 not in (h0, h1)
    base = inc / "common" / "base.cuh"                                       # same size, mtime put back
    st = base.stat()
    base.write_bytes(base.read_bytes().replace(b"64", b"32"))
    os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns))
    h3 = lib_hash()
    assert h3 not in (h0, h1, h2)
    (inc / "common" / "renamed.cuh").unlink()                                # removed
    base.write_bytes(base.read_bytes().replace(b"32", b"64"))                # and the edit undone
    assert lib_hash() == h0                                                  # content, not history
