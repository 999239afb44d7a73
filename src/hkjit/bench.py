"""`python -m hkjit bench`: TFLOP/s and time of hkjit.gemm against torch.matmul, per shape.

Three functions per shape: hkjit.gemm with the kernel forced (the kernel's speed), hkjit.gemm as users call it
(the dispatch policy picks kernel or torch: what "hkjit is never slower than torch" is about), and torch.matmul.
Method: B is given as ``W.t()`` of a contiguous (N, K) weight (the nn.Linear layout, which the kernel reads with
no copy; torch.matmul gets the same view). Several input sets are allocated per shape and rotated between calls,
so that no call finds its operands in cache from the previous one. Each function is warmed up, then timed in
rounds that rotate the order of the functions, so that clock and thermal drift fall on all of them alike; the
median over all rounds is reported. FLOPs: 2*M*N*K.

Timers (``timer`` in the report):

* CPU: time.perf_counter around each call.
* GPU, default: calls issued back to back, as in a model's loop, each between two device events. A round starts
  after a synchronize, that is with an empty GPU queue, where the first calls would measure the host's launch
  latency rather than the GPU. So each round first puts the GPU ahead of the host (``torch.cuda._sleep`` for
  about 1 ms, QUEUE_LEAD_S): the events then time the GPU's work. A function whose host cost per call exceeds its
  GPU time uses that lead up within the round and from then on shows its host cost (that is real: such a call is
  host-bound in a loop too).
* GPU, ``graph=True`` (``--graph``): each function's calls on the ``sets`` input sets are captured once into a
  CUDA/HIP graph, and the replays are timed between device events (each sample: one replay's time / sets). No
  host work is timed at all: the kernel-alone comparison (how the standalone harnesses time kernels).

The library gathers and returns a BenchReport; hkjit.cli.bench formats it (table, JSON, plot).
"""
from __future__ import annotations

import contextlib
import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from .errors import UnsupportedTargetError
from .policy import dispatch

log = logging.getLogger("hkjit")

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


#: How far each timed round puts the GPU ahead of the host before its first timed call (seconds of GPU sleep).
QUEUE_LEAD_S = 1e-3
#: Sleep cycles used to measure the GPU's sleep clock once per device (a few ms at 1-2 GHz).
_CALIBRATION_CYCLES = 5_000_000
_cycles_per_second: dict[int, float] = {}


def _sleep_rate(device: torch.device) -> float:
    """Cycles per second of ``torch.cuda._sleep`` on `device`, measured once (its clock is the GPU's, whose rate
    torch does not report portably)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _cycles_per_second:
        torch.cuda._sleep(1000)                                  # the sleep kernel's first launch loads it
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(_CALIBRATION_CYCLES)
        end.record()
        end.synchronize()
        _cycles_per_second[index] = _CALIBRATION_CYCLES / max(start.elapsed_time(end) / 1e3, 1e-6)
    return _cycles_per_second[index]


def _queue_ahead(device: torch.device, fn: Callable[[int], object], sets: int) -> None:
    """Give the GPU about QUEUE_LEAD_S of work before the round's first timed call, so that its events time the
    GPU and not the launch latency of a call issued to an idle device (see the module docstring). A torch without
    the sleep kernel gets a few untimed calls of fn instead (a lead only where the GPU is the slower side)."""
    if hasattr(torch.cuda, "_sleep"):
        torch.cuda._sleep(int(_sleep_rate(device) * QUEUE_LEAD_S))
    else:
        for i in range(3):
            fn(i % sets)


def _time_calls(fn: Callable[[int], object], device: torch.device, repeat: int, sets: int,
                calls_per_sample: int = 1) -> list[float]:
    """Seconds of `repeat` calls of fn(i % sets), each divided by calls_per_sample (a graph replay of several
    calls). On a GPU the calls are issued back to back, each bracketed by device events, after the queue was put
    ahead of the host, and synchronized once at the end: host overhead counts only where it exceeds the GPU time
    (host-bound calls), as it would for a user."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeat)]
        _queue_ahead(device, fn, sets)
        for i, (start, end) in enumerate(events):
            start.record()
            fn(i % sets)
            end.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) / 1e3 / calls_per_sample for start, end in events]
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i % sets)
        samples.append((time.perf_counter() - t0) / calls_per_sample)
    return samples


