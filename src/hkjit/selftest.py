"""`python -m hkjit selftest`: hkjit.gemm on this device against a float64 reference, over every edge case.

Each case draws fresh random bf16 inputs, poisons the output (``out=`` filled with NaN, so an element the kernel
never writes fails the check), runs ``hkjit.gemm`` with the dispatch forced to the kernel, and compares with the
float64 product of the same inputs: a pass is a finite result with relative Frobenius error <= 1e-2
(validation.REL_TOL). The default grid covers K = 64, 128, 192, 256 and 4160 (1, 2, 3, 4 and 65 K tiles of 64),
ragged M and N, B given as ``W.t()`` (the nn.Linear layout), non-contiguous and transposed A, a batched A and a
few tiny shapes. The outcome is recorded per (device, toolchain key) with validation.write_record, so
``hkjit.gemm`` skips its first-use check in later processes (and refuses the kernel after a failure).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

log = logging.getLogger("hkjit")

LAYOUTS = ("rows", "bt", "a-strided", "a-t", "batched")
LAYOUT_HELP = {
    "rows": "A (M,K) and B (K,N) contiguous (B is copied to the kernel's Bt layout once)",
    "bt": "B = W.t() of a contiguous (N,K) W: the nn.Linear layout, read with no copy",
    "a-strided": "A = X[:, :K] of a wider X (row stride K+3: unaligned rows)",
    "a-t": "A = Y.t() of a contiguous (K,M) Y (non-unit column stride: copied)",
    "batched": "A (2,M,K) @ B (K,N): leading dims flattened into M",
}


@dataclass(frozen=True)
class Case:
    m: int
    n: int
    k: int
    layout: str = "rows"

    @property
    def shape(self) -> str:
        return f"{'2x' if self.layout == 'batched' else ''}{self.m}x{self.n}x{self.k}"


CPU_GRID = (
    Case(1, 1, 1), Case(7, 5, 3), Case(33, 17, 65, "bt"),
    Case(64, 64, 64), Case(128, 96, 128, "bt"), Case(96, 80, 192), Case(256, 256, 256, "bt"),
    Case(64, 48, 4160, "bt"), Case(48, 40, 4160, "rows"),
    Case(257, 193, 256), Case(257, 193, 192, "bt"), Case(193, 257, 128, "a-strided"),
    Case(130, 70, 128, "a-t"), Case(33, 40, 64, "batched"),
)
GPU_GRID = (
    Case(1, 1, 1), Case(7, 5, 3), Case(33, 17, 65, "bt"),
    Case(256, 256, 64), Case(512, 512, 128, "bt"), Case(512, 256, 192), Case(1024, 1024, 256, "bt"),
    Case(1024, 768, 4160, "bt"), Case(512, 512, 4160, "rows"),
    Case(257, 193, 256), Case(1000, 1000, 192, "bt"), Case(4097, 2049, 256, "bt"),
    Case(2049, 1537, 192, "a-strided"), Case(1030, 770, 128, "a-t"), Case(300, 256, 320, "batched"),
)


def parse_shape(text: str) -> tuple[int, int, int]:
    """'MxNxK' -> (M, N, K)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        m, n, k = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"shape {text!r}: expected MxNxK with positive integers, e.g. 1024x1024x4160") from None
    if min(m, n, k) < 1:
        raise ValueError(f"shape {text!r}: sizes must be >= 1")
    return m, n, k


@dataclass
class CaseResult:
    shape: str
    m: int
    n: int
    k: int
    layout: str
    rel_err: float | None
    seconds: float
    passed: bool
    path: str = ""
    error: str = ""


