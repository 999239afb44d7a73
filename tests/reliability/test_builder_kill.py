"""Killed builders leave nothing running (issue #13, item 4).

A build is a tree of processes: the caller, the build worker (_buildworker.py), ninja, the compiler driver, cc1plus.
ninja puts every command in a process group of its own, and a process whose parent dies is re-parented to pid 1: in
the seed a killed caller left ninja and the compiler running for the rest of the module (~50 s), so a stampede whose
lock holder was killed three times ran four compilers at once. These tests kill real callers in the middle of real
compiles and then look in /proc for anything of the build (a process whose command line or working folder is under
the cache root) still alive."""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from helpers import record, start_child

from hkjit.cache.layout import Layout

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.isdir("/proc"),
                                reason="reads the process table from /proc (Linux)")

GRACE_S = 15.0          # how long killed processes may take to disappear (not a speed bound: a hang bound)
START_S = 600.0         # how long to wait for a compiler to start on a loaded machine


def build_processes(root: Path) -> dict[int, tuple[str, int, str]]:
    """pid -> (comm, ppid, build folder name) of every live process whose command line or working folder lies in
    a build folder under root (``<root>/v1/tmp/<kernel>-<key>.<host>.<caller pid>.<n>``): the worker, ninja, the
    compiler drivers, cc1plus. Found by path, not by process tree or session, so that re-parented orphans count."""
    needle = str(Layout(root).staging_dir).encode() + b"/"
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            text = Path(f"/proc/{pid}/cmdline").read_bytes() + b"\0" + os.readlink(f"/proc/{pid}/cwd").encode()
            raw = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        at = text.find(needle)
        fields = raw[raw.rindex(b")") + 2:].split()
        if at < 0 or fields[0] == b"Z":
            continue
        build = re.split(rb"[/\0\s]", text[at + len(needle):], maxsplit=1)[0].decode(errors="replace")
        out[pid] = (raw[raw.index(b"(") + 1:raw.rindex(b")")].decode(errors="replace"), int(fields[1]), build)
    return out


def is_compiler(comm: str) -> bool:
    return comm in ("cc1plus", "cc1", "c++", "g++", "gcc") or comm.startswith("clang")


def caller_of(build: str) -> int:
    """The pid of the process that started build folder <kernel>-<key>.<host>.<pid>.<n>."""
    return int(build.rsplit(".", 2)[1])


def wait_for_compiler(root: Path, procs, max_builds: list[int]) -> str:
    """Poll until a compiler runs in a build folder under root; that folder's name. Records in max_builds[0] the
    most build folders seen with a live process at once."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        found = build_processes(root)
        max_builds[0] = max(max_builds[0], len({b for _c, _pp, b in found.values()}))
        for comm, _ppid, build in found.values():
            if is_compiler(comm):
                return build
        for p in procs:
            if p.poll() is not None and p.returncode != 0:
                pytest.fail(f"a child died before its compiler started:\n{p.stderr.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail(f"no compiler started under {root} within {START_S:.0f} s")


def wait_gone(root: Path, build: str) -> dict:
    """Wait up to GRACE_S for every process of build folder `build` to go; what is left alive then."""
    deadline = time.monotonic() + GRACE_S
    while True:
        left = {p: v for p, v in build_processes(root).items() if v[2] == build}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_sigkilled_lock_holders_in_a_stampede_leave_no_compiler_running(tmp_path):
    """Three processes stampede a cold cache; the lock holder is SIGKILLed mid-compile twice. Each time nothing of
    its build survives, at most one build runs at any moment, and the third process builds and computes correctly."""
    root = tmp_path / "cold"
    procs = [start_child(root, HKJIT_LOCK_TIMEOUT="900") for _ in range(3)]
    most = [0]
    kills = 0
    try:
        for _ in range(2):
            build = wait_for_compiler(root, [p for p in procs if p.returncode is None], most)
            holder = caller_of(build)
            victim = next(p for p in procs if p.pid == holder)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=60)
            kills += 1
            left = wait_gone(root, build)
            assert not left, f"after SIGKILL of the lock holder {holder}, its build survives: {left}"
        rest = [p for p in procs if p.returncode is None]
        assert len(rest) == 1
        while rest[0].poll() is None:             # sample concurrency until the last build finishes
            most[0] = max(most[0], len({b for _c, _pp, b in build_processes(root).values()}))
            time.sleep(0.1)
        out, err = rest[0].communicate(timeout=900)
        assert rest[0].returncode == 0, err[-2000:]
        res = json.loads(out.strip().splitlines()[-1])
        assert res["built"] and res["err"] < 1e-2
        assert most[0] <= 1, f"{most[0]} builds ran at once"
        assert not build_processes(root), "a process of the finished build is still alive"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    record(f"builder kill: lock holder SIGKILLed mid-compile {kills}x in a 3-process stampede -> 0 surviving build "
           f"processes, at most {most[0]} build at once, the third process built (rel. err {res['err']:.1e})",
           processes=3, kills=kills, compiles=1, lock_scenarios=1)


def test_interrupted_caller_kills_its_build(tmp_path):
    """Ctrl-C (SIGINT -> KeyboardInterrupt in the caller's wait) kills the whole build before the error propagates."""
    root = tmp_path / "cold"
    proc = start_child(root)
    most = [0]
    try:
        build = wait_for_compiler(root, [proc], most)
        assert caller_of(build) == proc.pid
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        left = wait_gone(root, build)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]
    assert not left, f"after Ctrl-C of the caller, its build survives: {left}"
    record("builder kill: caller interrupted (SIGINT) mid-compile -> 0 surviving build processes",
           processes=1, kills=1)
