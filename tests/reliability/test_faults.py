"""Faults that used to end in a raw error or a wrong decision: entries that verify but do not import, an entry
vanishing before its import, full disks at the lease and during a build, a nan lock timeout, temp folders of dead
builders on dotted hosts or dated in the future, a future .last_used. Real processes and filesystems (a small
tmpfs where mounting is allowed, else skipped with the reason). Figures go to helpers.record."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import LOAD, child_env, child_result, copy_cache, count_builds, record, run_child, small_filesystem

from hkjit.fsutil import file_xxh3
from hkjit.cache.entry import iter_entries, verify_entry
from hkjit.cache.layout import MANIFEST, USED_STAMP, Layout



def the_entry(root: Path) -> Path:
    entries = [e for _a, _k, _key, e in iter_entries(root)]
    assert len(entries) == 1, entries
    return entries[0]


def trash(root: Path) -> list[Path]:
    d = Layout(root).trash_dir
    return list(d.iterdir()) if d.is_dir() else []


def _garbage_module(entry: Path) -> None:
    """Replace the module by bytes that are no shared object, with a manifest that records them: it verifies."""
    m = json.loads((entry / MANIFEST).read_text())
    mod = entry / m["module_file"]
    mod.write_bytes(os.urandom(4096))
    m.update(size=mod.stat().st_size, xxh3=file_xxh3(mod))
    (entry / MANIFEST).write_text(json.dumps(m))


def _wrong_init_symbol(entry: Path) -> None:
    """The module file renamed, with a manifest naming it consistently (so it verifies: manifest.py requires the
    file name to start with the module name): dlopen works, PyInit_<name> is not there."""
    m = json.loads((entry / MANIFEST).read_text())
    (entry / m["module_file"]).rename(entry / "hkjit_someone_else.so")
    m["module_name"], m["module_file"] = "hkjit_someone_else", "hkjit_someone_else.so"
    (entry / MANIFEST).write_text(json.dumps(m))


def test_verified_garbage_module_is_moved_aside_and_rebuilt(built_cache, tmp_path):
    root = copy_cache(built_cache, tmp_path / "garbage")
    _garbage_module(the_entry(root))
    assert verify_entry(the_entry(root)).ok                     # it verifies: only the import can tell
    proc = run_child(root)
    res = child_result(proc)
    assert res["built"] and res["err"] < 1e-2
    assert "does not import" in proc.stderr and "moved to" in proc.stderr, proc.stderr[-2000:]
    assert len(trash(root)) == 1 and verify_entry(the_entry(root)).ok
    again = child_result(run_child(root))                       # and the next process simply hits
    assert not again["built"]
    record("verified garbage module -> ImportError caught, moved aside, rebuilt once; next process hits",
           processes=2, compiles=1, corruptions=1)


def test_verified_entry_with_wrong_init_symbol_fails_clearly_once(built_cache, tmp_path):
    """load_cached: the bad entry is moved aside and the call is a plain miss (None), not an ImportError that
    every later process would repeat."""
    root = copy_cache(built_cache, tmp_path / "wrong-init")
    _wrong_init_symbol(the_entry(root))
    assert verify_entry(the_entry(root)).ok
    proc = run_child(root, LOAD)
    assert proc.returncode == 0 and "miss" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "PyInit_hkjit_someone_else" in proc.stderr and "moved to" in proc.stderr
    assert list(iter_entries(root)) == [] and len(trash(root)) == 1
    record("verified entry with a wrong init symbol, load_cached -> moved aside, one clear miss (no ImportError)",
           processes=1, corruptions=1)


def test_unloadable_entry_in_a_read_only_layer_is_skipped_once(built_cache, tmp_path):
    layer = copy_cache(built_cache, tmp_path / "layer")
    _garbage_module(the_entry(layer))
    code = textwrap.dedent("""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from hkjit.loader import forget_loaded, load_cached
        from hkjit.specs import get_spec
        for _ in range(3):                       # three lookups in one process: one warning
            forget_loaded()
            if load_cached(get_spec("cpu")) is None:
                print("miss")
    """)
    proc = run_child(tmp_path / "root", code, HKJIT_CACHE_PATH=str(layer))
    assert proc.returncode == 0 and "miss" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert proc.stderr.count("it verifies but does not import") == 1, proc.stderr[-2000:]
    assert the_entry(layer).exists() and trash(layer) == []     # a layer is never changed
    record("verified garbage module in a read-only layer -> one warning, skipped for the process, layer untouched",
           processes=1, corruptions=1)


def test_entry_vanishing_between_verify_and_import_is_looked_up_again(built_cache, tmp_path):
    """A concurrent `cache clear` renames the verified root entry away right before the import (fault injected
    at that point): the loader looks again and loads the copy in the layer, no ImportError."""
    root = copy_cache(built_cache, tmp_path / "root")
    layer = copy_cache(built_cache, tmp_path / "layer")
    proc = run_child(root, HKJIT_CACHE_PATH=str(layer), HKJIT_TEST_FAULT="vanish_before_import")
    res = child_result(proc)
    assert not res["built"] and res["err"] < 1e-2 and Path(res["path"]).is_relative_to(layer)
    assert "vanished between its check and its import" in proc.stderr, proc.stderr[-2000:]
    record("entry deleted between verify and dlopen -> looked up again, loaded from the layer, correct result",
           processes=1, corruptions=1)


# ---------------------------------------------------------------------------------------------------- locks

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hkjit.cache.lock import BuildLock
    with BuildLock(Path(sys.argv[1]), "gemm-test", what="building a test build"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")

WAIT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hkjit.cache.lock import BuildLock
    with BuildLock(Path(sys.argv[1]), "gemm-test", what="building a test build"):
        print("acquired")
""")


