"""`python -m hkjit tune`: time the candidate kernel configurations per shape on this device, ahead of time, and
record the winners in the cache (tuning.py says where, and how later calls use them).

The timing is bench.py's (the same function, not a second timer): rotated input sets, warm-up, calls timed one by
one in rounds that rotate the order of the candidates (device events on a GPU, time.perf_counter on the CPU), the
median per candidate. Each candidate is first checked against a float64 reference on that shape (relative error
at most validation.REL_TOL): a configuration that computes wrong results never wins. torch.matmul is timed in the
same rounds, for the speed-ups printed beside the winners (it is not a candidate: the policy decides that).
"""
from __future__ import annotations

import logging
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .errors import BuildError

log = logging.getLogger("hkjit")


@dataclass
class TuneRow:
    m: int
    n: int
    k: int
    winner: str                                      # "" when no candidate computed correct results
    ms: dict = field(default_factory=dict)           # config -> median ms (correct candidates only)
    errors: dict = field(default_factory=dict)       # config -> relative error vs float64 on this shape
    torch_ms: float = 0.0
    spread: float = 0.0

    @property
    def shape(self) -> str:
        return f"{self.m}x{self.n}x{self.k}"


@dataclass
class TuneReport:
    device: str
    arch: str
    candidates: list[str]
    rows: list[TuneRow]
    record: str = ""                                 # the tuning record written ("" when nothing was recorded)
    timer: str = ""
    repeat: int = 0
    builds: dict = field(default_factory=dict)       # config -> "hit" | "built" | "failed: <why>" (not a candidate)

    def to_json(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "rows"},
                "results": [asdict(r) | {"shape": r.shape} for r in self.rows]}


def _check(data, config: str) -> float:
    """Relative error (Frobenius, vs float64) of the forced configuration on the first input set."""
    import hkjit
    from .bench import forced
    from .validation import relative_error
    a, b = data[0]
    with forced(config)():
        c = hkjit.gemm(a, b)
    return relative_error(c, a.double() @ b.double())


def _build(arch: str, names: list[str], jobs: int, root: Path, say: Callable[[str], None]) -> dict[str, str]:
    """Build the candidates that are not cached, `jobs` at a time (warmup's pool: a spelled configuration is
    usually not built yet, and one nvcc build takes most of a minute); name -> "hit" | "built" | "failed: why"."""
    from .warmup import warmup
    missing = [c for c in names if not _cached(arch, c, root)]
    if missing:
        say(f"hkjit tune: building {len(missing)} configuration(s) not in the cache ({', '.join(missing)}), "
            f"{jobs} at a time ...")
    out = {c: "hit" for c in names}
    for r in warmup(arch=arch, kernel="gemm_bf16", config=missing, jobs=jobs, root=root) if missing else []:
        out[r.config] = r.status if r.status != "failed" else f"failed: {r.error}"
        if r.status == "failed":
            say(f"hkjit tune: {r.config} failed to build: not a candidate ({r.error.splitlines()[0][:300]})")
    return out


def _cached(arch: str, config: str, root: Path) -> bool:
    from .loader import load_cached
    from .specs import config_spec
    return load_cached(config_spec(arch, config), root) is not None


def tune(shapes: list[tuple[int, int, int]], configs: list[str] | None = None, repeat: int | None = None,
         warmup: int | None = None, sets: int = 3, record: bool = True, root: Path | None = None,
         say: Callable[[str], None] | None = None, jobs: int | None = None) -> TuneReport:
    """Time every candidate configuration (configs: names, ["all"] or None: all of this device's arch) on each
    shape and record the winners for this device and toolchain (record=False: only report). Candidates that are
    not cached are built first, `jobs` at a time (default: up to 8, one per CPU); one that fails to build is not a
    candidate (the report's `builds` says why). Raises CacheError before any timing when the record cannot be
    written, BuildError when no candidate builds."""
    from . import bench
    from .cache.roots import cache_root, ensure_writable
    from .selftest import load_with_progress
    from .specs import config_spec
    from .targets import detect_target
    from .tuning import write_winners
    from .warmup import check_jobs
    from .validation import REL_TOL, device_label
    say = say or log.info
    if not shapes:
        raise ValueError("tune: no shapes (give --shapes llm or MxNxK,...)")
    if any(min(s) == 0 for s in shapes):
        raise ValueError("tune: a shape with a zero size needs no kernel; drop it from --shapes")
    device = bench.default_device()
    arch = detect_target(device).arch
    label = device_label(device)
    root = root or cache_root()
    if record:
        ensure_writable(root)                       # fail before minutes of timing, not after
    asked = bench.config_names(arch, configs or ["all"])
    if jobs is not None:
        check_jobs(jobs, "tune")
    builds = _build(arch, asked, jobs or min(8, os.cpu_count() or 1), root, say)
    candidates = [c for c in asked if not builds[c].startswith("failed")]
    if not candidates:
        raise BuildError("tune: no candidate configuration could be built: " + "; ".join(
            f"{c}: {builds[c].removeprefix('failed: ').splitlines()[0][:300]}" for c in asked))
    for c in candidates:
        load_with_progress(config_spec(arch, c), say)
    gpu = device.type == "cuda"
    repeat = repeat or (200 if gpu else 10)
    warmup = warmup if warmup is not None else (5 if gpu else 1)
    rows = []
    for i, (m, n, k) in enumerate(shapes):
        say(f"tune [{i + 1}/{len(shapes)}] {m}x{n}x{k}: {len(candidates)} configurations ...")
        data = bench.inputs(m, n, k, device, max(1, sets), seed=i)
        errors = {c: _check(data, c) for c in candidates}
        good = [c for c in candidates if errors[c] <= REL_TOL]
        for c in candidates:
            if c not in good:
                say(f"hkjit tune: {c} computes {m}x{n}x{k} wrong (relative error {errors[c]:.2e} > {REL_TOL}): "
                    f"not a candidate")
        import hkjit
        samples = bench._median_seconds([(bench.forced(c), lambda j: hkjit.gemm(*data[j])) for c in good]
                                        + [(None, lambda j: torch.matmul(*data[j]))], device, repeat, warmup,
                                        max(1, sets))
        ms = {c: statistics.median(s) * 1e3 for c, s in zip(good, samples)}
        winner = min(ms, key=ms.__getitem__) if ms else ""
        rows.append(TuneRow(m, n, k, winner, ms, errors, statistics.median(samples[-1]) * 1e3,
                            max(bench.spread(s) for s in samples)))
    report = TuneReport(label, arch, candidates, rows, timer=bench.timer_label(device, False, max(1, sets)),
                        repeat=repeat, builds=builds)
    winners = {r.shape: {"config": r.winner, "ms": r.ms, "torch_ms": r.torch_ms} for r in rows if r.winner}
    if record and winners:
        report.record = str(write_winners(arch, label, winners, root))
    return report