def _capture(fn: Callable[[int], object], sets: int, device: torch.device) -> Callable[[int], object]:
    """fn's calls on input sets 0..sets-1 captured once into a CUDA/HIP graph; returns a call that replays them
    (for _time_calls, with calls_per_sample=sets). The caller has warmed fn up: hkjit validates a kernel and
    torch sets up cuBLAS on first use, neither of which may happen inside a capture."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(sets):
            fn(i)
    torch.cuda.synchronize(device)
    return lambda _i: graph.replay()


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
                    warmup: int, sets: int, rounds: int = 10, graph: bool = False) -> list[list[float]]:
    """Seconds of each timed call of each (dispatch mode, function), timed in `rounds` rounds of repeat/rounds calls
    each. The order rotates from round to round, so that no function always runs first (cool) or after the heaviest
    one (hot). The mode is set around a function's whole loop, not per call: entering ``hkjit.dispatch`` costs ~2 us,
    which a host-bound shape would otherwise charge to hkjit. A mode is a dispatch mode name, None, or a function
    returning a context manager (tune: the kernel forced in one configuration). graph: time CUDA/HIP graph replays
    of each function's `sets` calls, captured once under its mode (a GPU only; each sample is per call)."""
    def mode(m):
        return m() if callable(m) else dispatch(m) if m else contextlib.nullcontext()

    for m, fn in fns:
        with mode(m):
            for i in range(max(warmup, sets)):       # every input set is touched once before timing
                fn(i % sets)
    per_round = max(1, -(-repeat // rounds))
    calls_per_sample = 1
    if graph:
        replays = []
        for m, fn in fns:
            with mode(m):
                replays.append(_capture(fn, sets, device))
        fns = [(None, r) for r in replays]              # the mode was fixed at capture
        calls_per_sample = sets
        per_round = max(1, -(-per_round // sets))       # about as many calls as eager timing makes
    samples: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        for j in range(len(fns)):
            f = (j + r) % len(fns)
            with mode(fns[f][0]):
                samples[f].extend(_time_calls(fns[f][1], device, per_round, sets, calls_per_sample))
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
                seed: int = 0, configs: list[str] | None = None, graph: bool = False) -> BenchRow:
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
                              device, repeat, warmup, sets, graph=graph)
    t_hk, t_auto, t_th = (statistics.median(s) for s in samples[:3])
    t_cfg = {c: statistics.median(s) for c, s in zip(configs, samples[3:])}
    flop = 2.0 * m * n * k
    return BenchRow(m, n, k, t_hk * 1e3, t_th * 1e3, flop / t_hk / 1e12, flop / t_th / 1e12, t_th / t_hk, plan.path,
                    auto.path if auto.path != "torch" else f"torch ({auto.rule})", t_auto * 1e3, t_th / t_auto,
                    repeat, sets, max(spread(s) for s in samples), plan.config or "",
                    {c: t * 1e3 for c, t in t_cfg.items()}, {c: t_th / t for c, t in t_cfg.items()})


def default_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


@dataclass
class BenchReport:
    """What `bench` measured and how: the context of the timing (device, toolchain key, method, host) and a row
    per shape. Its JSON form (to_json) is the context, the rows as "results" and the trust warnings."""
    device: str
    arch: str
    kernel: str
    key: str
    torch: str
    timer: str              # how the calls were timed (module docstring): perf_counter, device events, graph replays
    repeat: int
    warmup: int
    sets: int
    threads: int | None     # torch's CPU threads (None on a GPU)
    cpus: int | None
    load: float | None      # the host's 1-minute load average when timing ended
    configs: list[str]      # --configs: the configurations timed beside the default path
    rows: list[BenchRow]

    @property
    def warnings(self) -> list[str]:
        return trust_warnings(self.rows, self.load, self.cpus)

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "rows"}
        return d | {"results": [asdict(r) | {"shape": r.shape} for r in self.rows], "warnings": self.warnings}


def timer_label(device: torch.device, graph: bool, sets: int) -> str:
    """How the calls are timed, as the report states it (`timer`; tune shares the eager timer)."""
    if device.type != "cuda":
        return "time.perf_counter"
    if graph:
        return f"graph replays of the {sets} input sets' calls (time per call), device events"
    return f"device events, the GPU put {QUEUE_LEAD_S * 1e3:g} ms ahead of the host before each round"


def run(shapes: list[tuple[int, int, int]] | None = None, repeat: int | None = None, warmup: int | None = None,
        sets: int = 3, say: Callable[[str], None] | None = None, configs: list[str] | None = None,
        graph: bool = False) -> BenchReport:
    """Benchmark every shape on the current device. configs: also time the kernel forced in each of these
    configurations (specs.CONFIGS names; ["all"]: every one of the arch's). graph: time graph replays (a GPU
    only; UnsupportedTargetError on the CPU). Progress goes to `say` (default: the "hkjit" logger, INFO)."""
    from .selftest import load_with_progress
    from .specs import config_spec, get_spec
    from .targets import detect_target
    from .validation import device_label
    say = say or log.info
    device = default_device()
    gpu = device.type == "cuda"
    if graph and not gpu:
        raise UnsupportedTargetError("--graph times CUDA/HIP graph replays and needs a GPU, and this machine has "
                                     "none; drop --graph (the CPU is timed with time.perf_counter)")
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
        rows.append(bench_shape(m, n, k, device, repeat, warmup, sets, seed=i, configs=configs, graph=graph))
    return BenchReport(device_label(device), arch, spec.name, loaded.key, torch.__version__,
                       timer_label(device, graph, sets), repeat, max(warmup, sets), sets,
                       torch.get_num_threads() if not gpu else None, os.cpu_count(), _load_average(), configs, rows)


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


def trust_warnings(rows: list[BenchRow], load: float | None, cpus: int | None) -> list[str]:
    """Why the table should not be trusted, if it should not: calls spread too far apart, or a loaded host. Part
    of the report's data (its JSON carries them), each sentence naming what to do about it."""
    out = []
    wide = [r for r in rows if r.spread > MAX_SPREAD]
    if wide:
        worst = max(wide, key=lambda r: r.spread)
        out.append(f"timed calls spread too far to trust the medians of {', '.join(r.shape for r in wide)} "
                   f"(up to {worst.spread:.0%} at {worst.shape}; trusted up to {MAX_SPREAD:.0%}): the machine was "
                   f"busy or unsteady; rerun on a quiet machine, or with more --repeat")
    if load is not None and cpus and load > cpus:
        out.append(f"the host's load average is {load:g} on {cpus} CPUs: other processes shared the CPU during "
                   f"timing")
    return out
