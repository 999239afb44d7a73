"""Cache archives as untrusted input (issue #13, items 3, 6 and 7): real archives, real `python -m hkjit cache ...`
processes, real filesystems (a small tmpfs where mounting is allowed).

An archive is code: import proves each entry whole and self-consistent, and confined to its folder; pinning the
archive's sha256 (--expect-sha256) is what proves it is the one you trust. Sizes are bounded before anything is
unpacked, a malformed listing is one clear error, and no failure leaves anything half-written."""
from __future__ import annotations

import gzip
import hashlib
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

from helpers import child_env, copy_cache, record, small_filesystem

from hkjit.cache.admin import verify
from hkjit.cache.archive import ARCHIVE_JSON, IMPORT_MAX_MEMBER_BYTES, export
from hkjit.fsutil import file_xxh3
from hkjit.cache.entry import iter_entries, verify_entry
from hkjit.cache.layout import FORMAT_DIR, KEY_JSON, LOCKS, MANIFEST, MEMO, VERIFIED_STAMP, Layout
from hkjit.loader import find_published
from hkjit.specs import get_spec


def hk(*args: str, cache: Path, **env) -> subprocess.CompletedProcess:
    """`python -m hkjit ARGS` in a fresh process against the cache root `cache`."""
    return subprocess.run([sys.executable, "-m", "hkjit", *args], env=child_env(cache, **env), capture_output=True,
                          text=True, timeout=300)


def hk_rss(*args: str, cache: Path, **env) -> tuple[subprocess.CompletedProcess, int]:
    """Like hk, and the child's peak resident memory in MiB (wait4's rusage of that one child)."""
    proc = subprocess.Popen([sys.executable, "-m", "hkjit", *args], env=child_env(cache, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), usage.ru_maxrss // 1024


def the_entry(root: Path) -> Path:
    found = [p for _a, _k, _key, p in iter_entries(root)]
    assert len(found) == 1, found
    return found[0]


def left_behind(root: Path) -> list[Path]:
    """Anything an import may have written: entries and temp folders (locks and the memo are not content)."""
    v1 = Layout(root).format_dir
    return sorted(p for p in v1.glob("*/*") if p.parent.name != LOCKS and p.name != MEMO) \
        if v1.is_dir() else []


@pytest.fixture
def source(built_cache, tmp_path) -> Path:
    """A copy of the session's built cache (export reads it; tests may doctor the copy)."""
    return copy_cache(built_cache, tmp_path / "src")


def entry_members(entry: Path) -> dict[str, bytes]:
    return {f"{FORMAT_DIR}/{entry.parent.name}/{entry.name}/{p.name}": p.read_bytes()
            for p in sorted(entry.iterdir()) if p.is_file() and not p.name.startswith(".")}


def listing_of(entry: Path, files: list[str] | None = None) -> dict:
    kernel, key = entry.name.rsplit("-", 1)
    return {"arch": entry.parent.name, "kernel": kernel, "key": key,
            "files": files if files is not None else sorted(p.name for p in entry.iterdir()
                                                             if p.is_file() and not p.name.startswith("."))}


def write_archive(path: Path, meta: dict | bytes, members: dict[str, bytes], level: int = 6, **info_extra) -> Path:
    from hkjit.version import CACHE_FORMAT
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, compresslevel=level) as tar:
        data = meta if isinstance(meta, bytes) else json.dumps({"format": CACHE_FORMAT, **meta}).encode()
        for name, blob in [(ARCHIVE_JSON, data), *members.items()]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(blob), 0o644, int(time.time())
            tar.addfile(ti, io.BytesIO(blob))
    return path


def doctored_entry(entry: Path, module_file: str, target: Path) -> None:
    """Make entry's manifest name module_file with target's true size and checksum (what an attacker writes)."""
    man = json.loads((entry / MANIFEST).read_text())
    man.update(module_file=module_file, size=target.stat().st_size, xxh3=file_xxh3(target))
    (entry / MANIFEST).write_text(json.dumps(man))
    (entry / VERIFIED_STAMP).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- 3: authenticity, confinement

