"""Trust: hkjit never loads (or writes) a cache another user could have written, and never follows a planted
symlink where it creates or rewrites a file. Real processes, real files; a second user (nobody, via setpriv) plants
files where the test runs as root, and those tests skip with a reason otherwise. Figures go to helpers.record."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from helpers import LOAD, child_env, child_result, copy_cache, record, run_child

from hkjit.fsutil import file_xxh3
from hkjit.cache.entry import iter_entries, touch_used, verify_entry
from hkjit.cache.layout import KEY_JSON, MANIFEST, USED_STAMP, VERIFIED_STAMP, Layout, lease_file, lock_file
from hkjit.cache.roots import ensure_writable
from hkjit.errors import CacheError

OTHER = 65534          # nobody
SETPRIV = shutil.which("setpriv")
as_root = pytest.mark.skipif(os.geteuid() != 0 or not SETPRIV,
                             reason="needs root and setpriv to act as a second user (nobody)")



@pytest.fixture
def shared_tmp():
    """A folder the second user can reach (pytest's tmp_path sits under a 0700 folder of root)."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="hkjit-trust-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def the_entry(root: Path) -> Path:
    entries = [e for _a, _k, _key, e in iter_entries(root)]
    assert len(entries) == 1, entries
    return entries[0]


def as_other(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run cmd as user nobody (no groups)."""
    return subprocess.run([SETPRIV, f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups", *cmd],
                          capture_output=True, text=True, **kw)


def load(root: Path, **env) -> tuple[subprocess.CompletedProcess, dict | None]:
    proc = run_child(root, LOAD, **env)
    out = proc.stdout.strip().splitlines()
    return proc, (json.loads(out[-1]) if proc.returncode == 0 and out else None)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its (size, mtime_ns): what a read-only use must leave unchanged."""
    out = {}
    for dirpath, _d, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            out[os.path.relpath(os.path.join(dirpath, f), root)] = (st.st_size, st.st_mtime_ns)
    return out


# ----------------------------------------------------------------------------------- roots writable by others

EVIL_C = textwrap.dedent("""
    #include <Python.h>
    #include <stdio.h>
    static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, NULL};
    PyMODINIT_FUNC PyInit_%(name)s(void) {
        FILE *f = fopen("%(marker)s", "w"); if (f) { fputs("another user's code ran", f); fclose(f); }
        return PyModule_Create(&def);
    }
""")

# run as another user (plain shell: that user cannot read this machine's Python environment): swap the entry for a
# prepared copy whose module is the planted one and whose manifest records its size and checksum
PLANT = 'mv "$1" "$1.old" && cp -r "$2" "$1" && echo planted'


@as_root
def test_module_swapped_by_another_user_in_a_shared_root_never_runs(built_cache, shared_tmp):
    """A group-shared 0777 root: user nobody swaps the entry for one whose module writes a marker at import. The
    next process refuses the root (CacheError naming the path, mode and HKJIT_TRUSTED_CACHE_DIRS), the marker is
    never written; trusting the folder explicitly runs the swapped module, so the attack is real."""
    cc = shutil.which("clang") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the planted module")
    tmp_path = shared_tmp
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    root = copy_cache(built_cache, shared / "cache")
    entry = the_entry(root)
    manifest = json.loads((entry / MANIFEST).read_text())
    for dirpath, dirs, _f in os.walk(root):                        # a cache made group-shared by chmod -R 777
        os.chmod(dirpath, 0o777)
    marker = tmp_path / "marker"
    src = tmp_path / "evil.c"
    src.write_text(EVIL_C % {"name": manifest["module_name"], "marker": marker})
    evil = tmp_path / "evil.so"
    subprocess.run([cc, "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", str(src), "-o", str(evil)],
                   check=True, capture_output=True)
    staged = tmp_path / "staged"
    shutil.copytree(entry, staged)
    shutil.copyfile(evil, staged / manifest["module_file"])
    manifest.update(size=evil.stat().st_size, xxh3=file_xxh3(evil))
    (staged / MANIFEST).write_text(json.dumps(manifest))
    for p in [staged, *staged.iterdir()]:
        p.chmod(0o755)
    planted = as_other(["sh", "-c", PLANT, "plant", str(entry), str(staged)])
    assert planted.returncode == 0 and "planted" in planted.stdout, planted.stderr[-2000:]
    assert verify_entry(entry).ok is False                      # owned by nobody: refused even inside
    proc, res = load(root)
    assert proc.returncode != 0 and res is None
    assert "CacheError" in proc.stderr and str(root) in proc.stderr and "HKJIT_TRUSTED_CACHE_DIRS" in proc.stderr
    assert "writable by every user" in proc.stderr, proc.stderr[-1500:]
    assert not marker.exists(), "another user's module was imported"
    proc, res = load(root, HKJIT_TRUSTED_CACHE_DIRS=str(shared))  # trusting it explicitly: the swap takes effect
    assert res is not None and "loaded" in res, proc.stderr[-1500:]
    assert marker.exists()
    record("trust: a 0777 root where another user swapped the module -> CacheError naming the path, mode and "
           "HKJIT_TRUSTED_CACHE_DIRS; the planted module never ran (it does run once that folder is trusted)",
           processes=3)


@pytest.mark.parametrize("how", ["0777 root", "0777 v1", "0777 non-sticky parent", "root owned by another user"])
def test_root_writable_by_others_is_refused_and_not_written(built_cache, tmp_path, how):
    if how == "root owned by another user" and os.geteuid() != 0:
        pytest.skip("needs root to chown a folder to another user")
    parent = tmp_path / "p"
    parent.mkdir()
    root = copy_cache(built_cache, parent / "cache")
    {"0777 root": lambda: root.chmod(0o777), "0777 v1": lambda: Layout(root).format_dir.chmod(0o777),
     "0777 non-sticky parent": lambda: parent.chmod(0o777),
     "root owned by another user": lambda: os.chown(root, OTHER, OTHER)}[how]()
    before = snapshot(root)
    proc, res = load(root)
    assert proc.returncode != 0 and "CacheError" in proc.stderr and "HKJIT_TRUSTED_CACHE_DIRS" in proc.stderr, \
        proc.stderr[-1500:]
    assert snapshot(root) == before, "a refused root was written"
    proc, res = load(root, HKJIT_TRUSTED_CACHE_DIRS=str(root))
    assert res is not None and "loaded" in res, proc.stderr[-1500:]
    record(f"trust: {how} -> CacheError naming HKJIT_TRUSTED_CACHE_DIRS, nothing written; trusted explicitly -> hit",
           processes=2)


def test_sticky_parent_and_private_group_are_trusted(built_cache, tmp_path):
    """/tmp-like sticky parents and a group-writable folder of the owner's private group (umask 002) are fine."""
    import grp
    import pwd
    from hkjit.cache.trust import root_problem
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    root = copy_cache(built_cache, sticky / "cache")
    assert root_problem(root) is None
    me = pwd.getpwuid(os.geteuid())
    try:
        private = grp.getgrgid(me.pw_gid).gr_name == me.pw_name and set(grp.getgrgid(me.pw_gid).gr_mem) <= {me.pw_name}
    except KeyError:
        private = False
    root.chmod(0o775)
    assert (root_problem(root) is None) == private
    if os.geteuid() == 0:
        os.chown(root, 0, OTHER)                                 # group write for group nogroup: refused
        assert "writable by group" in (root_problem(root) or "")
    record("trust: sticky parent accepted; group write accepted only for the owner's private group", )


@as_root
@pytest.mark.parametrize("how", ["0777 layer", "layer owned by another user"])
def test_layer_writable_by_others_is_skipped_with_one_warning(built_cache, tmp_path, how):
    layer = copy_cache(built_cache, tmp_path / "layer")
    if how == "0777 layer":
        Layout(layer).format_dir.chmod(0o777)
    else:
        subprocess.run(["chown", "-R", f"{OTHER}:{OTHER}", str(layer)], check=True)
    before = snapshot(layer)
    proc, res = load(tmp_path / "root", HKJIT_CACHE_PATH=str(layer))
    assert res is not None and "miss" in res, proc.stdout + proc.stderr[-1500:]
    assert proc.stderr.count("skipping the read-only cache layer") == 1, proc.stderr[-1500:]
    assert "HKJIT_TRUSTED_CACHE_DIRS" in proc.stderr
    assert snapshot(layer) == before
    proc, res = load(tmp_path / "root", HKJIT_CACHE_PATH=str(layer), HKJIT_TRUSTED_CACHE_DIRS=str(layer))
    assert res is not None and "loaded" in res, proc.stderr[-1500:]
    record(f"trust: {how} -> skipped with one warning, never read or written; trusted explicitly -> hit",
           processes=2)


def test_loader_never_writes_into_a_read_only_layer(built_cache, tmp_path):
    """README calls layers read-only: a hit from one leaves no .last_used or .verified behind, changes no file."""
    layer = copy_cache(built_cache, tmp_path / "layer")
    entry = the_entry(layer)
    for stamp in (VERIFIED_STAMP, USED_STAMP):
        (entry / stamp).unlink(missing_ok=True)
    before = snapshot(layer)
    res = child_result(run_child(tmp_path / "root", HKJIT_CACHE_PATH=str(layer)))
    assert not res["built"] and res["err"] < 1e-2 and Path(res["path"]) == entry
    assert snapshot(layer) == before, "the loader wrote into a read-only layer"
    record("layer: a hit from a read-only layer writes nothing there (.last_used, .verified)", processes=1)


# ------------------------------------------------------------------------------------------- entries and symlinks

def _symlinked_module(entry: Path, elsewhere: Path) -> None:
    mod = entry / json.loads((entry / MANIFEST).read_text())["module_file"]
    shutil.move(mod, elsewhere)
    mod.symlink_to(elsewhere)


def _symlinked_manifest(entry: Path, elsewhere: Path) -> None:
    shutil.move(entry / MANIFEST, elsewhere)
    (entry / MANIFEST).symlink_to(elsewhere)


def _symlinked_entry(entry: Path, elsewhere: Path) -> None:
    shutil.move(entry, elsewhere)
    entry.symlink_to(elsewhere, target_is_directory=True)


def _foreign_key_json(entry: Path, elsewhere: Path) -> None:
    os.chown(entry / KEY_JSON, OTHER, OTHER)


def _group_writable_module(entry: Path, elsewhere: Path) -> None:
    mod = entry / json.loads((entry / MANIFEST).read_text())["module_file"]
    os.chown(mod, 0, OTHER)
    mod.chmod(0o664)


ENTRY_ATTACKS = {"symlinked module": _symlinked_module, "symlinked manifest": _symlinked_manifest,
                 "symlinked entry folder": _symlinked_entry, "key.json of another user": _foreign_key_json,
                 "module writable by another group": _group_writable_module}


@pytest.mark.parametrize("name", list(ENTRY_ATTACKS))
def test_entry_symlinks_and_foreign_files_are_refused(built_cache, tmp_path, name):
    if name in ("key.json of another user", "module writable by another group") and os.geteuid() != 0:
        pytest.skip("needs root to chown a file to another user")
    root = copy_cache(built_cache, tmp_path / "root")
    entry = the_entry(root)
    assert verify_entry(entry, full=False).ok
    ENTRY_ATTACKS[name](entry, tmp_path / "elsewhere")
    for full in (False, True):
        v = verify_entry(entry, full=full)
        assert not v.ok, f"{name} accepted (full={full})"
    proc, res = load(root)
    assert res is not None and "miss" in res, proc.stderr[-1500:]
    record(f"entry: {name} -> refused by verify (warm and full) and by the loader", processes=1, corruptions=1)


def _victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim"
    v.write_text("precious")
    return v


def test_planted_symlinks_are_never_written_through(built_cache, tmp_path):
    """The writability probe, the .verified and .last_used stamps: a symlink planted at each (pointing at a file
    hkjit must not touch) is replaced or refused, never followed."""
    root = copy_cache(built_cache, tmp_path / "root")
    entry = the_entry(root)
    victim = _victim(tmp_path)
    mtime = victim.stat().st_mtime_ns
    for pid in range(os.getpid() - 2, os.getpid() + 3):        # the old fixed probe name v1/.probe-<pid>
        (Layout(root).format_dir / f".probe-{pid}").symlink_to(victim)
    ensure_writable(root)
    (entry / VERIFIED_STAMP).unlink(missing_ok=True)
    (entry / VERIFIED_STAMP).symlink_to(victim)
    assert verify_entry(entry).ok
    assert not (entry / VERIFIED_STAMP).is_symlink(), ".verified still a symlink: the stamp was written through it"
    (entry / USED_STAMP).unlink(missing_ok=True)
    (entry / USED_STAMP).symlink_to(victim)
    touch_used(entry)
    assert victim.read_text() == "precious" and victim.stat().st_mtime_ns == mtime
    record("symlinks planted at the writability probe, .verified, .last_used -> never followed (victim unchanged)",
           corruptions=3)


def test_planted_lease_and_lock_symlinks_are_never_followed(tmp_path):
    """The lease is replaced by rename; the lock file is opened with O_NOFOLLOW (filelock >= 3.20.1, the lower
    bound: older versions truncate the symlink's target), which BuildLock reports as a CacheError."""
    import filelock
    from hkjit.cache.lock import BuildLock
    root = tmp_path / "root"
    victim = _victim(tmp_path)
    locks = Layout(root).locks_dir
    locks.mkdir(parents=True)
    lease_file(locks, "t").symlink_to(victim)
    with BuildLock(root, "t", timeout=5):
        pass
    lock_file(locks, "u").symlink_to(victim)
    with pytest.raises(CacheError, match="symlink"):
        with BuildLock(root, "u", timeout=5):
            pass
    assert victim.read_text() == "precious"
    record(f"symlinks planted at the lease and the lock file -> replaced / CacheError, victim unchanged "
           f"(filelock {filelock.__version__})", corruptions=2, lock_scenarios=1)


# ------------------------------------------------------------------------------------------------------ locks

def test_runtime_lock_dir_is_private(tmp_path, monkeypatch):
    from hkjit.cache import lock as cache_lock
    from hkjit.fsutil import filesystem_type
    fstype = filesystem_type(tmp_path)
    monkeypatch.setattr(cache_lock, "NETWORK_FS", cache_lock.NETWORK_FS | {fstype})   # pretend the cache is on NFS
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("HKJIT_LOCK_DIR", raising=False)
    with cache_lock.BuildLock(tmp_path / "cache", "t", timeout=5) as lock:
        created = [p for p in [lock.path.parent, *lock.path.parent.parents] if p.is_relative_to(tmp_path / "run")]
    assert created and all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in created), \
        [(str(p), oct(p.stat().st_mode)) for p in created]
    record("lock: the runtime lock dir (network cache) and its new parents are created 0700", lock_scenarios=1)


@as_root
def test_lock_dir_of_another_user_is_refused(tmp_path, monkeypatch):
    from hkjit.cache.lock import BuildLock
    d = tmp_path / "locks"
    d.mkdir()
    os.chown(d, OTHER, OTHER)
    monkeypatch.setenv("HKJIT_LOCK_DIR", str(d))
    with pytest.raises(CacheError, match="owned by another user"):
        BuildLock(tmp_path / "cache", "t", timeout=5)
    record("lock: HKJIT_LOCK_DIR owned by another user -> CacheError naming it", lock_scenarios=1)


RUNTIME = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[1])
    import platformdirs
    d = os.path.join(platformdirs.user_runtime_dir("hkjit"), "locks-test")
    os.makedirs(d, mode=0o700, exist_ok=True)      # what hkjit.cache.lock.prepare_lock_dir needs to work
    print(platformdirs.__version__, d)
