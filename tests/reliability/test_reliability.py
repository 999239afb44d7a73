"""Real-process reliability suite for the cache: stampedes, crashes mid-build, corrupted and foreign entries,
locks, read-only and full disks, odd paths, version skew. Nothing is mocked: real compiles, real SIGKILLs, real
mounts (skipped with a reason where the machine does not allow them). Figures are printed at the end."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import (child_env, child_result, copy_cache, count_builds, read_only, record, run_child,
                     start_child)

from hkjit.cache.entry import iter_entries, verify_entry
from hkjit.cache.layout import KEY_JSON, MANIFEST, VERIFIED_STAMP, Layout, lock_file
from hkjit.keys import key_of
from hkjit.fsutil import atomic_write_text


def the_entry(root: Path) -> Path:
    entries = [e for _a, _k, _key, e in iter_entries(root)]
    assert len(entries) == 1, entries
    return entries[0]


def module_file(entry: Path) -> Path:
    return entry / json.loads((entry / MANIFEST).read_text())["module_file"]


def tmp_dirs(root: Path) -> list[Path]:
    tmp = Layout(root).staging_dir
    return list(tmp.iterdir()) if tmp.is_dir() else []


# ---------------------------------------------------------------------------------------------- hits and misses

def test_cold_miss_builds_and_fresh_process_hits_without_compiling(built_cache):
    res = [child_result(run_child(built_cache)) for _ in range(3)]
    assert not any(r["built"] for r in res) and all(r["err"] < 1e-2 for r in res)
    assert count_builds(built_cache) == 1
    times = ", ".join(f"{r['ready_ms']:.1f}" for r in res)
    record(f"fresh-process hits: {times} ms from import hkjit to kernel ready, 0 compiles", processes=3)


# ------------------------------------------------------------------------------------------------------ stampede

def test_stampede_compiles_once(cold_stampede):
    """N processes on a cold cache (the session fixture that also makes built_cache): one compiles, the others
    wait on its lock, then hit; every result is correct."""
    results, n = cold_stampede.results, len(cold_stampede.results)
    assert n >= 2
    assert sum(r["built"] for r in results) == 1
    assert count_builds(cold_stampede.root) == 1
    assert all(r["err"] < 1e-2 for r in results)
    waiting_logs = sum("waiting for pid" in err for err in cold_stampede.stderr)
    record(f"stampede: {n} processes on a cold cache -> 1 compile, {n} correct results, "
           f"{waiting_logs} waiters logged the holder", processes=n, compiles=1)


# -------------------------------------------------------------------------------------------------------- crashes

@pytest.mark.slow
def test_sigkill_at_each_build_step_recovers(tmp_path):
    """SIGKILL during the compile, before the rename, before the manifest; then the next call rebuilds.

    The two kills that need a finished compile run at once, each in its own root (a compile uses one core); the
    temp folder the first leaves is then moved into the second root, so that one recovery build meets both
    remnants: the same scenarios as one after the other, three compiles, two of them side by side."""
    early, late = tmp_path / "crashy", tmp_path / "crashy-late"
    proc = run_child(early, HKJIT_TEST_CRASH_AT="compile")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    killed = {"before_rename": start_child(early, HKJIT_TEST_CRASH_AT="before_rename"),
              "before_manifest": start_child(late, HKJIT_TEST_CRASH_AT="before_manifest")}
    for point, p in killed.items():
        _out, err = p.communicate(timeout=900)
        assert p.returncode == -signal.SIGKILL, f"{point}: {err[-2000:]}"
    for root in (early, late):
        # Nothing loadable is visible after the kills: no entry, or one without a valid manifest.
        for _a, _k, key, entry in iter_entries(root):
            assert not verify_entry(entry, key).ok
    orphans = tmp_dirs(early)
    assert list(iter_entries(early)) == [] and len(orphans) == 1, "the compile killed before rename left no temp folder"
    assert not (the_entry(late) / MANIFEST).exists()
    os.rename(orphans[0], Layout(late).staging_dir / orphans[0].name)     # both remnants in one root
    res = child_result(run_child(late))
    assert res["built"] and res["err"] < 1e-2
    assert verify_entry(the_entry(late)).ok
    assert tmp_dirs(late) == [], "orphaned temp build folders were not cleaned"
    trash = list((Layout(late).trash_dir).iterdir())
    assert len(trash) == 1, "the unpublished remnant was not moved aside"
    record("crash: SIGKILL during compile, before rename, before manifest -> next call rebuilt, temp cleaned, "
           "remnant moved aside", processes=4, kills=3, compiles=3)


# ----------------------------------------------------------------------------------------------------- corruption

def _truncate(entry):
    mod = module_file(entry)
    mod.write_bytes(mod.read_bytes()[: mod.stat().st_size // 2])


def _flip_byte(entry):
    mod = module_file(entry)
    data = bytearray(mod.read_bytes())
    data[len(data) // 3] ^= 0x40
    mod.write_bytes(bytes(data))


def _drop_manifest(entry):
    (entry / MANIFEST).unlink()


def _manifest_of_other_key(entry):
    m = json.loads((entry / MANIFEST).read_text())
    m["key"] = "0" * 32
    (entry / MANIFEST).write_text(json.dumps(m))


def _key_json_of_other_torch(entry):
    inputs = json.loads((entry / KEY_JSON).read_text())
    inputs["torch"]["version"] = "2.12.0+cpu"
    (entry / KEY_JSON).write_text(json.dumps(inputs))


CORRUPTIONS = {"truncated module": _truncate, "flipped byte": _flip_byte, "missing manifest": _drop_manifest,
               "manifest of another key": _manifest_of_other_key,
               "key.json of another torch version": _key_json_of_other_torch}


#: The corruption whose rebuild runs to the end (only the module checksum sees it); the others' rebuilds are
#: SIGKILLed as their compile starts: moving a bad entry aside and rebuilding is one code path for all of them
#: (loader._build_locked), so one full rebuild shows the end of it and the kills show each detection.
REBUILT = "flipped byte"


@pytest.mark.slow
def test_corrupted_entries_are_detected_moved_aside_and_rebuilt(built_cache, tmp_path):
    roots = {}
    for i, (name, corrupt) in enumerate(CORRUPTIONS.items()):
        root = copy_cache(built_cache, tmp_path / f"corrupt {i} ü")     # spaces and non-ASCII in every path
        corrupt(the_entry(root))
        assert not verify_entry(the_entry(root)).ok, f"{name} not detected by verify_entry"
        roots[name] = root
    # one `cache verify` process checks all of them: the first root as its root, the others as read-only layers
    first, *others = roots.values()
    verify = subprocess.run([sys.executable, "-m", "hkjit", "cache", "verify", "--json"],
                            env=child_env(first, HKJIT_CACHE_PATH=os.pathsep.join(map(str, others))),
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    bad = {Path(r["entry"]).parents[2] for r in json.loads(verify.stdout)["results"] if not r["ok"]}
    assert bad == set(roots.values()), f"cache verify missed {[n for n, r in roots.items() if r not in bad]}"
    procs = {name: start_child(root, **({} if name == REBUILT else {"HKJIT_TEST_CRASH_AT": "compile"}))
             for name, root in roots.items()}                                 # all at once
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=900)
        assert "moved to" in err, f"{name}: no warning that the bad entry was moved aside: {err[-2000:]}"
        assert len(list((Layout(roots[name]).trash_dir).iterdir())) == 1, name
        if name != REBUILT:
            assert proc.returncode == -signal.SIGKILL, f"{name}: {err[-2000:]}"   # killed rebuilding: never loaded
            assert list(iter_entries(roots[name])) == [], name
            continue
        assert proc.returncode == 0, f"{name}: {err[-2000:]}"
        res = json.loads(out.strip().splitlines()[-1])
        assert res["built"] and res["err"] < 1e-2, name
        assert verify_entry(the_entry(roots[name])).ok
    record(f"corruption: {', '.join(CORRUPTIONS)} -> each detected by load and `cache verify`, moved aside and "
           f"rebuilding ({REBUILT}: rebuilt to the end), 0 loaded", processes=len(CORRUPTIONS) + 1,
           kills=len(CORRUPTIONS) - 1, corruptions=len(CORRUPTIONS), compiles=1)


def test_leftover_temp_folder_is_ignored_and_cleaned(built_cache, tmp_path):
    root = copy_cache(built_cache, tmp_path / "leftover")
    entry = the_entry(root)
    stem = entry.name
    orphan = Layout(root).staging_dir / f"{stem}.{os.uname().nodename}.999999999.0"
    orphan.mkdir(parents=True)
    (orphan / "half.so").write_bytes(b"\0" * 100)
    res = child_result(run_child(root))                   # a hit never looks into tmp/
    assert not res["built"]
    from hkjit.cache.entry import clean_orphans
    assert clean_orphans(root, prefix=stem) == [orphan]   # the next build for that key removes it
    record("leftover temp folder: never loaded, removed by the next build of its key", processes=1, corruptions=1)


# ---------------------------------------------------------------------------------------------------------- locks

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hkjit.cache.lock import BuildLock
    with BuildLock(Path(sys.argv[1]), "gemm-test", what="building a test build"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _hold(root: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root), str(seconds)], env=child_env(root),
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_lock_of_dead_holder_is_taken_at_once(tmp_path):
    from hkjit.cache.lock import BuildLock
    holder = _hold(tmp_path, 600)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    t0 = time.monotonic()
    with BuildLock(tmp_path, "gemm-test", timeout=30):
        pass
    assert time.monotonic() - t0 < 1.0
    record("lock: holder SIGKILLed -> lock taken over in under 1 s", processes=1, kills=1, lock_scenarios=1)


def test_live_slow_holder_times_out_naming_holder_and_lock(tmp_path, caplog):
    from hkjit.errors import LockTimeoutError
    from hkjit.cache.lock import BuildLock
    holder = _hold(tmp_path, 60)
    try:
        caplog.set_level("INFO", logger="hkjit")
        with pytest.raises(LockTimeoutError) as exc:
            with BuildLock(tmp_path, "gemm-test", timeout=2.5):
                pass
        msg = str(exc.value)
        assert f"pid {holder.pid}" in msg and os.uname().nodename in msg and lock_file(tmp_path, "gemm-test").name in msg
        assert "HKJIT_LOCK_TIMEOUT" in msg
        assert any(f"pid {holder.pid}" in r.getMessage() for r in caplog.records), "waiter never logged the holder"
    finally:
        holder.kill()
        holder.wait()
    record("lock: live holder -> waiter logs holder, times out after HKJIT_LOCK_TIMEOUT naming pid, host, lock",
           processes=1, lock_scenarios=1)


def test_network_filesystem_cache_keeps_its_lock_in_a_local_runtime_dir(tmp_path, monkeypatch):
    from hkjit.cache import lock as cache_lock
    from hkjit.fsutil import filesystem_type
    fstype = filesystem_type(tmp_path)
    assert fstype, "could not read the filesystem type from /proc/mounts"
    assert cache_lock.lock_dir(tmp_path) == Layout(tmp_path).locks_dir
    monkeypatch.setattr(cache_lock, "NETWORK_FS", cache_lock.NETWORK_FS | {fstype})   # pretend this fs is NFS
    d = cache_lock.lock_dir(tmp_path)
    assert not str(d).startswith(str(tmp_path)) and "locks-" in d.name
    monkeypatch.setenv("HKJIT_LOCK_DIR", str(tmp_path / "mine"))
    assert cache_lock.lock_dir(tmp_path) == tmp_path / "mine"
    record("lock: network filesystem -> lock in a local runtime dir; HKJIT_LOCK_DIR overrides", lock_scenarios=1)


# ------------------------------------------------------------------------------------------------ disks and paths

def test_read_only_cache_uses_a_layer_or_fails_clearly(built_cache, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        proc = run_child(ro)                                   # empty and read-only: a clear error
        assert proc.returncode != 0
        assert "CacheError" in proc.stderr and "HKJIT_CACHE_DIR" in proc.stderr, proc.stderr[-1500:]
        assert list(ro.iterdir()) == []                        # nothing half-written
        res = child_result(run_child(ro, HKJIT_CACHE_PATH=str(built_cache)))   # a pre-baked layer: a hit
        assert not res["built"] and res["err"] < 1e-2
    record("read-only cache: empty -> CacheError naming HKJIT_CACHE_DIR, nothing written; with a layer -> hit",
           processes=2, disk_scenarios=1)


def test_cache_dir_pointing_at_a_file(tmp_path):
    f = tmp_path / "not-a-dir"
    f.write_text("x")
    proc = run_child(f)
    assert proc.returncode != 0 and "is a file, not a directory" in proc.stderr
    record("HKJIT_CACHE_DIR is a file -> CacheError naming it", processes=1, disk_scenarios=1)


# ----------------------------------------------------------------------------------------------------------- skew

def test_entry_of_another_torch_version_is_never_loaded(built_cache, tmp_path):
    root = copy_cache(built_cache, tmp_path / "skew")
    entry = the_entry(root)
    inputs = json.loads((entry / KEY_JSON).read_text())
    inputs["torch"]["version"] = "2.12.0+cpu"                    # a consistent entry built by another torch
    new_key = key_of(inputs)
    foreign = entry.parent / f"{entry.name.rsplit('-', 1)[0]}-{new_key}"
    entry.rename(foreign)
    atomic_write_text(foreign / KEY_JSON, json.dumps(inputs))
    m = json.loads((foreign / MANIFEST).read_text())
    m["key"] = new_key
    atomic_write_text(foreign / MANIFEST, json.dumps(m))
    assert verify_entry(foreign).ok                              # valid, just not ours
    code = "from hkjit.loader import find\nfrom hkjit.specs import get_spec\n" \
           "if find(get_spec('cpu')) is None:\n    print('miss')\n"
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(root), capture_output=True, text=True)
    assert proc.stdout.startswith("miss"), proc.stdout + proc.stderr
    record("skew: a valid entry of another torch version -> different key, never loaded", processes=1,
           skew_scenarios=1)


def test_warm_path_skips_rehash_only_for_an_unchanged_file(built_cache, tmp_path):
    """The loader re-hashes a module unless its (inode, size, mtime, ctime) is the one whose checksum matched;
    a same-size rewrite that even restores the mtime still changes the ctime and is caught."""
    root = copy_cache(built_cache, tmp_path / "stamp")
    entry = the_entry(root)
    assert verify_entry(entry, full=False).ok and (entry / VERIFIED_STAMP).exists()
    mod = module_file(entry)
    st = mod.stat()
    data = bytearray(mod.read_bytes())
    data[len(data) // 2] ^= 0x01
    mod.write_bytes(bytes(data))
    os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns))          # same size, same mtime
    verdict = verify_entry(entry, full=False)
    assert not verdict.ok and "checksum" in verdict.reason
    record("warm-path checksum skip: same-size rewrite with restored mtime -> still detected (ctime)",
           corruptions=1)
