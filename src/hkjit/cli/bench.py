"""`hkjit bench`: TFLOP/s of hkjit.gemm vs torch.matmul per shape. hkjit.bench times and returns a BenchReport;
this module formats it: the table, the JSON document, and (--plot) the speed-up chart."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import config_names, emit_json, err, parents, say_unless, shapes_arg

if TYPE_CHECKING:       # hkjit.bench imports torch: only inside the command (`--help` stays instant)
    from ..bench import BenchReport


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", parents=parents(), help="TFLOP/s of hkjit.gemm vs torch.matmul",
                       description="Time hkjit.gemm with the kernel forced, hkjit.gemm as users call it (the dispatch "
                       "policy's path) and torch.matmul per shape: median of timed calls after warm-up, input sets "
                       "rotated, the three functions alternated in rounds. On a GPU: device events around each call, "
                       "each round started with the GPU put about 1 ms ahead of the host (so the events time the "
                       "GPU, not the launch latency of an idle device; a call whose host cost exceeds its GPU time "
                       "still shows it); --graph times graph replays instead (no host cost at all).")
    b.add_argument("--shapes", nargs="+", type=shapes_arg, metavar="MxNxK|llm", help="shapes, or a named set "
                   "(llm: issue #16's shapes and Llama-3 8B/70B projections, prefill and decode), space- or comma-"
                   "separated; default: 1024..8192 cubes and ragged/skinny shapes on a GPU, 128..512 on the CPU")
    b.add_argument("--configs", action="append", metavar="all|NAME,...", help="also time the kernel forced in each "
                   "of these configurations (all: every listed one of this arch's; a name may spell one by its "
                   "parameters, e.g. 128x96)")
    b.add_argument("--repeat", type=int, metavar="N", help="timed calls per function and shape (GPU 200, CPU 10)")
    b.add_argument("--warmup", type=int, metavar="N",
                   help="untimed calls first, at least one per input set (GPU 5, CPU 1)")
    b.add_argument("--sets", type=int, default=3, metavar="N", help="input sets rotated (default: %(default)s)")
    b.add_argument("--graph", action="store_true", help="GPU only: capture each function's calls on the input sets "
                   "once into a CUDA/HIP graph and time its replays (time per call): the kernels alone, without "
                   "the host's launch and dispatch cost")
    b.add_argument("--plot", metavar="FILE.png", help="plot the speed-up vs torch.matmul per shape, one point per "
                   "configuration with --configs (needs matplotlib: hkjit[plot])")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .. import bench
    plot_error = None
    if args.plot and not have_matplotlib():
        # one message, at the end beside the exit code: the table is still worth having (a device run may be rare)
        plot_error = ("--plot needs matplotlib, which is not installed: pip install 'hkjit[plot]' (or pip install "
                      "matplotlib); the table above was printed without the plot")
    shapes = [s for group in args.shapes for s in group] if args.shapes else None
    rep = bench.run(shapes, repeat=args.repeat, warmup=args.warmup, sets=args.sets, say=say_unless(args.quiet),
                    configs=config_names(args.configs), graph=args.graph)
    if args.plot and plot_error is None:
        plot(rep, args.plot)
        err(f"hkjit bench: plot written to {args.plot}")
    if args.json:
        extra = {"plot": args.plot if args.plot and not plot_error else None}
        emit_json(rep.to_json() | extra | ({"plot_error": plot_error} if plot_error else {}))
    else:
        print(format_table(rep))
    if plot_error:
        err(f"hkjit: error: {plot_error}")
        return 2
    return 0


def format_table(rep: BenchReport) -> str:
    from ..bench import MAX_SPREAD
    head = (f"hkjit bench: {rep.kernel} on {rep.device} ({rep.arch}), torch {rep.torch}; median of "
            f"{rep.repeat} timed calls each after {rep.warmup} warm-up calls, {rep.sets} input sets rotated, "
            f"the order of the three functions rotated per round, {rep.timer}"
            + (f", {rep.threads} threads" if rep.threads else ""))
    lines = [head,
             f"{'':<18} {'--- kernel (forced) ---':>21} {'--- torch.matmul ---':>21} {'':>8}  "
             "--- hkjit.gemm (default) ---",
             f"{'shape (MxNxK)':<18} {'ms':>10} {'TFLOP/s':>10} {'ms':>10} {'TFLOP/s':>10} {'speedup':>8}  "
             f"{'ms':>8} {'vs torch':>8}  {'spread':>6}  path"]
    for r in rep.rows:
        flag = "!" if r.spread > MAX_SPREAD else " "
        lines.append(f"{r.shape:<18} {r.hkjit_ms:>10.3f} {r.hkjit_tflops:>10.4g} {r.torch_ms:>10.3f} "
                     f"{r.torch_tflops:>10.4g} {r.speedup:>7.2f}x  {r.auto_ms:>8.3f} {r.auto_speedup:>7.2f}x  "
                     f"{r.spread:>5.0%}{flag}  {r.auto}" + (f" [{r.config}]" if r.config else ""))
    if rep.configs:
        lines.append("")
        lines.append("each configuration forced, speed-up vs torch.matmul (best marked *):")
        lines.append(f"{'shape (MxNxK)':<18} " + " ".join(f"{c:>14}" for c in rep.configs))
        for r in rep.rows:
            best = max(r.config_speedup, key=r.config_speedup.__getitem__) if r.config_speedup else None
            lines.append(f"{r.shape:<18} " + " ".join(
                f"{(f'{r.config_speedup[c]:.2f}x' + ('*' if c == best else ' ')) if c in r.config_speedup else '-':>14}"
                for c in rep.configs))
    lines.append("spread: (p90 - p10) / median of the timed calls, the worst of the functions timed; [config]: the "
                 "kernel configuration the forced-kernel column used")
    lines += [f"warning: {w}" for w in rep.warnings]
    return "\n".join(lines)


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(rep: BenchReport, path: str) -> None:
    """Speed-up over torch.matmul per shape, read at a glance: per shape one point per configuration (after
    --configs; else the forced kernel) and one for hkjit.gemm as users call it, on a log scale (0.5x and 2x equally
    far from parity) with a line at 1.0x."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    rows = rep.rows
    series: list[tuple[str, list[float | None]]] = (
        [(f"config {c}", [r.config_speedup.get(c) for r in rows]) for c in rep.configs] if rep.configs else
        [("kernel (forced)", [r.speedup for r in rows])])
    series.append(("hkjit.gemm (default path)", [r.auto_speedup for r in rows]))
    fig, ax = plt.subplots(figsize=(min(30.0, max(8.0, 0.28 * len(rows) + 2)), 5))
    spread = 0.5 / len(series)
    for j, (label, values) in enumerate(series):
        last = j == len(series) - 1
        xs = [i + (j - (len(series) - 1) / 2) * spread for i, v in enumerate(values) if v]
        ax.plot(xs, [v for v in values if v], "D" if last else "o", ms=7 if last else 5, label=label,
                mfc="none" if last else None, mew=1.5 if last else 1)
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}x"))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.shape for r in rows], rotation=70, ha="right", fontsize=7)
    ax.set_xlim(-0.7, len(rows) - 0.3)
    ax.set_ylabel("speed-up vs torch.matmul (> 1x: hkjit faster)")
    ax.set_title(f"bf16 GEMM on {rep.device} ({rep.arch}), torch {rep.torch}")
    ax.grid(True, axis="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
