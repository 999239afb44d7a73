"""`hkjit warmup`: build (or find in the cache) every kernel ahead of time, with progress lines and a table."""
from __future__ import annotations

import argparse
import os
import time

from ..config import env_str
from ._common import ARCHS, Progress, add_arch_option, config_names, dur, emit_json, parents, plural, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("warmup", parents=parents(), help="build every kernel ahead of time (CI pre-baking too)",
                       description="Build (or find in the cache) every kernel for this device, or for the archs "
                       "named with --arch (no GPU needed). Exit 1 when a kernel fails to build.")
    add_arch_option(w, f"arch to build for, repeatable ({ARCHS}); default: this machine's GPU", repeat=True)
    w.add_argument("--kernel", action="append", metavar="NAME", help="kernel to build, repeatable (default: all)")
    w.add_argument("--config", action="append", metavar="NAME|all", help="kernel configurations to build, "
                   "repeatable or comma-separated, or all (every listed one); a name may also spell a configuration "
                   "by its parameters, e.g. sm_90a 128x96 or 64x96-pingpong-st6, cpu n32k512 (default: the arch's "
                   "default, those the selection table names and those a tuning record in the cache names)")
    w.add_argument("-j", "--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="parallel builds (default: %(default)s)")
    w.set_defaults(func=cmd_warmup)


def cmd_warmup(args: argparse.Namespace) -> int:
    import torch.distributed as dist
    from ..cache.roots import cache_root
    from ..warmup import default_archs, warmup, warmup_specs
    archs = args.arch or default_archs("cli")
    configs = config_names(args.config)
    root = cache_root()
    specs = warmup_specs(archs, args.kernel, config=configs, root=root)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else int(env_str("RANK", "0"))
    quiet = args.quiet
    t0 = time.perf_counter()
    with Progress(len(specs), quiet) as prog:
        results = warmup(arch=archs, kernel=args.kernel, jobs=args.jobs, root=root, on_start=prog.start,
                         on_done=prog.finish, config=configs)
    total = time.perf_counter() - t0
    counts = {s: sum(r.status == s for r in results) for s in ("built", "hit", "failed")}
    if args.json:
        emit_json({"root": str(root), "seconds": round(total, 3), "counts": counts, "rank": rank,
                   "results": [vars(r) | {"seconds": round(r.seconds, 4)} for r in results]})
    else:
        print(format_results(results, counts, total, root))
    return 1 if counts["failed"] else 0


def format_results(results: list, counts: dict[str, int], total: float, root) -> str:
    """The table, each multi-line build error in full, and the summary line."""
    rows = [[r.arch, r.kernel, r.status, dur(r.seconds), r.config or "-", r.key[:12] or "-",
             r.path or (r.error.splitlines()[0] if r.error else "")] for r in results]
    lines = [table(["arch", "kernel", "status", "time", "config", "key", "entry / error"], rows, right={3})]
    for r in results:
        if r.status == "failed" and "\n" in r.error:
            lines.append(f"\n{r.arch}/{r.kernel} {r.config}: {r.error}")
    lines.append(f"warmup: {counts['built']} built, {plural(counts['hit'], 'hit')}, {counts['failed']} failed in "
                 f"{dur(total)} (cache {root})")
    return "\n".join(lines)