@pytest.mark.parametrize("where", ["absolute", "dotdot", "subfolder"])
def test_manifest_naming_a_file_outside_its_entry_is_refused_by_import_verify_and_loader(source, tmp_path, where):
    entry = the_entry(source)
    real = entry / json.loads((entry / MANIFEST).read_text())["module_file"]
    evil = tmp_path / "some" / "where" / "evil.so"
    evil.parent.mkdir(parents=True)
    shutil.copyfile(real, evil)                          # a loadable module outside the entry
    name = {"absolute": str(evil), "dotdot": os.path.relpath(evil, entry),
            "subfolder": "sub/" + real.name}[where]
    if where == "subfolder":
        (entry / "sub").mkdir()
        shutil.copyfile(real, entry / "sub" / real.name)
    doctored_entry(entry, name, evil if where != "subfolder" else entry / "sub" / real.name)

    # the loader's check (cache.entry.verify_entry, through manifest_problem) and `cache verify` refuse it
    assert not verify_entry(entry, full=False).ok and "module file" in verify_entry(entry).reason
    assert find_published(get_spec("cpu"), entry.name.rsplit("-", 1)[1], source) is None
    p = hk("cache", "verify", cache=source)
    assert p.returncode == 1 and "not a plain .so/.pyd file name inside the entry" in p.stdout, p.stdout + p.stderr

    # an archive carrying that manifest is refused at import (export skips bad entries: write the archive by hand)
    members = {k: v for k, v in entry_members(entry).items()}
    archive = write_archive(tmp_path / "evil.tgz", {"entries": [listing_of(entry, sorted(
        k.rsplit("/", 1)[1] for k in members))]}, members)
    dest = tmp_path / "dest"
    p = hk("cache", "import", str(archive), "--json", cache=dest)
    doc = json.loads(p.stdout)
    assert p.returncode == 1 and doc["imported"] == [] and "inside the entry" in doc["refused"][0]["reason"], doc
    assert left_behind(dest) == []
    record(f"archive: manifest naming a module outside its entry ({where}) -> refused by import, verify and loader",
           processes=2, corruptions=1)


def test_verify_rederives_arch_kernel_and_key_from_the_files(source, tmp_path):
    entry = the_entry(source)
    moved = Layout(source).arch_dir("gfx950") / entry.name          # a valid cpu entry filed under another arch
    moved.parent.mkdir(parents=True)
    shutil.copytree(entry, moved)
    res = {Path(r.entry.path).parent.name: r for r in verify(root=source, layers=[])}
    assert res["cpu"].ok and not res["gfx950"].ok and "filed under gfx950" in res["gfx950"].reason
    # key.json changed after the .verified stamp was written: verify re-hashes, it never trusts the stamp
    inputs = json.loads((entry / KEY_JSON).read_text())
    inputs["torch"] = "0.0"
    (entry / KEY_JSON).write_text(json.dumps(inputs, indent=1, sort_keys=True))
    bad = [r for r in verify(root=source, layers=[]) if Path(r.entry.path) == entry]
    assert not bad[0].ok and "does not hash to the entry's key" in bad[0].reason
    record("verify: entry under the wrong arch and key.json of another build -> both bad", corruptions=2)


def test_expect_sha256_pins_the_archive(source, tmp_path):
    archive = tmp_path / "cpu.tgz"
    res = export(archive, root=source, layers=[])
    assert res.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()

    # a crafted module with a matching checksum: integrity checks pass, only the pin tells it apart
    entry = the_entry(source)
    crafted = copy_cache(source, tmp_path / "crafted")
    centry = the_entry(crafted)
    mod = centry / json.loads((centry / MANIFEST).read_text())["module_file"]
    with open(mod, "ab") as f:
        f.write(b"\0crafted")
    doctored_entry(centry, mod.name, mod)
    evil_archive = tmp_path / "crafted.tgz"
    export(evil_archive, root=crafted, layers=[])

    dest = tmp_path / "dest"
    p = hk("cache", "import", str(evil_archive), "--expect-sha256", res.sha256, cache=dest)
    assert p.returncode == 2 and "not the expected" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert left_behind(dest) == []
    p = hk("cache", "import", str(archive), "--expect-sha256", "sha256:" + res.sha256.upper(), cache=dest)
    assert p.returncode == 0 and f"archive sha256 {res.sha256}" in p.stdout, p.stdout + p.stderr
    assert [e.name for e in [the_entry(dest)]] == [entry.name]
    record("archive: --expect-sha256 refuses a re-checksummed crafted module, accepts the pinned archive",
           processes=2, corruptions=1)


# --------------------------------------------------------------------------------------------------- 6: size limits