def _device_for(arch: str | None) -> torch.device:
    from .errors import UnsupportedTargetError
    from .targets import detect_target, target_for_arch
    if arch is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    target_for_arch(arch)
    if arch == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UnsupportedTargetError(f"--arch {arch} needs a {arch} GPU and this machine has none (the kernel can "
                                     f"only be tested on its device; `--arch cpu` tests the reference kernel)")
    dev = torch.device("cuda", torch.cuda.current_device())
    have = detect_target(dev).arch
    if have != arch:
        raise UnsupportedTargetError(f"--arch {arch}: the current device is {have}; select a {arch} device "
                                     f"(CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES) or drop --arch")
    return dev


def load_with_progress(spec, say: Callable[[str], None]):
    """loader.load(spec), saying so first when it has to compile (about a minute)."""
    from .loader import load, load_cached
    loaded = load_cached(spec)
    if loaded is None:
        say(f"hkjit: {spec.name} for {spec.arch} is not cached: compiling it (about a minute; "
            f"`python -m hkjit warmup` does this ahead of time)...")
        loaded = load(spec)             # the builder logs "built ... in N s" when done
    return loaded


def _inputs(case: Case, device: torch.device, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    m, n, k = case.m, case.n, case.k

    def rnd(*shape):
        return torch.randn(*shape, generator=gen).to(torch.bfloat16).to(device)

    if case.layout == "bt":
        return rnd(m, k), rnd(n, k).t()
    if case.layout == "a-strided":
        return rnd(m, k + 3)[:, :k], rnd(k, n)
    if case.layout == "a-t":
        return rnd(k, m).t(), rnd(k, n)
    if case.layout == "batched":
        return rnd(2, m, k), rnd(k, n)
    return rnd(m, k), rnd(k, n)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(case: Case, device: torch.device, gen: torch.Generator) -> CaseResult:
    import hkjit
    from .policy import dispatch
    from .validation import REL_TOL, relative_error
    a, b = _inputs(case, device, gen)
    out = torch.full((*a.shape[:-1], b.shape[-1]), float("nan"), dtype=torch.bfloat16, device=device)
    res = CaseResult(case.shape, case.m, case.n, case.k, case.layout, None, 0.0, False)
    try:
        with dispatch("kernel"):
            res.path = hkjit.explain(a, b).path
            _sync(device)
            t0 = time.perf_counter()
            hkjit.gemm(a, b, out=out)
            _sync(device)
            res.seconds = time.perf_counter() - t0
    except Exception as e:  # a launch error on one shape is that shape's failure, not the run's
        res.error = f"{type(e).__name__}: {e}".splitlines()[0]
        return res
    ref = torch.matmul(a.double(), b.double())
    res.rel_err = relative_error(out, ref)
    res.passed = res.rel_err <= REL_TOL and res.path == "kernel"
    if res.path != "kernel":
        res.error = f"dispatched to {res.path}, not the kernel"
    return res


def _first_call(device: torch.device) -> None:
    """One untimed product, so that the first case's time is not the op layer's one-off setup (~1 s)."""
    import hkjit
    from .policy import dispatch
    try:
        with dispatch("kernel"):
            ones = torch.ones(2, 2, dtype=torch.bfloat16, device=device)
            hkjit.gemm(ones, ones, out=torch.empty_like(ones))       # the cases call it with out=, so warm that
        _sync(device)
    except Exception:
        pass  # a broken kernel fails the cases themselves, with their messages


class _Report:
    """What both selftest reports share: the JSON form (their fields, each case result as a dict: `--json`) and
    the counts their record's detail and the CLI's summary line both state."""
    results: list

    def to_json(self) -> dict:
        d = asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass
        d["results"] = [asdict(r) for r in self.results]
        return d

    @property
    def n_passed(self) -> int:
        return sum(r.passed for r in self.results)


@dataclass
class SelftestReport(_Report):
    device: str
    arch: str
    kernel: str
    key: str
    seed: int
    tolerance: float
    results: list[CaseResult]
    passed: bool
    record: str | None = None
    note: str = ""

    @property
    def worst(self) -> float:
        """The largest relative error of the cases that produced a result (0.0 when none did)."""
        return max((r.rel_err for r in self.results if r.rel_err is not None), default=0.0)


def selftest(cases: list[Case] | None = None, arch: str | None = None, kernel: str = "gemm_bf16",
             seed: int | None = None, record: bool = True, say: Callable[[str], None] | None = None,
             on_case: Callable[[int, int, CaseResult], None] | None = None) -> SelftestReport:
    """Run the grid (default: CPU_GRID or GPU_GRID) on the device of `arch` and record the outcome."""
    from . import validation
    from .cache.roots import cache_root
    from .specs import get_spec
    from .targets import detect_target
    say = say or log.info
    device = _device_for(arch)
    arch = detect_target(device).arch
    spec = get_spec(arch, kernel)
    loaded = load_with_progress(spec, say)
    label = validation.device_label(device)
    root = cache_root()
    previous = validation.read_record(root, arch, spec.name, loaded.key, label)
    # This run is the full check: skip hkjit.gemm's quick first-use check (and an earlier fail's refusal) here.
    validation.mark_checked(device, loaded.key)
    cases = list(cases) if cases else list(GPU_GRID if device.type == "cuda" else CPU_GRID)
    seed = int(time.time_ns() % (2 ** 31)) if seed is None else seed
    gen = torch.Generator(device="cpu").manual_seed(seed)
    _first_call(device)
    results = []
    for i, case in enumerate(cases):
        r = run_case(case, device, gen)
        results.append(r)
        if on_case:
            on_case(i, len(cases), r)
    passed = all(r.passed for r in results)
    report = SelftestReport(label, arch, spec.name, loaded.key, seed, validation.REL_TOL, results, passed)
    failed = [f"{r.shape} {r.layout}" for r in results if not r.passed]
    detail = (f"selftest: {report.n_passed}/{len(results)} shapes passed, worst relative error {report.worst:.2e}"
              + (f"; failed: {', '.join(failed[:6])}" if failed else "") + f" (seed {seed})")
    if record:
        if previous is not None and previous.get("passed") is False and passed:
            report.note = (f"an earlier check recorded a failure for this toolchain ({previous.get('detail')}); it "
                           f"stays rejected until `python -m hkjit cache clear --validation`")
        else:
            try:
                report.record = str(validation.write_record(root, arch, spec.name, loaded.key, label, passed, detail))
            except OSError as e:
                report.note = f"could not record the outcome in {root} ({e}): the cache is read-only"
    return report


# --------------------------------------------------------------------------------------------------- --emulate


@dataclass
class EmulatedResult:
    case: str
    seed: int
    workgroups: list
    worst: float
    hazards: int
    instructions: int
    seconds: float
    passed: bool
    error: str = ""


@dataclass
class EmulatedReport(_Report):
    kind: str                 # always "emulated": not a run on a device
    arch: str
    kernel: str
    source: str               # the module / entry / code object that was run
    key: str | None           # the cache entry's key, when the code object came from one
    input_seed: int
    results: list[EmulatedResult]
    passed: bool
    record: str | None = None
    note: str = ""


def _emulate_target(module: str | None):
    """(code object bytes, what it came from, (root, key) of the cache entry or None)."""
    from pathlib import Path
    from .cache.entry import verify_entry
    from .cache.layout import FORMAT_DIR, MANIFEST
    from .cache.roots import cache_root
    from .errors import CacheError, HkjitError
    from .gfx950.bundle import extract_code_object
    from .loader import find
    from .specs import get_spec
    if module is None:
        spec = get_spec("gfx950")
        try:
            found = find(spec)
        except HkjitError as e:
            raise type(e)(f"{e} (--emulate finds the cached gfx950 entry by its key, which needs the ROCm build "
                          f"toolchain; without it pass --module PATH: an entry folder, a .so or a code object)") \
                from None
        if found is None:
            raise CacheError(f"{spec.name} for gfx950 is not in the cache ({cache_root()}): build it first with "
                             f"`python -m hkjit warmup --arch gfx950`, or pass --module PATH")
        return (extract_code_object(found.path / found.manifest["module_file"]), str(found.path),
                (cache_root(), found.key))
    p = Path(module)
    if p.is_dir():
        if not (p / MANIFEST).is_file():
            raise CacheError(f"--module {p}: a folder, but not a cache entry (no {MANIFEST}); pass the entry folder "
                             f"(<root>/{FORMAT_DIR}/gfx950/gemm_bf16-<key>), its .so, or a code object")
        verdict = verify_entry(p, full=True)
        if not verdict.ok or verdict.manifest is None:
            raise CacheError(f"--module {p}: the cache entry is bad ({verdict.reason}): `python -m hkjit cache "
                             f"verify --fix`, then rebuild")
        key = p.name.rsplit("-", 1)[-1]
        return extract_code_object(p / verdict.manifest["module_file"]), str(p), (p.parents[2], key)
    if not p.is_file():
        raise CacheError(f"--module {p}: no such file or folder")
    return extract_code_object(p), str(p), None


def emulated_selftest(module: str | None = None, cases=None, seeds=None, input_seed: int | None = None,
                      record: bool = True, say: Callable[[str], None] | None = None,
                      on_case: Callable[[int, int, EmulatedResult], None] | None = None) -> EmulatedReport:
    """The gfx950 kernel's code object (from the cached entry, or `module`) on the emulator over a small grid.

    Needs no GPU and no ROCm runtime: a CI machine that pre-bakes the gfx950 entry checks the code object it ships.
    The outcome is recorded as an *emulated* validation record of the entry (validation.py), never as a device's."""
    from . import validation
    from .gfx950 import emulate_gemm
    say = say or log.info
    seeds = tuple(seeds) if seeds else emulate_gemm.SEEDS      # seed 1: lazy memory (emulate_gemm.LAZY_TIMING)
    elf, source, entry = _emulate_target(module)
    kernel = emulate_gemm.GemmKernel.from_code_object(elf)
    cases = list(cases) if cases else list(emulate_gemm.SELFTEST_CASES)
    say(f"hkjit: running the gfx950 code object of {source} on the emulator: {len(cases)} cases x "
        f"{len(seeds)} seeds (a second or two each)")
    input_seed = int(time.time_ns() % (2 ** 31)) if input_seed is None else input_seed
    total = len(cases) * len(seeds)
    results = []
    for i, case in enumerate(cases):
        for j, s in enumerate(seeds):
            o = emulate_gemm.run_case(kernel, case, s, (input_seed + 7919 * i + 104729 * j) % 2 ** 31)
            r = EmulatedResult(case.label, s, o.workgroups, o.worst, len(o.hazards), o.instructions, o.seconds,
                               o.passed, "" if o.passed else o.summary())
            results.append(r)
            if on_case:
                on_case(len(results) - 1, total, r)
    passed = all(r.passed for r in results)
    rep = EmulatedReport("emulated", "gfx950", "gemm_bf16", source, entry[1] if entry else None, input_seed,
                         results, passed)
    worst = max((r.worst for r in results), default=0.0)
    detail = (f"selftest --emulate: {rep.n_passed}/{len(results)} runs passed ({len(cases)} cases x {len(seeds)} "
              f"seeds), worst {worst:.2f} of the bound (input seed {input_seed})")
    if not record:
        return rep
    if entry is None:
        rep.note = "not recorded: --module names a file, not a cache entry (pass the entry folder to record)"
        return rep
    root, key = entry
    try:
        rep.record = str(validation.write_record(root, "gfx950", "gemm_bf16", key, validation.EMULATOR_LABEL, passed,
                                                 detail, kind="emulated"))
    except OSError as e:
        rep.note = f"could not record the outcome in {root} ({e}): the cache is read-only"
    return rep
