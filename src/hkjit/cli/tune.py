"""`hkjit tune`: time the kernel configurations per shape and record the winners. hkjit.tune times, records and
returns a TuneReport; this module formats it."""
from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from ..errors import UsageError
from ._common import config_names, emit_json, parents, say_unless, shapes_arg

if TYPE_CHECKING:       # hkjit.tune imports torch: only inside the command (`--help` stays instant)
    from ..tune import TuneReport


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tune", parents=parents(), help="time the kernel configurations per shape; record the "
                       "winners in the cache", description="Time every candidate kernel configuration on this "
                       "device for each shape (bench's timing: rotated inputs, median of timed calls, device events "
                       "on a GPU), after checking each against float64, and record the winners in the cache for "
                       "this device and toolchain: later processes (and machines sharing the cache) use them for "
                       "those exact shapes. hkjit never tunes on a call path. Exit 1 when a shape has no correct "
                       "configuration, 2 on bad arguments or a cache that cannot be written.")
    t.add_argument("--shapes", nargs="+", type=shapes_arg, required=True, metavar="llm|MxNxK,...",
                   help="shapes to tune (comma- or space-separated), or a named set (llm)")
    t.add_argument("--configs", action="append", metavar="all|NAME,...", help="candidate configurations (default: "
                   "all listed ones of this arch); names may spell configurations by their parameters (sm_90a "
                   "128x96, 64x96-pingpong; cpu n32k512): the winners are recorded and used like listed ones")
    t.add_argument("--repeat", type=int, metavar="N", help="timed calls per configuration and shape (GPU 200, CPU 10)")
    t.add_argument("--warmup", type=int, metavar="N", help="untimed calls first (GPU 5, CPU 1)")
    t.add_argument("--sets", type=int, default=3, metavar="N", help="input sets rotated (default: %(default)s)")
    t.add_argument("--no-record", action="store_true", help="report only; write no tuning record")
    t.add_argument("-j", "--jobs", type=int, metavar="N", help="parallel builds of the candidates not in the cache "
                   "(default: up to 8, one per CPU); one that fails to build is not a candidate")
    t.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from ..tune import tune
    shapes = [s for group in args.shapes for s in group]
    try:
        rep = tune(shapes, configs=config_names(args.configs), repeat=args.repeat, warmup=args.warmup,
                   sets=args.sets, record=not args.no_record, say=say_unless(args.quiet), jobs=args.jobs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.json:
        emit_json(rep.to_json())
    else:
        print(format_report(rep))
    return 0 if all(r.winner for r in rep.rows) else 1


def format_report(rep: TuneReport) -> str:
    lines = [f"hkjit tune: {rep.arch} on {rep.device}; median of {rep.repeat} timed calls per configuration, "
             f"{rep.timer}; speed-up vs torch.matmul (winner marked *)",
             f"{'shape (MxNxK)':<18} " + " ".join(f"{c:>14}" for c in rep.candidates) + "  winner"]
    for r in rep.rows:
        cells = []
        for c in rep.candidates:
            if c in r.ms:
                cells.append(f"{f'{r.torch_ms / r.ms[c]:.2f}x' + ('*' if c == r.winner else ' '):>14}")
            else:
                cells.append(f"{'wrong':>14}")
        lines.append(f"{r.shape:<18} " + " ".join(cells) + f"  {r.winner or '(none correct)'}")
    for c, how in rep.builds.items():
        if how.startswith("failed"):
            lines.append(f"{c}: {how.splitlines()[0][:300]} (not a candidate)")
    lines.append(f"recorded in {rep.record}" if rep.record else "nothing recorded")
    return "\n".join(lines)
