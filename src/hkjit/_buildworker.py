"""The build subprocess: runs torch.utils.cpp_extension.load_inline for one request, output to the build log.

Run as ``python .../hkjit/_buildworker.py REQUEST.json`` (by path: it needs only torch) by builder.py, with
REQUEST.json written from the build request (toolchain.BuildRequest.worker_request: sources, flags, environment),
stdout/stderr going to the build log. A separate process keeps the compiler's output in the log (load_inline prints
with verbose=True) and lets `warmup -j` build in parallel.

Nothing of a build may outlive the process that asked for it. builder.py starts this worker as the leader of a new
session (``start_new_session=True``), so ninja, the compiler drivers and cc1plus all carry the worker's pid as their
session id — ninja puts each command in a process group of its own, so a process-group kill is not enough, the
session is what they all share. ``kill_session`` SIGKILLs every live process of a session. It runs:

- here, when the parent dies (PR_SET_PDEATHSIG delivers SIGTERM to the worker, whose handler kills the session,
  itself last) — a SIGKILLed parent runs no code, so the worker must notice;
- in builder.py, when the build is interrupted (exception, KeyboardInterrupt) and after every build, for anything
  a worker killed outright (OOM) left behind.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

_ENV_PARENT = "HKJIT_BUILD_PARENT"


def session_members(sid: int) -> list[int]:
    """Live (not zombie) pids whose session id is sid, read from /proc (Linux); [] where /proc is absent."""
    out: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses, so split after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
            out.append(int(name))
    return out


def kill_session(sid: int, spare: int | None = None, reaped: bool = False, rounds: int = 50) -> list[int]:
    """SIGKILL every live process of session `sid` (but `spare`) until none is left; the pids killed.

    Repeated because a process may fork between the scan and the kill (ninja starting the next command). Without
    `spare` the leader's process group is killed first (os.killpg: all there is where /proc is absent).
    reaped=True: the leader (the worker, pid sid) has been waited for, so its pid may belong to someone else now;
    a live process with that pid leads another session, and nothing is killed."""
    killed: list[int] = []
    if reaped:
        if sid in session_members(sid):
            return killed
    elif spare is None:
        try:
            os.killpg(sid, signal.SIGKILL)      # the worker's own group (worker and ninja): no new commands start
        except (ProcessLookupError, PermissionError):
            pass
    for _ in range(rounds):
        pids = [p for p in session_members(sid) if p != spare]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    return killed


def _die_with_parent() -> None:
    """Kill this build's whole session when the parent dies (SIGTERM from PR_SET_PDEATHSIG, or a plain SIGTERM)."""
    def handler(_signum, _frame):
        me = os.getpid()
        kill_session(me, spare=me)
        os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    parent = os.environ.get(_ENV_PARENT)
    if parent and os.getppid() != int(parent):       # the parent died before prctl: nobody would tell us
        os._exit(128 + signal.SIGTERM)


def _source(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f'#line 1 "{path}"\n' + f.read()


def apply_env(env: dict[str, str]) -> None:
    """Set the request's variables (toolchain.BuildRequest.worker_env: the build-affecting environment as hashed,
    the compiler pinned); "" unsets one, as unset and empty are the same key input. Before cpp_extension is
    imported: it reads ROCM_HOME / CUDA_HOME at import."""
    for name, value in env.items():
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)


def main(request_path: str) -> int:
    _die_with_parent()
    with open(request_path) as f:
        req = json.load(f)
    apply_env(req["env"])
    from torch.utils.cpp_extension import load_inline  # imported here: the hit path never imports it

    t0 = time.time()
    print(f"hkjit: building {req['name']} in {req['build_directory']}", flush=True)
    load_inline(
        name=req["name"],
        cpp_sources=[_source(p) for p in req["host_sources"]],
        cuda_sources=[_source(p) for p in req["device_sources"]] or None,
        functions=req["functions"],
        extra_cflags=req["cflags"],
        extra_cuda_cflags=req["device_cflags"],
        extra_ldflags=req["ldflags"],
        build_directory=req["build_directory"],
        with_cuda=bool(req["device_sources"]),
        no_implicit_headers=True,
        verbose=True,
    )
    print(f"hkjit: built {req['name']} in {time.time() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