def test_member_over_the_default_limit_is_refused_from_its_header(source, tmp_path):
    """A member whose header claims 8 GiB (the archive itself is 1 KiB): refused before any byte is read."""
    entry = the_entry(source)
    members = entry_members(entry)
    so = next(k for k in members if k.endswith(".so"))
    path = tmp_path / "huge.tgz"
    from hkjit.version import CACHE_FORMAT
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps({"format": CACHE_FORMAT, "entries": [listing_of(entry)]}).encode()
        ti = tarfile.TarInfo(ARCHIVE_JSON)
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo(so)
        ti.size = 8 << 30
        tar.fileobj.write(ti.tobuf(tarfile.PAX_FORMAT))     # the header only: the data is never there
    path.write_bytes(gzip.compress(raw.getvalue()))
    dest = tmp_path / "dest"
    p = hk("cache", "import", str(path), cache=dest)
    assert p.returncode == 2 and "over the 512.0 MiB allowed per file" in p.stderr and "Traceback" not in p.stderr, \
        p.stderr
    assert left_behind(dest) == []
    assert IMPORT_MAX_MEMBER_BYTES == 512 << 20
    record(f"archive: {path.stat().st_size} B archive claiming an 8 GiB member -> refused by the per-file limit",
           processes=1, disk_scenarios=1)


def test_compressed_bombs_are_refused_in_bounded_memory(source, tmp_path):
    """A 256 MiB listing and a 96 MiB tar header, each ~0.3 MB compressed: refused without being read into memory.
    (The seed read the listing whole: a 1.1 MB archive took 2.3 GB.)"""
    entry = the_entry(source)
    members = entry_members(entry)
    listing = json.dumps({"entries": [listing_of(entry)]})
    from hkjit.version import CACHE_FORMAT
    fat = (json.dumps({"format": CACHE_FORMAT, "entries": [listing_of(entry)]})[:-1] + " " * (256 << 20)
           + "}").encode()
    bomb_listing = write_archive(tmp_path / "listing-bomb.tgz", fat, members, level=1)
    bomb_header = tmp_path / "header-bomb.tgz"
    with tarfile.open(bomb_header, "w:gz", format=tarfile.PAX_FORMAT, compresslevel=1) as tar:
        ti = tarfile.TarInfo(ARCHIVE_JSON)
        data = json.dumps({"format": CACHE_FORMAT, **json.loads(listing)}).encode()
        ti.size = len(data)
        ti.pax_headers = {"comment": "x" * (96 << 20)}
        tar.addfile(ti, io.BytesIO(data))
    dest = tmp_path / "dest"
    base, base_rss = hk_rss("cache", "import", str(tmp_path / "missing.tgz"), cache=dest)
    assert base.returncode == 2
    sizes = []
    for archive, expect in ((bomb_listing, "no listing is over"), (bomb_header, "a tar header of")):
        p, rss = hk_rss("cache", "import", str(archive), cache=dest)
        assert p.returncode == 2 and expect in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert rss - base_rss < 64, f"{archive.name}: peak memory {rss} MiB against {base_rss} MiB for a missing file"
        sizes.append(f"{archive.name} {archive.stat().st_size / 1e6:.1f} MB -> +{rss - base_rss} MiB")
    assert left_behind(dest) == []
    record(f"archive: compression bombs refused in bounded memory ({'; '.join(sizes)})", processes=3,
           disk_scenarios=2)


def test_limits_are_overridable_and_data_is_streamed_not_written_past_them(source, tmp_path):
    entry = the_entry(source)
    members = entry_members(entry)
    big = dict(members)
    big[f"{FORMAT_DIR}/cpu/{entry.name}/padding.bin"] = bytes(8 << 20)     # 8 MiB of zeros, 8 KiB compressed
    archive = write_archive(tmp_path / "big.tgz", {"entries": [listing_of(entry, sorted(
        k.rsplit("/", 1)[1] for k in big))]}, big)
    dest = tmp_path / "dest"
    p = hk("cache", "import", str(archive), cache=dest, HKJIT_IMPORT_MAX_MEMBER_BYTES="1M")
    assert p.returncode == 2 and "over the 1.0 MiB allowed per file (HKJIT_IMPORT_MAX_MEMBER_BYTES)" in p.stderr, \
        p.stderr
    p = hk("cache", "import", str(archive), cache=dest, HKJIT_IMPORT_MAX_BYTES="4M")
    assert p.returncode == 2 and "unpacks to more than 4.0 MiB (HKJIT_IMPORT_MAX_BYTES)" in p.stderr, p.stderr
    assert left_behind(dest) == []
    p = hk("cache", "import", str(archive), cache=dest, HKJIT_IMPORT_MAX_BYTES="junk")
    assert p.returncode == 2 and "HKJIT_IMPORT_MAX_BYTES='junk'" in p.stderr and "Traceback" not in p.stderr
    # within the limits it unpacks (and the unlisted-by-export padding file is part of its listing here), streamed
    p = hk("cache", "import", str(archive), "--json", cache=dest)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (the_entry(dest) / "padding.bin").stat().st_size == 8 << 20
    record("archive: per-file and total import limits set by variable refuse before writing; defaults unpack it",
           processes=4, disk_scenarios=2)


