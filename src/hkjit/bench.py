"""`python -m hkjit bench`: TFLOP/s and time of hkjit.gemm against torch.matmul, per shape.

Three functions per shape: hkjit.gemm with the kernel forced (the kernel's speed), hkjit.gemm as users call it
(the dispatch policy picks kernel or torch: what "hkjit is never slower than torch" is about), and torch.matmul.
Method: B is given as ``W.t()`` of a contiguous (N, K) weight (the nn.Linear layout, which the kernel reads with
no copy; torch.matmul gets the same view). Several input sets are allocated per shape and rotated between calls,
so that no call finds its operands in cache from the previous one. Each function is warmed up, then timed call by
call (CUDA/HIP events on a GPU, time.perf_counter on the CPU) in rounds that rotate the order of the three functions,
so that clock and thermal drift fall on all of them alike; the median over all rounds is reported. FLOPs: 2*M*N*K.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from .policy import dispatch

GPU_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (6144, 6144, 6144), (8192, 8192, 4096),
              (8192, 8192, 8192), (4096, 4096, 4160), (4097, 4095, 4096), (8192, 1024, 8192), (16384, 8192, 1024),
              (16384, 8192, 2048), (256, 8192, 8192))
CPU_SHAPES = ((128, 128, 128), (256, 256, 256), (384, 384, 384), (512, 512, 512), (257, 193, 320))


@dataclass
class BenchRow:
    m: int
    n: int
    k: int
    hkjit_ms: float
    torch_ms: float
    hkjit_tflops: float
    torch_tflops: float
    speedup: float          # torch time / kernel time (> 1: the kernel is faster)
    path: str               # what hkjit.gemm ran with the kernel forced ("kernel"; "empty" for zero sizes)
    auto: str               # what hkjit.gemm does by default (policy.py): "kernel" or "torch (<rule>)"
    auto_ms: float          # hkjit.gemm as users call it
    auto_speedup: float     # torch time / default-path time (>= 1 within noise: never slower than torch)
    repeat: int
    sets: int
    spread: float = 0.0     # worst of the three functions' (p90 - p10) / median of the timed calls (spread())
    config: str = ""        # the kernel configuration the forced-kernel call used (tuned or table-selected)
    config_ms: dict = field(default_factory=dict)        # --configs: each configuration, forced: median ms
    config_speedup: dict = field(default_factory=dict)   # --configs: torch time / that configuration's time

    @property
    def shape(self) -> str:
        return f"{self.m}x{self.n}x{self.k}"


def _time_calls(fn: Callable[[int], object], device: torch.device, repeat: int, sets: int) -> list[float]:
    """Seconds of `repeat` calls. On a GPU the calls are issued back to back, as in a model's loop, each
    bracketed by device events and synchronized once at the end (the method of triton's do_bench): host overhead
    counts only where it exceeds the GPU time (small, host-bound shapes), as it would for a user."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeat)]
        for i, (start, end) in enumerate(events):
            start.record()
            fn(i % sets)
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) / 1e3 for start, end in events]
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i % sets)
        samples.append(time.perf_counter() - t0)
    return samples


#: A spread above this ((p90 - p10) / median of one function's timed calls) makes the median untrustworthy: the
#: calls were disturbed (a busy host, frequency changes), and bench says so instead of printing the ratio as fact.
MAX_SPREAD = 0.5


def spread(samples: list[float]) -> float:
    """(p90 - p10) / median: how far apart the timed calls of one function are, relative to the reported median.
    A quiet machine gives a few percent on a GPU and ~10-30% on a CPU; a loaded host gives several hundred."""
    if len(samples) < 2:
        return 0.0
    q = statistics.quantiles(samples, n=10, method="inclusive")
    med = statistics.median(samples)
    return (q[-1] - q[0]) / med if med > 0 else 0.0