""")


def _platformdirs_copy(dest: Path, site: Path | None = None) -> Path:
    import platformdirs
    src = Path(platformdirs.__file__).parent if site is None else site / "platformdirs"
    shutil.copytree(src, dest / "platformdirs")
    for dirpath, dirs, files in os.walk(dest):
        for n in dirs + files:
            os.chmod(os.path.join(dirpath, n), 0o755)
    return dest


@as_root
def test_runtime_dir_without_run_user_works_for_an_unprivileged_user(shared_tmp):
    """No XDG_RUNTIME_DIR and no /run/user/<uid> (containers): platformdirs >= 4.4 (the lower bound) falls back to
    a temp dir, so a network-filesystem cache still gets its lock folder; older versions returned the unusable
    /run/user/<uid>. Run as user nobody with this platformdirs (that user cannot read the Python environment here,
    so the package is copied; the system python of the same minor version runs it)."""
    if Path(f"/run/user/{OTHER}").exists():
        pytest.skip(f"/run/user/{OTHER} exists here")
    python = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python of this minor version for the second user")
    lib = _platformdirs_copy(shared_tmp / "lib")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(shared_tmp)}
    proc = as_other([python, "-c", RUNTIME, str(lib)], env=env)
    assert proc.returncode == 0, proc.stderr[-1500:]
    version, where = proc.stdout.split()
    assert not where.startswith("/run/user/")
    record(f"lock: unprivileged user without /run/user/<uid> -> runtime lock dir {where} (platformdirs {version})",
           processes=1, lock_scenarios=1)


# ------------------------------------------------------------------------------------------------------ doctor

def test_doctor_names_a_refused_root(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    proc = subprocess.run([sys.executable, "-m", "hkjit", "doctor"], env=child_env(root), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "trust  REFUSED" in proc.stdout and "HKJIT_TRUSTED_CACHE_DIRS" in proc.stdout, proc.stdout[-2000:]
    assert not Layout(root).format_dir.exists(), "doctor wrote into a refused root"
    ok = subprocess.run([sys.executable, "-m", "hkjit", "doctor"], env=child_env(root, HKJIT_TRUSTED_CACHE_DIRS=root),
                        capture_output=True, text=True, timeout=300)
    assert "trust  trusted (HKJIT_TRUSTED_CACHE_DIRS)" in ok.stdout, ok.stdout[-2000:]
    record("doctor: a 0777 root -> 'trust REFUSED' with the fix, blocking, nothing written", processes=2)


def test_cache_commands_never_write_into_an_untrusted_root(built_cache, tmp_path):
    """clear, prune and import write into the root: on a 0777 root each is refused (exit 2, naming the variable)
    and nothing under it changes; trusted explicitly, clear works."""
    good = copy_cache(built_cache, tmp_path / "good")
    archive = tmp_path / "a.tar"
    cli = [sys.executable, "-m", "hkjit", "cache"]
    exported = subprocess.run(cli + ["export", str(archive)], env=child_env(good), capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr[-1500:]
    root = copy_cache(built_cache, tmp_path / "shared")
    root.chmod(0o777)
    before = snapshot(root)
    for args in (["clear"], ["prune", "--max-size", "0"], ["import", str(archive)]):
        p = subprocess.run(cli + args, env=child_env(root), capture_output=True, text=True)
        assert p.returncode == 2 and "HKJIT_TRUSTED_CACHE_DIRS" in p.stderr, (args, p.stdout, p.stderr[-1500:])
        assert snapshot(root) == before, f"`cache {' '.join(args)}` wrote into a refused root"
    p = subprocess.run(cli + ["clear"], env=child_env(root, HKJIT_TRUSTED_CACHE_DIRS=str(root)), capture_output=True,
                       text=True)
    assert p.returncode == 0 and not list(iter_entries(root)), p.stderr[-1500:]
    record("trust: cache clear / prune / import on a 0777 root -> exit 2 naming HKJIT_TRUSTED_CACHE_DIRS, nothing "
           "written; trusted explicitly -> clear works", processes=5)