def test_sparse_member_on_a_small_disk_is_a_cache_error_and_leaves_nothing(source, tmp_path):
    """An 8 GiB sparse member (GNU tar -S, 8 KiB archive), limits raised above it, into a 4 MiB filesystem: a
    CacheError naming the fix (the seed: a raw OSError and a partial file), nothing left in the cache."""
    entry = the_entry(source)
    stage = tmp_path / "stage"
    edir = Layout(stage).arch_dir("cpu") / entry.name
    shutil.copytree(entry, edir, ignore=shutil.ignore_patterns(".*"))
    with open(edir / "sparse.bin", "wb") as f:
        f.truncate(8 << 30)
    from hkjit.version import CACHE_FORMAT
    (stage / ARCHIVE_JSON).write_text(json.dumps({"format": CACHE_FORMAT, "entries": [listing_of(edir)]}))
    archive = tmp_path / "sparse.tgz"
    subprocess.run(["tar", "-S", "-czf", str(archive), "-C", str(stage), ARCHIVE_JSON, FORMAT_DIR], check=True)
    with small_filesystem(tmp_path / "small", "4m") as small:
        dest = small / "cache"
        p = hk("cache", "import", str(archive), cache=dest, HKJIT_IMPORT_MAX_MEMBER_BYTES="16G",
               HKJIT_IMPORT_MAX_BYTES="16G")
        assert p.returncode == 2 and "free" in p.stderr and "HKJIT_CACHE_DIR" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and "OSError" not in p.stderr
        assert left_behind(dest) == []
        # the same archive at the default limits: refused by the per-file bound
        p = hk("cache", "import", str(archive), cache=dest)
        assert p.returncode == 2 and "allowed per file" in p.stderr, p.stderr
        # a real archive into a filesystem with less room than it needs: CacheError, nothing half-written
        real = tmp_path / "real.tgz"
        export(real, root=source, layers=[])
        filler = small / "filler"
        free = shutil.disk_usage(small).free
        with open(filler, "wb") as f:
            f.write(bytes(max(free - (64 << 10), 0)))
        p = hk("cache", "import", str(real), cache=dest)
        assert p.returncode == 2 and ("free" in p.stderr or "disk full" in p.stderr), p.stderr
        assert "Traceback" not in p.stderr and left_behind(dest) == []
    record(f"archive: 8 GiB sparse member ({archive.stat().st_size} B archive) and a real archive into a full "
           f"4 MiB tmpfs -> CacheError, nothing left", processes=3, disk_scenarios=3)


# --------------------------------------------------------------------------------------------- 7: malformed listing

@pytest.mark.parametrize("field,value,message", [
    ("files", 5, "entries[0].files is 5, expected a list of file names"),
    ("files", [3], "entries[0].files is [3], expected a list of file names"),
    ("key", 12, "entries[0].key is 12, expected 32 hex digits"),
    ("entries", "x", "entries is 'x', expected a list of entries"),
    ("entries", [7], "entries[0] is 7, expected an object"),
])
def test_malformed_listing_is_one_clear_error_and_writes_nothing(source, tmp_path, field, value, message):
    entry = the_entry(source)
    listing = listing_of(entry)
    meta = {"entries": value} if field == "entries" else {"entries": [listing | {field: value}]}
    archive = write_archive(tmp_path / "bad.tgz", meta, entry_members(entry))
    dest = tmp_path / "dest"
    p = hk("cache", "import", str(archive), cache=dest)
    assert p.returncode == 2 and message in p.stderr and "cache export" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "TypeError" not in p.stderr
    assert left_behind(dest) == []
    record(f"archive: malformed listing ({field}={value!r}) -> one error naming the fix, nothing written",
           processes=1, corruptions=1)
