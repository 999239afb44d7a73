"""`hkjit bench`: TFLOP/s of hkjit.gemm vs torch.matmul per shape (hkjit.bench times and formats), optional plot."""
from __future__ import annotations

import argparse

from ._common import config_names, emit_json, err, parents, say_unless, shapes_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", parents=parents(), help="TFLOP/s of hkjit.gemm vs torch.matmul",
                       description="Time hkjit.gemm with the kernel forced, hkjit.gemm as users call it (the dispatch "
                       "policy's path) and torch.matmul per shape: median of timed calls after warm-up, input sets "
                       "rotated, the three functions alternated in rounds, device events on a GPU.")
    b.add_argument("--shapes", nargs="+", type=shapes_arg, metavar="MxNxK|llm", help="shapes, or a named set "
                   "(llm: issue #16's shapes and Llama-3 8B/70B projections, prefill and decode), space- or comma-"
                   "separated; default: 1024..8192 cubes and ragged/skinny shapes on a GPU, 128..512 on the CPU")
    b.add_argument("--configs", action="append", metavar="all|NAME,...", help="also time the kernel forced in each "
                   "of these configurations (all: every one of this arch's)")
    b.add_argument("--repeat", type=int, metavar="N", help="timed calls per function and shape (GPU 200, CPU 10)")
    b.add_argument("--warmup", type=int, metavar="N",
                   help="untimed calls first, at least one per input set (GPU 5, CPU 1)")
    b.add_argument("--sets", type=int, default=3, metavar="N", help="input sets rotated (default: %(default)s)")
    b.add_argument("--plot", metavar="FILE.png", help="plot the speed-up vs torch.matmul per shape, one bar per "
                   "configuration with --configs (needs matplotlib: hkjit[plot])")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .. import bench
    plot_error = None
    if args.plot and not bench.have_matplotlib():
        # one message, at the end beside the exit code: the table is still worth having (a device run may be rare)
        plot_error = ("--plot needs matplotlib, which is not installed: pip install 'hkjit[plot]' (or pip install "
                      "matplotlib); the table above was printed without the plot")
    shapes = [s for group in args.shapes for s in group] if args.shapes else None
    ctx, rows = bench.run(shapes, repeat=args.repeat, warmup=args.warmup, sets=args.sets,
                          say=say_unless(args.quiet), configs=config_names(args.configs))
    if args.plot and plot_error is None:
        bench.plot(ctx, rows, args.plot)
        err(f"hkjit bench: plot written to {args.plot}")
    if args.json:
        extra = {"plot": args.plot if args.plot and not plot_error else None}
        emit_json(bench.to_json(ctx, rows) | extra | ({"plot_error": plot_error} if plot_error else {}))
    else:
        print(bench.format_table(ctx, rows))
    if plot_error:
        err(f"hkjit: error: {plot_error}")
        return 2
    return 0