def _median_seconds(fns: list[tuple[object, Callable[[int], object]]], device: torch.device, repeat: int,
                    warmup: int, sets: int, rounds: int = 10) -> list[list[float]]:
    """Seconds of each timed call of each (dispatch mode, function), timed in `rounds` rounds of repeat/rounds calls
    each. The order rotates from round to round, so that no function always runs first (cool) or after the heaviest
    one (hot). The mode is set around a function's whole loop, not per call: entering ``hkjit.dispatch`` costs ~2 us,
    which a host-bound shape would otherwise charge to hkjit. A mode is a dispatch mode name, None, or a function
    returning a context manager (tune: the kernel forced in one configuration)."""
    def mode(m):
        return m() if callable(m) else dispatch(m) if m else contextlib.nullcontext()

    for m, fn in fns:
        with mode(m):
            for i in range(max(warmup, sets)):       # every input set is touched once before timing
                fn(i % sets)
    per_round = max(1, -(-repeat // rounds))
    samples: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        for j in range(len(fns)):
            f = (j + r) % len(fns)
            with mode(fns[f][0]):
                samples[f].extend(_time_calls(fns[f][1], device, per_round, sets))
    return samples


def inputs(m: int, n: int, k: int, device: torch.device, sets: int, seed: int = 0
           ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`sets` fresh (A, B) pairs, B as ``W.t()`` of a contiguous (N, K) weight (the nn.Linear layout)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return [(torch.randn(m, k, generator=gen).to(torch.bfloat16).to(device),
             torch.randn(n, k, generator=gen).to(torch.bfloat16).to(device).t()) for _ in range(sets)]


def forced(config: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A _median_seconds mode: the kernel forced, in configuration `config`."""
    from .tuning import force_config

    @contextlib.contextmanager
    def both():
        with dispatch("kernel"), force_config(config):
            yield
    return both


def bench_shape(m: int, n: int, k: int, device: torch.device, repeat: int, warmup: int, sets: int,
                seed: int = 0, configs: list[str] | None = None) -> BenchRow:
    import hkjit
    data = inputs(m, n, k, device, sets, seed)
    auto = hkjit.explain(*data[0])
    with dispatch("kernel"):
        plan = hkjit.explain(*data[0])
    configs = list(configs or []) if plan.path == "kernel" else []

    # hkjit.gemm with the kernel forced, hkjit.gemm under the policy ("auto", whatever HKJIT_DISPATCH says), torch,
    # then (--configs) the kernel forced in each configuration
    samples = _median_seconds([("kernel", lambda i: hkjit.gemm(*data[i])),
                               ("auto", lambda i: hkjit.gemm(*data[i])),
                               (None, lambda i: torch.matmul(*data[i]))]
                              + [(forced(c), lambda i: hkjit.gemm(*data[i])) for c in configs],
                              device, repeat, warmup, sets)
    t_hk, t_auto, t_th = (statistics.median(s) for s in samples[:3])
    t_cfg = {c: statistics.median(s) for c, s in zip(configs, samples[3:])}
    flop = 2.0 * m * n * k
    return BenchRow(m, n, k, t_hk * 1e3, t_th * 1e3, flop / t_hk / 1e12, flop / t_th / 1e12, t_th / t_hk, plan.path,
                    auto.path if auto.path != "torch" else f"torch ({auto.rule})", t_auto * 1e3, t_th / t_auto,
                    repeat, sets, max(spread(s) for s in samples), plan.config or "",
                    {c: t * 1e3 for c, t in t_cfg.items()}, {c: t_th / t for c, t in t_cfg.items()})


def default_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def run(shapes: list[tuple[int, int, int]] | None = None, repeat: int | None = None, warmup: int | None = None,
        sets: int = 3, say: Callable[[str], None] | None = None, configs: list[str] | None = None
        ) -> tuple[dict, list[BenchRow]]:
    """Benchmark every shape on the current device; returns (context, rows). configs: also time the kernel forced
    in each of these configurations (specs.CONFIGS names; ["all"]: every one of the arch's)."""
    from .selftest import load_with_progress
    from .specs import config_spec, get_spec
    from .targets import detect_target
    from .validation import device_label
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    device = default_device()
    gpu = device.type == "cuda"
    arch = detect_target(device).arch
    spec = get_spec(arch)
    loaded = load_with_progress(spec, say)
    configs = config_names(arch, configs)
    for c in configs:                             # built (or found) before any timing
        load_with_progress(config_spec(arch, c), say)
    shapes = list(shapes) if shapes else list(GPU_SHAPES if gpu else CPU_SHAPES)
    repeat = repeat or (200 if gpu else 10)   # 200 GPU calls: ~1 s for the largest shape, a stable median
    warmup = warmup if warmup is not None else (5 if gpu else 1)
    sets = max(1, sets)
    rows = []
    for i, (m, n, k) in enumerate(shapes):
        say(f"bench [{i + 1}/{len(shapes)}] {m}x{n}x{k} ...")
        rows.append(bench_shape(m, n, k, device, repeat, warmup, sets, seed=i, configs=configs))
    ctx = {"device": device_label(device), "arch": arch, "kernel": spec.name, "key": loaded.key,
           "torch": torch.__version__, "timer": "device events" if gpu else "time.perf_counter",
           "repeat": repeat, "warmup": max(warmup, sets), "sets": sets,
           "threads": torch.get_num_threads() if not gpu else None,
           "cpus": os.cpu_count(), "load": _load_average(), "configs": configs}
    return ctx, rows


def config_names(arch: str, names: list[str] | None) -> list[str]:
    """Configuration names for --configs (none given: none; ["all"]: every configuration of arch)."""
    from .specs import resolve_configs
    return resolve_configs(arch, names) if names else []


def _load_average() -> float | None:
    """The host's 1-minute load average (None where the OS has none): a busy host disturbs every timing."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def trust_warnings(ctx: dict, rows: list[BenchRow]) -> list[str]:
    """Why the table should not be trusted, if it should not: calls spread too far apart, or a loaded host."""
    out = []
    wide = [r for r in rows if r.spread > MAX_SPREAD]
    if wide:
        worst = max(wide, key=lambda r: r.spread)
        out.append(f"timed calls spread too far to trust the medians of {', '.join(r.shape for r in wide)} "
                   f"(up to {worst.spread:.0%} at {worst.shape}; trusted up to {MAX_SPREAD:.0%}): the machine was "
                   f"busy or unsteady; rerun on a quiet machine, or with more --repeat")
    load, cpus = ctx.get("load"), ctx.get("cpus")
    if load is not None and cpus and load > cpus:
        out.append(f"the host's load average is {load:g} on {cpus} CPUs: other processes shared the CPU during "
                   f"timing")
    return out


def to_json(ctx: dict, rows: list[BenchRow]) -> dict:
    return {**ctx, "results": [asdict(r) | {"shape": r.shape} for r in rows], "warnings": trust_warnings(ctx, rows)}


def format_table(ctx: dict, rows: list[BenchRow]) -> str:
    head = (f"hkjit bench: {ctx['kernel']} on {ctx['device']} ({ctx['arch']}), torch {ctx['torch']}; median of "
            f"{ctx['repeat']} timed calls each after {ctx['warmup']} warm-up calls, {ctx['sets']} input sets rotated, "
            f"the order of the three functions rotated per round, {ctx['timer']}"
            + (f", {ctx['threads']} threads" if ctx.get("threads") else ""))
    lines = [head,
             f"{'':<18} {'--- kernel (forced) ---':>21} {'--- torch.matmul ---':>21} {'':>8}  "
             "--- hkjit.gemm (default) ---",
             f"{'shape (MxNxK)':<18} {'ms':>10} {'TFLOP/s':>10} {'ms':>10} {'TFLOP/s':>10} {'speedup':>8}  "
             f"{'ms':>8} {'vs torch':>8}  {'spread':>6}  path"]
    for r in rows:
        flag = "!" if r.spread > MAX_SPREAD else " "
        lines.append(f"{r.shape:<18} {r.hkjit_ms:>10.3f} {r.hkjit_tflops:>10.4g} {r.torch_ms:>10.3f} "
                     f"{r.torch_tflops:>10.4g} {r.speedup:>7.2f}x  {r.auto_ms:>8.3f} {r.auto_speedup:>7.2f}x  "
                     f"{r.spread:>5.0%}{flag}  {r.auto}" + (f" [{r.config}]" if r.config else ""))
    configs = ctx.get("configs") or []
    if configs:
        lines.append("")
        lines.append("each configuration forced, speed-up vs torch.matmul (best marked *):")
        lines.append(f"{'shape (MxNxK)':<18} " + " ".join(f"{c:>14}" for c in configs))
        for r in rows:
            best = max(r.config_speedup, key=r.config_speedup.get) if r.config_speedup else None
            lines.append(f"{r.shape:<18} " + " ".join(
                f"{(f'{r.config_speedup[c]:.2f}x' + ('*' if c == best else ' ')) if c in r.config_speedup else '-':>14}"
                for c in configs))
    lines.append("spread: (p90 - p10) / median of the timed calls, the worst of the functions timed; [config]: the "
                 "kernel configuration the forced-kernel column used")
    lines += [f"warning: {w}" for w in trust_warnings(ctx, rows)]
    return "\n".join(lines)


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(ctx: dict, rows: list[BenchRow], path: str) -> None:
    """Speed-up over torch.matmul per shape, read at a glance: per shape one point per configuration (after
    --configs; else the forced kernel) and one for hkjit.gemm as users call it, on a log scale (0.5x and 2x equally
    far from parity) with a line at 1.0x."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    configs = ctx.get("configs") or []
    series = ([(f"config {c}", [r.config_speedup.get(c) for r in rows]) for c in configs] if configs else
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
    ax.set_title(f"bf16 GEMM on {ctx['device']} ({ctx['arch']}), torch {ctx['torch']}")
    ax.grid(True, axis="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
