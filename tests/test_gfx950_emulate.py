"""The real gfx950 kernel on the emulator (issue 12, items 2, 4, 5), and getting its code object out of a module.

* bundle: the code object is taken out of real HIP modules and offload bundles made here by clang-22 and
  clang-offload-bundler (plain, zstd-compressed via the tool, zlib-compressed), compared with the bundler's own
  --unbundle output; wrong inputs fail with errors that name the fix.
* emulator: kernels/gemm_gfx950.hip compiled to a code object, launched like hkjit_gemm_bf16 on the blocks that
  cover the interior and every edge (ragged M and N at 300 x 260, and the 200 x 232 corner of 456 x 488), K in
  {8, 40, 64, 192, 416} (416: 13 tiles, the 4-stage LDS ring wraps three times), leading dimensions past K with a
  strided A, under 3 latency / interleaving seeds (seed 1: nothing lands before a wait forces it): zero hazards and
  every element within the bound of emulate_gemm (fp32 accumulation + one round-to-nearest bf16 step), poison
  everywhere else. Exact-sum inputs check the rounding bit for bit.
* `python -m hkjit selftest --arch gfx950 --emulate --module ...` in a subprocess, recording an "emulated"
  validation record that a device lookup never returns.
Skips (with the reason) only where clang-22 or the toolchain headers are absent.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hkjit.gfx950 import bundle, hipcheck  # noqa: E402
from hkjit.gfx950.emulate_gemm import SEEDS  # noqa: E402  (seed 1: lazy memory, nothing lands before a wait)

from helpers import child_env  # noqa: E402
from hkjit.cache.layout import KEY_JSON, MANIFEST, Layout  # noqa: E402

KERNEL = REPO / "kernels" / "gemm_gfx950.hip"
LLVM_BIN = Path("/usr/lib/llvm-22/bin")
BUNDLER = LLVM_BIN / "clang-offload-bundler"
GFX950_TRIPLE = "hipv4-amdgcn-amd-amdhsa--gfx950"
HOST_TRIPLE = "host-x86_64-unknown-linux-gnu-"


def toolchain() -> Path:
    return hipcheck.toolchain_root()


def skip_reason() -> str | None:
    if hipcheck.find_clang() is None:
        return f"clang-22 not found ({hipcheck.DEFAULT_CLANG} or $HKJIT_HIP_CLANG); apt-get install clang-22 lld-22"
    tc = toolchain()
    if not (tc / "HipKittens" / "include" / "kittens.cuh").is_file() or not (tc / "rocm" / "include" / "hip").is_dir():
        return f"toolchain dir {tc} (HipKittens headers, rocm headers) absent; set HKJIT_TOOLCHAIN_DIR"
    return None


def need_toolchain():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def code_object(tmp_path_factory) -> bytes:
    need_toolchain()
    from hkjit.gfx950.emulate_gemm import build_code_object
    return build_code_object(KERNEL, out=tmp_path_factory.mktemp("co") / "gemm_gfx950.co", toolchain_dir=toolchain())


@pytest.fixture(scope="module")
def gemm_kernel(code_object):
    from hkjit.gfx950.emulate_gemm import GemmKernel
    return GemmKernel.from_code_object(code_object, KERNEL)


@pytest.fixture(scope="module")
def hip_module(tmp_path_factory) -> Path:
    """The kernel built as a real HIP shared object (host + device) by clang-22: its .hip_fatbin is clang's own.
    (-no-hip-rt: there is no libamdhip64 here to link; the module is never loaded, only read.)"""
    need_toolchain()
    tc = toolchain()
    out = tmp_path_factory.mktemp("so") / "hkjit_gemm_gfx950.so"
    cmd = [hipcheck.find_clang(), "-x", "hip", "--offload-arch=gfx950", "-nogpulib", f"--rocm-path={tc / 'rocm'}",
           f"--hip-path={tc / 'rocm'}", "-D__AMDGCN_WAVEFRONT_SIZE=64", "-Wno-invalid-constexpr",
           *hipcheck.CARD_FLAGS, "-DKITTENS_CDNA4", f"-I{tc / 'HipKittens' / 'include'}",
           f"-I{tc / 'rocm' / 'include' / 'hip'}", "-DHKJIT_NOGPULIB_SHIMS", f"-I{REPO / 'kernels'}",
           "-fPIC", "-shared", "-fuse-ld=lld", "-no-hip-rt", str(KERNEL), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def _bundler_unbundle(src: Path, triple: str, out: Path) -> bytes:
    r = subprocess.run([str(BUNDLER), "--unbundle", "--type=o", f"--targets={triple}", f"--input={src}",
                        f"--output={out}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def _bundle(entries: list[tuple[str, Path]], out: Path, compress: bool = False) -> Path:
    r = subprocess.run([str(BUNDLER), "--type=o", f"--targets={','.join(t for t, _ in entries)}",
                        *[f"--input={p}" for _, p in entries], f"--output={out}",
                        *(["--compress"] if compress else [])],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


# ------------------------------------------------------------------------------------------------------- bundle
def test_code_object_from_clang_hip_module(hip_module, tmp_path):
    """The .so's gfx950 entry, found by bundle.py, is byte-identical to what clang-offload-bundler unpacks."""
    if not BUNDLER.is_file():
        pytest.skip(f"{BUNDLER} absent (apt-get install clang-tools-22)")
    co = bundle.extract_code_object(hip_module)
    assert co[:4] == b"\x7fELF" and bundle.elf_machine(co) == bundle.EM_AMDGPU
    assert bundle.code_object_processor(co) == "gfx950"
    fatbin = tmp_path / "fatbin"
    r = subprocess.run([str(LLVM_BIN / "llvm-objcopy"), f"--dump-section=.hip_fatbin={fatbin}", str(hip_module),
                        str(tmp_path / "scratch.so")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert co == _bundler_unbundle(fatbin, GFX950_TRIPLE, tmp_path / "ref.co")
    triples = [e.triple for e in bundle.entries_of_file(hip_module.read_bytes())]
    assert GFX950_TRIPLE in triples and any(t.startswith("host-") for t in triples), triples


def test_code_object_from_bundles(code_object, tmp_path):
    """Plain and zstd-compressed bundles made by clang-offload-bundler; zlib-compressed (the stdlib path) built
    from the plain one by the CCOB v3 header layout; the code object itself passes through."""
    if not BUNDLER.is_file():
        pytest.skip(f"{BUNDLER} absent (apt-get install clang-tools-22)")
    co_path = tmp_path / "k.co"
    co_path.write_bytes(code_object)
    host = tmp_path / "host.o"
    host.write_bytes(b"")
    entries = [(HOST_TRIPLE, host), (GFX950_TRIPLE, co_path)]
    plain = _bundle(entries, tmp_path / "plain.bundle")
    zstd = _bundle(entries, tmp_path / "zstd.bundle", compress=True)
    assert zstd.read_bytes()[:4] == b"CCOB" and struct.unpack_from("<H", zstd.read_bytes(), 6)[0] == 1
    raw = plain.read_bytes()
    z = zlib.compress(raw)
    ccob = b"CCOB" + struct.pack("<HHQQQ", 3, 0, 32 + len(z), len(raw),
                                 struct.unpack("<Q", hashlib.md5(raw).digest()[:8])[0]) + z
    for blob in (raw, zstd.read_bytes(), ccob, code_object):
        assert bundle.extract_code_object(blob) == code_object
    # a corrupt zlib bundle is named, not mis-read
    bad = ccob[:40] + bytes([ccob[40] ^ 0xFF]) + ccob[41:]
    with pytest.raises(bundle.BundleError, match="corrupt|hash"):
        bundle.extract_code_object(bad)


def test_zstd_without_bundler_names_the_tool(code_object, tmp_path, monkeypatch):
    if not BUNDLER.is_file():
        pytest.skip(f"{BUNDLER} absent (apt-get install clang-tools-22)")
    co_path = tmp_path / "k.co"
    co_path.write_bytes(code_object)
    host = tmp_path / "host.o"
    host.write_bytes(b"")
    zstd = _bundle([(HOST_TRIPLE, host), (GFX950_TRIPLE, co_path)], tmp_path / "zstd.bundle", compress=True)
    monkeypatch.setenv("HKJIT_OFFLOAD_BUNDLER", str(tmp_path / "no-such-tool"))
    with pytest.raises(bundle.BundleError, match="clang-offload-bundler"):
        bundle.extract_code_object(zstd)


def test_bundle_errors_name_the_problem(hip_module, tmp_path):
    with pytest.raises(bundle.BundleError, match=r"no gfx942 code object \(found: .*gfx950"):
        bundle.extract_code_object(hip_module, "gfx942")
    src = tmp_path / "plain.c"
    src.write_text("int f(void) { return 1; }\n")
    so = tmp_path / "plain.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(so)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(bundle.BundleError, match=r"no \.hip_fatbin section"):
        bundle.extract_code_object(so)
    with pytest.raises(bundle.BundleError, match="neither an ELF file nor an offload bundle"):
        bundle.extract_code_object(src)


# ------------------------------------------------------------------------------------------------------- the kernel
def test_rounding_is_hardware_rne_in_the_assembly():
    """Item 4: the stores convert with v_cvt_pk_bf16_f32 (two values, round to nearest even), and no 16-bit shift
    takes the high half of an accumulator any more (the old truncation); still no spills."""
    need_toolchain()
    tc = toolchain()
    r = hipcheck.compile_device(KERNEL, "gfx950", tc / "HipKittens" / "include", tc,
                                extra_flags=["-DHKJIT_NOGPULIB_SHIMS", f"-I{REPO / 'kernels'}"])
    body = hipcheck._instructions(hipcheck.function_body(r.asm, r.kernel))
    stores = [i for i in body if i.startswith("buffer_store")]
    cvts = [i for i in body if i.startswith("v_cvt_pk_bf16_f32")]
    assert stores and len(cvts) * 2 == len(stores), (len(cvts), len(stores))
    packed = set()
    for ins in body:
        m = re.match(r"v_cvt_pk_bf16_f32 (v\d+),", ins)
        if m:
            packed.add(m.group(1))
            continue
        m = re.match(r"v_lshrrev_b32(?:_e32|_e64)? (v\d+), 16, (v\d+)$", ins)
        if m:
            assert m.group(2) in packed, f"`{ins}`: a 16-bit shift of a value that is not a packed bf16 pair"
        dst = re.match(r"(?:v_|buffer_load|ds_read|global_load)\w* (v\d+),", ins)   # these write operand 0
        if dst:
            packed.discard(dst.group(1))
    assert r.vgpr_spill == 0 and r.scratch == 0


def _cases():
    from hkjit.gfx950.emulate_gemm import GemmCase
    return [
        # ragged M and N: interior (0,0), ragged-N (0,1), ragged-M (1,0), corner (1,1)
        GemmCase(300, 260, 8, blocks=((1, 1), (0, 0))),
        GemmCase(300, 260, 40, blocks=((0, 1), (1, 0))),
        GemmCase(300, 260, 64, blocks=((1, 1),)),
        GemmCase(300, 260, 192, blocks=((0, 0), (1, 1))),
        GemmCase(456, 488, 416, blocks=((1, 1),)),   # 13 K tiles: the LDS ring wraps 3 times; 200 x 232 corner
        GemmCase(300, 260, 104, lda=136, ldb=112, ldc=271, a_col=16, blocks=((0, 1), (1, 0))),   # ld > K, strided A
        GemmCase(1, 1, 8),
        GemmCase(300, 260, 200, blocks=((1, 1),), data="integers"),       # bit-exact RNE, ragged K
    ]


CASE_IDS = ["8", "40", "64", "192", "416", "strided", "1x1", "rne-exact"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case_index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_kernel_on_emulator(gemm_kernel, case_index, seed):
    from hkjit.gfx950.emulate_gemm import run_case
    out = run_case(gemm_kernel, _cases()[case_index], seed)
    print(out.summary())
    assert not out.hazards, out.summary() + "\n" + "\n".join(out.hazards[:10])
    assert out.passed, out.summary()
    if out.case.data == "integers":
        assert out.bit_mismatch == 0


def test_bound_is_tight_enough_to_see_truncation(gemm_kernel):
    """The check can fail: the same stored values truncated toward zero (the old conversion) break the bound
    and the bit-exact check. Computed from the emulator's own output of one run."""
    import numpy as np
    from hkjit.gfx950 import emulate_gemm as eg
    ref = np.random.default_rng(5).standard_normal((64, 64)).astype(np.float32)
    trunc = (ref.view(np.uint32) >> 16).astype(np.uint16)
    got = eg.bf16_bits_to_f64(trunc)
    bound = eg.half_ulp_bf16(np.abs(ref.astype(np.float64)))
    assert (np.abs(got - ref) > bound).mean() > 0.3
    assert (eg.rne_bf16_bits(ref) != trunc).mean() > 0.3


# ------------------------------------------------------------------------------------------------------- selftest CLI
def _fake_entry(root: Path, module: Path) -> Path:
    """A published gfx950 cache entry (manifest, key.json, module) around a clang-22-built HIP module: what a
    pre-bake on a ROCm machine leaves, as far as `--emulate` reads it."""
    from hkjit.fsutil import file_xxh3
    from hkjit.keys import key_of
    from hkjit.version import CACHE_FORMAT
    inputs = {"kernel": "gemm_bf16", "arch": "gfx950", "note": "test entry around a clang-22 HIP module"}
    key = key_of(inputs)
    d = Layout(root).entry("gfx950", "gemm_bf16", key)
    d.mkdir(parents=True)
    shutil.copy(module, d / module.name)
    (d / KEY_JSON).write_text(json.dumps(inputs))
    (d / MANIFEST).write_text(json.dumps({"format": CACHE_FORMAT, "key": key, "module_file": module.name,
                                                 "module_name": module.stem, "size": (d / module.name).stat().st_size,
                                                 "xxh3": file_xxh3(d / module.name)}))
    return d


def _hk(*args, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hkjit", *args], env=child_env(cache), cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_selftest_emulate_cli(hip_module, tmp_path):
    from hkjit.cache.entry import verify_entry
    from hkjit.validation import EMULATOR_LABEL, read_record
    root = tmp_path / "cache"
    entry = _fake_entry(root, hip_module)
    assert verify_entry(entry).ok
    key = entry.name.rsplit("-", 1)[-1]
    p = _hk("selftest", "--arch", "gfx950", "--emulate", "--module", str(entry), "--json", "--seeds", "1", cache=root)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads(p.stdout)
    assert doc["kind"] == "emulated" and doc["passed"] and doc["key"] == key and doc["record"]
    assert all(r["passed"] and r["hazards"] == 0 for r in doc["results"]) and len(doc["results"]) >= 3
    rec = read_record(root, "gfx950", "gemm_bf16", key, EMULATOR_LABEL, kind="emulated")
    assert rec and rec["passed"] is True and rec["kind"] == "emulated"
    # never a device validation: a device lookup of the same file/label finds nothing
    assert read_record(root, "gfx950", "gemm_bf16", key, EMULATOR_LABEL) is None
    assert not list(Layout(root).validated_dir("gfx950").glob(f"gemm_bf16-{key}-gfx950*.json"))
    info = _hk("cache", "info", key[:12], cache=root)
    assert info.returncode == 0 and "(emulated, not a device run)" in info.stdout, info.stdout + info.stderr
    # a bare .so: runs, table on stdout, not recorded
    p = _hk("selftest", "--arch", "gfx950", "--emulate", "--module", str(hip_module), "--no-record", "--seeds", "1",
            cache=root)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "selftest --emulate: PASSED" in p.stdout and "worst/bound" in p.stdout
    # a wrong code object fails (exit 1): the old truncating bf16 store, built here
    kdir = tmp_path / "trunc"
    kdir.mkdir()
    for name in ("gemm_gfx950.hip", "gemm_gfx950_plan.h", "hkjit_gemm.h"):
        shutil.copy(REPO / "kernels" / name, kdir / name)
    src = (kdir / "gemm_gfx950.hip").read_text()
    rne = "return __builtin_bit_cast(uint32_t, __builtin_convertvector(f32x2_t{lo, hi}, bf16x2_t));"
    assert src.count(rne) == 1
    (kdir / "gemm_gfx950.hip").write_text(src.replace(rne, "return (__builtin_bit_cast(uint32_t, lo) >> 16) | "
                                                            "(__builtin_bit_cast(uint32_t, hi) & 0xFFFF0000u);"))
    from hkjit.gfx950.emulate_gemm import build_code_object
    bad = tmp_path / "trunc.co"
    build_code_object(kdir / "gemm_gfx950.hip", out=bad, toolchain_dir=toolchain())
    p = _hk("selftest", "--emulate", "--module", str(bad), "--seeds", "1", cache=root)
    assert p.returncode == 1 and "selftest --emulate: FAILED" in p.stdout and "FAIL" in p.stdout, p.stdout[-2000:]
    # usage and environment errors: exit 2 with one message
    for args, msg in ((["--emulate", "--arch", "cpu"], "gfx950 code objects only"),
                      (["--module", str(hip_module)], "only goes with --emulate"),
                      (["--emulate", "--module", str(tmp_path)], "not a cache entry"),
                      (["--emulate", "--seeds", "0"], "--seeds must be at least 1")):
        p = _hk("selftest", *args, cache=root)
        assert p.returncode == 2 and msg in p.stderr, (args, p.returncode, p.stderr)


def test_doctor_reports_emulated_records_as_such(tmp_path):
    """doctor's gfx950 entry state reads the emulated record (a device lookup never sees it) and its report says
    "emulated (not a device run)"; a failed emulated record is a non-blocking problem. (The entry key itself needs
    ROCm's hipcc, absent here, so the state is composed from the function doctor calls per entry.)"""
    from hkjit import doctor
    from hkjit.cli.doctor import format_report
    from hkjit.validation import EMULATOR_LABEL, read_record, write_record
    key = "0123456789abcdef0123456789abcdef"
    problems: list = []
    assert doctor.emulated_state(tmp_path, "gfx950", "gemm_bf16", key, problems) is None
    write_record(tmp_path, "gfx950", "gemm_bf16", key, EMULATOR_LABEL, True, "selftest --emulate: 24/24",
                 kind="emulated")
    assert read_record(tmp_path, "gfx950", "gemm_bf16", key, EMULATOR_LABEL) is None
    state = doctor.emulated_state(tmp_path, "gfx950", "gemm_bf16", key, problems)
    assert state["passed"] is True and not problems
    report = doctor.diagnose(["cpu"])
    report.archs["gfx950"]["kernels"] = {"gemm_bf16": {"key": key, "cached": True, "path": str(tmp_path),
                                                          "validation": None, "emulated": state}}
    text = format_report(report)
    assert "validation: none yet, emulated (not a device run): passed" in text, text
    write_record(tmp_path, "gfx950", "gemm_bf16", key, EMULATOR_LABEL, False, "1/24 failed", kind="emulated")
    assert doctor.emulated_state(tmp_path, "gfx950", "gemm_bf16", key, problems)["passed"] is False
    assert len(problems) == 1 and not problems[0].blocking and "1/24 failed" in problems[0].message
