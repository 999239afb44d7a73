"""`python -m hkjit ...` as real subprocesses on the CPU: warmup, cache ls/info/verify/clear/prune/export/import/why,
doctor, selftest, bench, and usage errors (issue 5).

Two real builds of the CPU reference kernel (~35 s each) run in parallel once per module: the default one, and one
with HKJIT_EXTRA_CFLAGS set (a key input, so a second, distinct entry). Every other test copies what it needs
from them into its own folder, so the whole file stays around two minutes on two cores.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
sys.path.insert(0, str(SRC))

from hkjit.cache.layout import FORMAT_DIR, KEY_JSON, MANIFEST, SPECIAL_DIRS, USED_STAMP, Layout  # noqa: E402

EXTRA_FLAG = "-DHKJIT_CLI_TEST=1"
GEMM_SNIPPET = """
import torch, hkjit
a = torch.randn(100, 200).bfloat16(); b = torch.randn(200, 50).bfloat16()
c = hkjit.gemm(a, b)
ref = a.double() @ b.double()
err = ((c.double() - ref).norm() / ref.norm()).item()
assert err < 1e-2, err
print("gemm ok", err)
"""


def _env(cache_dir: Path | None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HKJIT_")}
    env["PYTHONPATH"] = str(SRC)
    if cache_dir is not None:
        env["HKJIT_CACHE_DIR"] = str(cache_dir)
    env.update(extra)
    return env


def hk(*args: str, cache_dir: Path | None = None, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hkjit", *args], env=_env(cache_dir, **extra), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def hk_json(*args: str, cache_dir: Path | None = None, rc: int = 0, **extra: str):
    p = hk(*args, "--json", cache_dir=cache_dir, **extra)
    assert p.returncode == rc, (p.stdout, p.stderr)
    return json.loads(p.stdout)


def entries(root: Path) -> list[Path]:
    fmt = Layout(root).format_dir
    return sorted(p for p in fmt.glob("*/*-*") if p.is_dir() and p.parent.name not in SPECIAL_DIRS)


def build_dirs(root: Path) -> list[Path]:
    tmp = Layout(root).staging_dir
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


def module_file(entry: Path) -> Path:
    return entry / json.loads((entry / MANIFEST).read_text())["module_file"]


class Builds:
    def __init__(self, a: Path, x: Path, cold_a: dict, cold_a_stderr: str) -> None:
        self.a, self.x = a, x               # a: default build; x: built with HKJIT_EXTRA_CFLAGS=EXTRA_FLAG
        self.cold_a, self.cold_a_stderr = cold_a, cold_a_stderr
        self.entry_a, = entries(a)
        self.entry_x, = entries(x)

    def merged(self, dest: Path) -> Path:
        """A cache folder holding both entries."""
        for e in (self.entry_a, self.entry_x):
            shutil.copytree(e, Layout(dest).arch_dir("cpu") / e.name)
        return dest


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> Builds:
    a = tmp_path_factory.mktemp("cache_a")
    x = tmp_path_factory.mktemp("cache_x")
    cmd = [sys.executable, "-m", "hkjit", "warmup", "--arch", "cpu", "--json"]
    pa = subprocess.Popen(cmd, env=_env(a), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    px = subprocess.Popen(cmd, env=_env(x, HKJIT_EXTRA_CFLAGS=EXTRA_FLAG), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    out_a, err_a = pa.communicate(timeout=600)
    out_x, err_x = px.communicate(timeout=600)
    assert pa.returncode == 0, (out_a, err_a)
    assert px.returncode == 0, (out_x, err_x)
    return Builds(a, x, json.loads(out_a), err_a)


# ------------------------------------------------------------------------------------------------------ warmup
def test_warmup_cold_then_warm(builds):
    cold = builds.cold_a
    assert [r["status"] for r in cold["results"]] == ["built"]
    assert cold["counts"] == {"built": 1, "hit": 0, "failed": 0}
    assert "[1/1] cpu/gemm_bf16 built in" in builds.cold_a_stderr      # progress line with its time
    assert cold["results"][0]["path"] == str(builds.entry_a)

    warm = hk("warmup", "--arch", "cpu", cache_dir=builds.a)
    assert warm.returncode == 0, warm.stderr
    row = next(line for line in warm.stdout.splitlines() if line.startswith("cpu "))
    assert " hit " in row and row.split()[4] == "ms", warm.stdout   # hits reported in milliseconds
    assert "0 built, 1 hit, 0 failed" in warm.stdout
    assert "[1/1] cpu/gemm_bf16 hit in" in warm.stderr

    doc = hk_json("warmup", "--arch", "cpu", "--cache-dir", str(builds.a), cache_dir=None)
    assert [r["status"] for r in doc["results"]] == ["hit"] and doc["results"][0]["seconds"] < 1.0
    assert doc["root"] == str(builds.a)
    assert build_dirs(builds.a) == []


def test_warmup_for_an_arch_this_torch_cannot_build(builds):
    import torch
    if torch.version.hip:
        pytest.skip("this torch can build gfx950")
    p = hk("warmup", "--arch", "gfx950", cache_dir=builds.a)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "gfx950  gemm_bf16  failed" in p.stdout
    assert "ROCm" in p.stdout and "Traceback" not in p.stderr


# ------------------------------------------------------------------------------------------------------ export/import
def test_export_import_then_a_fresh_process_uses_it_without_compiling(builds, tmp_path):
    archive = tmp_path / "cpu-cache.tar.gz"
    doc = hk_json("cache", "export", str(archive), "--arch", "cpu", cache_dir=builds.a)
    assert [e["key"] for e in doc["entries"]] == [builds.entry_a.name.rsplit("-", 1)[1]]
    with tarfile.open(archive) as tar:
        meta = json.loads(tar.extractfile("hkjit-archive.json").read())
    from hkjit.version import CACHE_FORMAT
    assert meta["format"] == CACHE_FORMAT and len(meta["entries"]) == 1 and meta["hkjit_version"]

    b = tmp_path / "imported"
    doc = hk_json("cache", "import", str(archive), cache_dir=b)
    assert doc["imported"] == [f"cpu/{builds.entry_a.name}"] and doc["refused"] == []
    assert [e.name for e in entries(b)] == [builds.entry_a.name] and build_dirs(b) == []
    again = hk_json("cache", "import", str(archive), cache_dir=b)
    assert again["imported"] == [] and len(again["skipped"]) == 1

    so = module_file(entries(b)[0])
    mtime = so.stat().st_mtime_ns
    p = subprocess.run([sys.executable, "-c", GEMM_SNIPPET], env=_env(b), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "gemm ok" in p.stdout, p.stderr
    assert "compiling" not in p.stderr                       # the first-use build warning never appeared
    assert build_dirs(b) == [] and len(entries(b)) == 1 and so.stat().st_mtime_ns == mtime

    # the imported folder as a read-only layer, with an empty writable root: still no compile
    empty = tmp_path / "empty"
    p = subprocess.run([sys.executable, "-c", GEMM_SNIPPET], env=_env(empty, HKJIT_CACHE_PATH=str(b)),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "gemm ok" in p.stdout, p.stderr
    assert "compiling" not in p.stderr and entries(empty) == [] and build_dirs(empty) == []


def _archive(path: Path, meta: dict, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("hkjit-archive.json", json.dumps(meta).encode())] + list(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        for name, target in (links or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tar.addfile(ti)
    return path


def _entry_members(entry: Path) -> dict[str, bytes]:
    return {f"{FORMAT_DIR}/cpu/{entry.name}/{p.name}": p.read_bytes() for p in sorted(entry.iterdir())
            if p.is_file() and p.name != USED_STAMP}


def test_import_refuses_other_formats_unsafe_foreign_and_corrupt_members(builds, tmp_path):
    from hkjit.version import CACHE_FORMAT
    e = builds.entry_a
    kernel, key = e.name.rsplit("-", 1)
    listing = {"arch": "cpu", "kernel": kernel, "key": key,
               "files": sorted(p.name for p in e.iterdir() if p.is_file() and p.name != USED_STAMP)}
    meta = {"format": CACHE_FORMAT, "hkjit_version": "test", "entries": [listing]}
    dest = tmp_path / "dest"

    other = _archive(tmp_path / "other.tgz", meta | {"format": CACHE_FORMAT + 98}, _entry_members(e))
    p = hk("cache", "import", str(other), cache_dir=dest)
    assert p.returncode == 2 and f"cache format {CACHE_FORMAT + 98}" in p.stderr and "Traceback" not in p.stderr

    evil = tmp_path / "evil.txt"
    unsafe = _archive(tmp_path / "unsafe.tgz", meta, {**_entry_members(e), "../evil.txt": b"x"},
                      links={f"{FORMAT_DIR}/cpu/{e.name}/link": "/etc/passwd"})
    p = hk("cache", "import", str(unsafe), cache_dir=dest)
    assert p.returncode == 1 and "unsafe path '../evil.txt'" in p.stdout and "nothing imported" in p.stdout
    assert not evil.exists() and entries(dest) == []

    members = _entry_members(e)
    so_name = f"{FORMAT_DIR}/cpu/{e.name}/{module_file(e).name}"
    data = bytearray(members[so_name])
    data[len(data) // 2] ^= 0xFF
    corrupt = _archive(tmp_path / "corrupt.tgz", meta, {**members, so_name: bytes(data)})
    doc = hk_json("cache", "import", str(corrupt), cache_dir=dest, rc=1)
    assert doc["imported"] == [] and "checksum" in doc["refused"][0]["reason"]
    assert entries(dest) == [] and build_dirs(dest) == []

    foreign = _archive(tmp_path / "foreign.tgz", meta, {**members, f"{FORMAT_DIR}/cpu/notes.txt": b"hi"})
    doc = hk_json("cache", "import", str(foreign), cache_dir=dest, rc=1)
    assert doc["imported"] == [f"cpu/{e.name}"] and "foreign member" in doc["refused"][0]["reason"]
    assert not (Layout(dest).arch_dir("cpu") / "notes.txt").exists()

    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar file at all" * 50)
    p = hk("cache", "import", str(junk), cache_dir=dest)
    assert p.returncode == 2 and "not a readable tar archive" in p.stderr
    p = hk("cache", "import", str(tmp_path / "missing.tgz"), cache_dir=dest)
    assert p.returncode == 2 and "no such file" in p.stderr


# ------------------------------------------------------------------------------------------------------ verify/prune/clear
def test_verify_catches_a_corrupted_entry(builds, tmp_path):
    d = tmp_path / "cache"
    shutil.copytree(Layout(builds.a).arch_dir("cpu"), Layout(d).arch_dir("cpu"))
    p = hk("cache", "verify", cache_dir=d)
    assert p.returncode == 0 and "0 bad" in p.stdout, p.stdout
    so = module_file(entries(d)[0])
    data = bytearray(so.read_bytes())
    data[len(data) // 2] ^= 0x01
    so.write_bytes(bytes(data))
    p = hk("cache", "verify", cache_dir=d)
    assert p.returncode == 1, p.stdout
    assert f"BAD  cpu/{builds.entry_a.name}" in p.stdout and "checksum" in p.stdout
    doc = hk_json("cache", "verify", cache_dir=d, rc=1)
    assert doc["ok"] is False and doc["results"][0]["entry"].endswith(builds.entry_a.name)
    assert entries(d) != []                                      # not moved without --fix
    p = hk("cache", "verify", "--fix", cache_dir=d)
    assert p.returncode == 1 and "moved to" in p.stdout
    assert entries(d) == [] and any((Layout(d).trash_dir).iterdir())
    assert hk("cache", "verify", cache_dir=d).returncode == 0


@pytest.mark.parametrize("older", ["a", "x"])
def test_prune_evicts_least_recently_used(builds, tmp_path, older):
    d = builds.merged(tmp_path / "cache")
    e_a, e_x = (Layout(d).arch_dir("cpu") / builds.entry_a.name), (Layout(d).arch_dir("cpu") / builds.entry_x.name)
    old, new = (e_a, e_x) if older == "a" else (e_x, e_a)
    now = time.time()
    for e, t in ((old, now - 3600), (new, now - 60)):
        (e / USED_STAMP).touch()
        os.utime(e / USED_STAMP, (t, t))
    from hkjit.fsutil import dir_size
    keep = dir_size(new) + 16 * 1024                            # room for one entry, not two
    assert hk_json("cache", "prune", "--max-size", "1G", cache_dir=d)["evicted"] == []
    doc = hk_json("cache", "prune", "--max-size", str(keep), cache_dir=d)
    assert [Path(e["path"]).name for e in doc["evicted"]] == [old.name]
    assert doc["after"] <= keep < doc["before"]
    assert entries(d) == [new]


def test_ls_info_and_clear(builds, tmp_path):
    d = builds.merged(tmp_path / "cache")
    docs = hk_json("cache", "ls", cache_dir=d)["entries"]
    assert sorted(Path(e["path"]).name for e in docs) == sorted([builds.entry_a.name, builds.entry_x.name])
    assert {Path(e["path"]).name: e["current"] for e in docs} == {builds.entry_a.name: True,
                                                                 builds.entry_x.name: False}
    assert all(e["status"] == "unverified" and e["size"] > 0 and e["built_at"] for e in docs)
    p = hk("cache", "ls", cache_dir=d)
    assert p.returncode == 0 and "unverified (current)" in p.stdout and "last used" in p.stdout
    assert all(e["status"] == "verified" for e in hk_json("cache", "ls", "--verify", cache_dir=d)["entries"])
    info = hk_json("cache", "info", cache_dir=d)
    assert info["root"]["entries"] == 2 and info["root"]["writable"] and info["layers"] == []
    key_x = builds.entry_x.name.rsplit("-", 1)[1]
    detail = hk_json("cache", "info", key_x[:10], cache_dir=d)["entries"]
    assert len(detail) == 1 and detail[0]["key_inputs"]["env"]["HKJIT_EXTRA_CFLAGS"] == EXTRA_FLAG

    from hkjit.validation import read_record, write_record
    key_a = builds.entry_a.name.rsplit("-", 1)[1]
    write_record(d, "cpu", "gemm_bf16", key_a, "gfx950 emulator", True, "made up by the test", kind="emulated")
    info = hk_json("cache", "info", cache_dir=d)["root"]          # an emulated pass is not a device validation
    assert info["validation_records"] == {"passed": 0, "failed": 0}
    assert info["emulated_records"] == {"passed": 1, "failed": 0}
    write_record(d, "cpu", "gemm_bf16", key_a, "cpu", False, "made up by the test")
    doc = hk_json("doctor", cache_dir=d, rc=1)                  # a rejected toolchain blocks the kernel
    assert any("rejected" in pr["message"] and pr["blocking"] for pr in doc["problems"])
    assert hk_json("cache", "clear", "--validation", cache_dir=d)["records"]
    assert read_record(d, "cpu", "gemm_bf16", key_a, "cpu") is None and len(entries(d)) == 2
    doc = hk_json("cache", "clear", "--arch", "cpu", cache_dir=d)
    assert len(doc["entries"]) == 2 and doc["bytes_freed"] > 0 and entries(d) == []


# ------------------------------------------------------------------------------------------------------ why
def test_why_names_the_changed_flag(builds, tmp_path):
    p = hk("cache", "why", "gemm_bf16", "--arch", "cpu", cache_dir=builds.a, HKJIT_EXTRA_CFLAGS=EXTRA_FLAG)
    assert p.returncode == 0, p.stderr
    assert f'env.HKJIT_EXTRA_CFLAGS: "" -> {EXTRA_FLAG}' in p.stdout, p.stdout
    doc = hk_json("cache", "why", cache_dir=builds.a, HKJIT_EXTRA_CFLAGS=EXTRA_FLAG)
    assert doc["status"] == "miss" and [x["field"] for x in doc["diffs"]] == ["env.HKJIT_EXTRA_CFLAGS"]
    assert doc["entry"] == str(builds.entry_a)

    d = builds.merged(tmp_path / "both")
    assert hk_json("cache", "why", cache_dir=d, HKJIT_EXTRA_CFLAGS=EXTRA_FLAG)["status"] == "hit"
    assert hk_json("cache", "why", cache_dir=d)["entry"].endswith(builds.entry_a.name)

    # an entry built by another torch: the diff names torch.version (nearest of two: fewest differing fields)
    from hkjit.keys import key_of
    inputs = json.loads((builds.entry_a / KEY_JSON).read_text())
    inputs["torch"]["version"] = "2.12.0"
    old = Layout(tmp_path / "old")
    fake = old.entry("cpu", "gemm_bf16", key_of(inputs))
    shutil.copytree(builds.entry_a, fake)
    (fake / KEY_JSON).write_text(json.dumps(inputs))
    x_copy = old.arch_dir("cpu") / builds.entry_x.name
    shutil.copytree(builds.entry_x, x_copy)
    p = hk("cache", "why", cache_dir=tmp_path / "old", HKJIT_EXTRA_CFLAGS="-DHKJIT_CLI_TEST=2")
    assert f"miss: nearest entry {x_copy} (of 2) differs in 1 key input" in p.stdout, p.stdout
    assert "env.HKJIT_EXTRA_CFLAGS" in p.stdout and "torch.version" not in p.stdout
    shutil.rmtree(x_copy)
    import torch
    p = hk("cache", "why", cache_dir=tmp_path / "old")
    assert f"torch.version: 2.12.0 -> {torch.__version__}" in p.stdout, p.stdout


# ------------------------------------------------------------------------------------------------------ doctor
def test_doctor_reports_what_it_found(builds):
    import torch
    doc = hk_json("doctor", cache_dir=builds.a)
    assert doc["ok"] is True and doc["target"] == ["cpu"]
    assert doc["torch"]["version"] == torch.__version__
    assert doc["archs"]["cpu"]["compiler"]["path"] and doc["archs"]["cpu"]["compiler"]["version"]
    assert doc["archs"]["cpu"]["kernels"]["gemm_bf16"]["cached"] is True
    assert doc["cache"]["root"]["path"] == str(builds.a) and doc["cache"]["root"]["entries"] == 1
    assert doc["cache"]["root"]["writable"] and doc["cache"]["root"]["free"] > 0
    assert doc["cache"]["locks"]["dir"] and "filesystem" in doc["cache"]["locks"]
    assert doc["env"]["HKJIT_CACHE_DIR"] == str(builds.a)
    assert set(doc["libraries"]) == {"hipkittens", "thunderkittens"}
    for lib in doc["libraries"].values():
        assert (lib["found"] and lib["path"] and len(lib["hash"]) == 32) or (not lib["found"] and lib["error"])
    p = hk("doctor", cache_dir=builds.a)
    assert p.returncode == 0 and "doctor: ok" in p.stdout and "compiler" in p.stdout
    if not torch.version.hip:
        p = hk("doctor", "--arch", "gfx950", cache_dir=builds.a)
        assert p.returncode == 1 and "BLOCKS" in p.stdout and "fix:" in p.stdout


# ------------------------------------------------------------------------------------------------------ selftest/bench
def test_selftest_on_cpu(builds, tmp_path):
    d = tmp_path / "cache"
    shutil.copytree(Layout(builds.a).arch_dir("cpu"), Layout(d).arch_dir("cpu"))
    p = hk("selftest", "--arch", "cpu", cache_dir=d)
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("shape (MxNxK)")
    for needle in ("x64 ", "x128 ", "x192 ", "x256 ", "x4160 ", "257x193", "bt", "a-strided", "a-t", "batched"):
        assert needle in p.stdout, needle
    assert "FAIL" not in p.stdout and "selftest: PASSED" in p.stdout
    key = builds.entry_a.name.rsplit("-", 1)[1]
    from hkjit.validation import read_record
    rec = read_record(d, "cpu", "gemm_bf16", key, "cpu")
    assert rec["passed"] is True and rec["detail"].startswith("selftest:")
    doc = hk_json("selftest", "--shapes", "33x17x65", "5x300x4160", "--layouts", "rows,bt,a-t", cache_dir=d)
    assert doc["passed"] and len(doc["results"]) == 6
    assert all(r["rel_err"] <= 1e-2 and r["path"] == "kernel" for r in doc["results"])
    assert build_dirs(d) == []


def test_bench_on_cpu(builds, tmp_path):
    p = hk("bench", "--shapes", "64x64x64", "96x80x130", "--repeat", "3", cache_dir=builds.a)
    assert p.returncode == 0, p.stderr
    assert "TFLOP/s" in p.stdout and "64x64x64" in p.stdout and "96x80x130" in p.stdout
    assert "bench [2/2]" in p.stderr
    doc = hk_json("bench", "--shapes", "64x64x64", "--repeat", "2", "--sets", "2", cache_dir=builds.a)
    r, = doc["results"]
    assert r["path"] == "kernel" and r["hkjit_ms"] > 0 and r["torch_ms"] > 0 and r["hkjit_tflops"] > 0
    assert r["auto"] == "kernel" and r["auto_ms"] > 0 and r["auto_speedup"] > 0     # the CPU policy: kernel
    png = tmp_path / "bench.png"
    p = hk("bench", "--shapes", "64x64x64", "--repeat", "1", "--plot", str(png), cache_dir=builds.a)
    try:
        import matplotlib  # noqa: F401
        assert p.returncode == 0 and png.stat().st_size > 0
    except ImportError:                                          # the table still comes, then exit 2
        assert p.returncode == 2 and "pip install" in p.stderr and not png.exists()
        assert "64x64x64" in p.stdout
    wrapper = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gemm.py"), "--shapes", "32x32x32",
                              "--repeat", "1"], env=_env(builds.a), capture_output=True, text=True, timeout=120)
    assert wrapper.returncode == 0 and "32x32x32" in wrapper.stdout, wrapper.stderr


# ------------------------------------------------------------------------------------------------------ usage
def test_usage_errors_exit_2(tmp_path):
    import torch
    d = tmp_path / "cache"
    for args, needle in ((["frobnicate"], "invalid choice"), (["cache", "prune", "--max-size", "12Q"], "12Q"),
                         (["cache", "prune"], "--max-size"), (["selftest", "--shapes", "1x2"], "MxNxK"),
                         (["warmup", "--arch", "nope"], "unknown arch"), (["warmup", "--arch", "cpu", "-j", "0"], "jobs"),
                         (["cache", "ls", "--arch", "nope"], "unknown arch"), (["selftest", "--arch", "gfx9"], "gfx950"),
                         (["selftest", "--shapes", "8x8x8", "--layouts", "diagonal"], "diagonal"),
                         (["configs", "--arch", "sm90"], "unknown arch"),
                         (["tune", "--shapes", "8x8x8", "--configs", "n32"], "not of the form nNkK")):
        p = hk(*args, cache_dir=d)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert needle in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
    assert hk(cache_dir=d).returncode == 2
    if not torch.cuda.is_available():
        p = hk("warmup", cache_dir=d)
        assert p.returncode == 2 and "no GPU" in p.stderr and "--arch" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("cmd", [[], ["warmup"], ["cache"], ["cache", "ls"], ["cache", "info"], ["cache", "verify"],
                                 ["cache", "clear"], ["cache", "prune"], ["cache", "export"], ["cache", "import"],
                                 ["cache", "why"], ["doctor"], ["selftest"], ["bench"], ["tune"], ["configs"]])
def test_help(cmd):
    p = hk(*cmd, "--help", timeout=60)
    assert p.returncode == 0 and "usage:" in p.stdout, p.stderr


def test_help_arch_list_matches_targets():
    from hkjit import cli, targets
    assert cli.KNOWN_ARCHS == targets.KNOWN_ARCHS
    # every --arch option, of every command and cache action, takes exactly these (argparse choices)
    parsers, arch_options = [cli.build_parser()], []
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += action.choices.values()
            elif action.dest == "arch":
                arch_options.append(action)
    assert len(arch_options) == 9 and all(tuple(a.choices) == targets.KNOWN_ARCHS for a in arch_options)
    assert "torch" not in subprocess.run([sys.executable, "-c", "import sys, hkjit.cli; hkjit.cli.build_parser(); "
                                          "print(' '.join(m for m in sys.modules if m == 'torch'))"],
                                         env=_env(None), capture_output=True, text=True).stdout


def test_configs_lists_every_configuration_its_rules_and_the_spelled_form():
    """`hkjit configs`: each arch's listed configurations in CONFIGS order (the default first), the selection rules
    that pick each, and the form of the names that spell others (none for an arch without one)."""
    from hkjit.policy import SELECTION
    from hkjit.specs import CONFIGS
    from hkjit.targets import KNOWN_ARCHS
    doc = hk_json("configs")["archs"]
    assert [a["arch"] for a in doc] == list(KNOWN_ARCHS)
    for a in doc:
        listed = CONFIGS[a["arch"]]
        assert [c["name"] for c in a["configs"]] == [c.name for c in listed]
        assert [c["default"] for c in a["configs"]] == [True] + [False] * (len(listed) - 1)
        rules = {c["name"]: c["rules"] for c in a["configs"]}
        assert sorted(r for rs in rules.values() for r in rs) == sorted(r.name for r in SELECTION[a["arch"]].rules)
        assert all(r.name in rules[r.config] for r in SELECTION[a["arch"]].rules)
    by_arch = {a["arch"]: a for a in doc}
    assert by_arch["gfx950"]["spelled"] is None and by_arch["cpu"]["spelled"].startswith("nNkK")
    sm = {c["name"]: c for c in by_arch["sm_90a"]["configs"]}
    assert sm["16x64-swap"]["tile"] == [16, 64, 64] and "-DHKJIT_SM90A_PDL=1" in sm["16x64-swap"]["defines"]
    text = hk("configs", "--arch", "sm_90a")
    assert text.returncode == 0, text.stderr
    assert "deep-square" in text.stdout and "SWAP=1 SPLITK=2 PDL=1" in text.stdout
    assert "other names: BMxBN" in text.stdout and "cpu (" not in text.stdout