@pytest.mark.parametrize("value", ["nan", "-5", "-inf"])
def test_unusable_lock_timeout_is_rejected_naming_the_variable(tmp_path, value):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "60"], env=child_env(tmp_path),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", WAIT, str(tmp_path)], capture_output=True, text=True,
                              env=child_env(tmp_path, HKJIT_LOCK_TIMEOUT=value), timeout=120)
        waited = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode != 0 and "acquired" not in proc.stdout
    assert f"HKJIT_LOCK_TIMEOUT='{value}'" in proc.stderr and "inf to wait forever" in proc.stderr, proc.stderr[-1500:]
    assert proc.stderr.count("\n") < 40, "the waiter logged in a loop"
    record(f"HKJIT_LOCK_TIMEOUT={value} -> ConfigError naming the variable ({waited:.1f} s, no busy loop)",
           processes=2, lock_scenarios=1)


def test_explicit_inf_lock_timeout_is_accepted(monkeypatch):
    from hkjit.config import lock_timeout
    monkeypatch.setenv("HKJIT_LOCK_TIMEOUT", "inf")
    assert lock_timeout() == float("inf")
    monkeypatch.setenv("HKJIT_LOCK_TIMEOUT", "0")
    assert lock_timeout() == 0.0
    record("HKJIT_LOCK_TIMEOUT=inf (and 0) accepted", lock_scenarios=1)


# ---------------------------------------------------------------------------------------------------- disks

def _fill(fs: Path, leave: int) -> None:
    """Fill the filesystem at fs until at most `leave` bytes are free."""
    with open(fs / "filler", "wb") as f:
        while shutil.disk_usage(fs).free > leave:
            try:
                f.write(b"\0" * min(1 << 16, max(4096, shutil.disk_usage(fs).free - leave)))
                f.flush()
            except OSError:
                break


def _leftovers(root: Path) -> list[str]:
    """Anything half-written: entries, temp build folders, temp files of atomic writes, failed logs."""
    layout = Layout(root)
    fmt = layout.format_dir
    out = [str(e) for *_x, e in iter_entries(root)]
    for d in (layout.staging_dir, layout.failed_dir):
        out += [str(p) for p in d.iterdir()] if d.is_dir() else []
    out += [str(p) for p in fmt.rglob("*.tmp")] if fmt.is_dir() else []
    return out


