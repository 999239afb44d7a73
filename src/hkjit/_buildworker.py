"""The build subprocess: runs torch.utils.cpp_extension.load_inline for one request, output to the build log.

Run as ``python .../hkjit/_buildworker.py REQUEST.json`` (by path: it needs only torch) by builder.py, with stdout/stderr going to the build log.
A separate process keeps the compiler's output in the log (load_inline prints with verbose=True), lets `warmup -j`
build in parallel, and dies with its parent (PR_SET_PDEATHSIG) so a killed caller leaves no compiler running.
"""
from __future__ import annotations

import json
import sys
import time


def _source(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f'#line 1 "{path}"\n' + f.read()


def main(request_path: str) -> int:
    with open(request_path) as f:
        req = json.load(f)
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