@pytest.mark.parametrize("leave_kb", [0, 8, 64])
def test_full_disk_at_the_lease_or_the_build_is_one_clear_error(tmp_path, leave_kb):
    """0 KB free: the lease cannot be written (was OSError Errno 28). A few KB: the compiler's log cannot be
    written (was a BuildError with empty output and a 0-byte log). 64 KB: the disk fills during the build, as the
    compiler writes its objects. Each: a CacheError saying the disk is full and naming the fix, and nothing
    half-written (no entry, no temp folder)."""
    with small_filesystem(tmp_path / "small", "2m") as fs:
        root = fs / "cache"
        root.mkdir()
        _fill(fs, leave_kb * 1024)
        proc = run_child(root)
        assert proc.returncode != 0
        err = proc.stderr
        assert "CacheError" in err and ("disk is full" in err or "disk full" in err), err[-2500:]
        assert "HKJIT_CACHE_DIR" in err or "HKJIT_LOCK_DIR" in err
        assert "Errno 28" not in err.splitlines()[-1] and "BuildError" not in err
        assert _leftovers(root) == [], _leftovers(root)
    record(f"disk full with {leave_kb} KB left (tmpfs) -> CacheError 'disk full' naming the fix, nothing "
           f"half-written", processes=1, disk_scenarios=1)


# ------------------------------------------------------------------------------------------- temp dirs, skew

CLEAN = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from hkjit.cache.entry import clean_orphans, host_id
    print(json.dumps({"host": host_id(), "removed": [str(p) for p in clean_orphans(Path(sys.argv[1]))]}))
""")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temp_dir_of_a_dead_builder_on_a_dotted_host_is_cleaned(tmp_path):
    """A host named node7.cluster.local (a new UTS namespace): rsplit('.', 3) took 'local' for the host, so its
    dead builders' temp folders were never removed."""
    host = "node7.cluster.local"
    probe = subprocess.run(["unshare", "--uts", "sh", "-c", f"hostname {host} && hostname"], capture_output=True,
                           text=True)
    if probe.returncode != 0 or probe.stdout.strip() != host:
        pytest.skip(f"cannot set a host name in a new UTS namespace here ({probe.stderr.strip()[:200]})")
    tmp = Layout(tmp_path).staging_dir
    orphan = tmp / f"gemm_bf16-{'a' * 32}.{host}.{_dead_pid()}.0"
    alive = tmp / f"gemm_bf16-{'b' * 32}.{host}.{os.getpid()}.0"      # a live builder: kept
    for d in (orphan, alive):
        d.mkdir(parents=True)
    proc = subprocess.run(["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$0" "$@"', sys.executable,
                           "-c", CLEAN, str(tmp_path)], capture_output=True, text=True, env=child_env(tmp_path))
    res = child_result(proc)
    assert res["host"] == host and res["removed"] == [str(orphan)], res
    assert alive.exists() and not orphan.exists()
    record(f"temp folder of a dead builder on host {host} -> removed; a live builder's kept", processes=2,
           skew_scenarios=1)


def test_future_dated_temp_dir_does_not_survive_cache_clear(tmp_path):
    tmp = Layout(tmp_path).staging_dir
    future = tmp / f"gemm_bf16-{'c' * 32}.otherhost.1234.0"
    future.mkdir(parents=True)
    year_2100 = 4102444800
    os.utime(future, (year_2100, year_2100))
    proc = subprocess.run([sys.executable, "-m", "hkjit", "cache", "clear"], env=child_env(tmp_path),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert not future.exists(), "a temp folder dated in 2100 survived cache clear"
    record("temp folder dated 2100 (another host) -> removed by `cache clear`", processes=1, skew_scenarios=1)


def test_future_last_used_does_not_make_prune_evict_the_entry_in_use(built_cache, tmp_path):
    """Two entries; the other one's .last_used is dated 2100 (clock skew). A process uses ours; prune to one
    entry's size evicts the other one, not the one just used."""
    root = copy_cache(built_cache, tmp_path / "skew")
    ours = the_entry(root)
    other = ours.with_name(ours.name.rsplit("-", 1)[0] + "-" + "d" * 32)
    shutil.copytree(ours, other, symlinks=True)
    year_2100 = 4102444800
    (other / USED_STAMP).touch()
    os.utime(other / USED_STAMP, (year_2100, year_2100))
    res = child_result(run_child(root))                        # uses ours: its .last_used is now
    assert not res["built"] and Path(res["path"]) == ours
    from hkjit.fsutil import dir_size
    proc = subprocess.run([sys.executable, "-m", "hkjit", "cache", "prune", "--max-size", str(dir_size(Layout(root).format_dir)
                           - dir_size(other) + 4096)], env=child_env(root), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert ours.exists() and not other.exists(), proc.stdout
    assert count_builds(root) == 1
    record("future .last_used (2100) on another entry -> prune evicts it, keeps the entry in use", processes=2,
           skew_scenarios=1)
