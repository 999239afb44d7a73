"""The dispatch policy: when hkjit.gemm runs its kernel and when it hands the product to torch.matmul.

The policy is a table (data): per arch, rules tried in order, the first whose metric is below its bound sends
the call where it says; no rule matched means the kernel. The bounds are where the kernel is expected to win
(measured on the H100 for sm_90a; from HipKittens' published MI355X numbers for gfx950). ``HKJIT_DISPATCH``
(auto|kernel|torch, read once per process) or ``with hkjit.dispatch("torch"):`` override it; the context manager
wins over the variable.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

from .records import Record
from .config import env_choice
from .specs import get_spec, round_up

MODES = ("auto", "kernel", "torch")
_INF = float("inf")


class Rule(Record):
    __slots__ = ("name", "metric", "below", "path", "why", "also")
    _defaults = {"also": ()}
    name: str
    metric: str      # "mnk" (M*N*K), "m", "n", "k", "fill" (useful fraction of the block tiles' area), or
                     # "aligned" (1 when N and K are multiples of 8, i.e. BLAS libraries get 16-byte rows, else 0)
    below: float     # the rule applies when metric < below
    path: str        # "torch" or "kernel"
    why: str
    also: tuple[tuple[str, float, float], ...]  # and lo <= metric < hi for each (metric, lo, hi)


class ArchPolicy(Record):
    __slots__ = ("rules", "default_reason")
    rules: tuple[Rule, ...]
    default_reason: str


POLICY: dict[str, ArchPolicy] = {
    # The CPU kernel is hkjit's portable reference: it runs every non-empty product so that the whole path is
    # exercised wherever hkjit is installed. For CPU speed, HKJIT_DISPATCH=torch.
    "cpu": ArchPolicy((), "the CPU runs hkjit's reference kernel (for speed on CPU set HKJIT_DISPATCH=torch)"),
    # Measured on an H200 against cuBLAS, every configuration on the LLM set (tools/sm90a_standalone,
    # CUDA-graph timing, candidates shuffled every round, 2026-12-01; NOTES.md has the tables), the configuration
    # being SELECTION's pick. The kernel wins where cuBLAS leaves its fast path (N or K not a multiple of 8: 5.7-5.9x),
    # on deep square products with N = 8192 (128x192 tiles: 8192^3 1.03x, 8192x8192x28672 1.025x, 16384x8192x28672
    # 1.045x), on M = 64..128 decode products with a deep K (split-K: 1.03-1.06x) and at M = 64, N = 8192 (64x64
    # split-K, 2026-12-02: 1.01-1.04x), on M = 97..128 with N >= 16384 and
    # M = 129..256 with N around 28672 (128x224 tiles, 2026-12-01 sixth session: 1.03-1.09x), and on two M = 16
    # decode classes with the swapped configurations (N = 10240..16383 or K >= 20000: 1.04-1.07x through hkjit
    # bench, 1.01-1.08x in five graph runs). Everywhere else it is at parity within run-to-run
    # noise (prefill at K = 4096: 0.96-1.01x; the other M = 16 decode shapes 0.92-1.03x) or behind (K % 64 != 0:
    # 0.77-0.84x repacked; mid-size: 0.87-0.95x). Parity goes to cuBLAS: a win must be measured, so the last rule
    # sends the rest to torch.
    "sm_90a": ArchPolicy((
        Rule("decode-16-wide", "m", 17, "kernel", "M = 9..16, N = 10240..16383, K >= 8192 (16x128-swap): "
             "1.05 / 1.07x through hkjit bench (16x10240x8192, two sessions), 1.05-1.08x in five CUDA-graph runs; "
             "M <= 8 not measured", also=(("m", 9, 17), ("n", 10240, 16384), ("k", 8192, _INF))),
        Rule("decode-16-deep", "m", 17, "kernel", "M = 9..16, N < 10240, K >= 20000 (16x64-swap): 1.04x through "
             "hkjit bench (16x8192x28672), 1.01-1.06x in five CUDA-graph runs; M <= 8 not measured",
             also=(("m", 9, 17), ("n", 0, 10240), ("k", 20000, _INF))),
        Rule("decode-wide", "m", 129, "kernel", "M = 97..128 with N >= 16384 (128x224 / 128x256 tiles): 1.04-1.09x "
             "(128x28672x4096, 128x28672x8192 through hkjit bench, three runs; 128x256 1.02-1.04x before); M = 64 is "
             "0.98-1.00x: torch", also=(("m", 97, 129), ("n", 16384, _INF))),
        Rule("decode-wide-256", "m", 257, "kernel", "M = 129..256 with N = 26880..29568, where 128x224 tiles fill "
             ">= 90% of two waves: 1.03-1.05x (256x28672x4096, 256x28672x8192 through hkjit bench, three runs; "
             "128x256 0.97-0.98x); other N at M > 128 not measured: torch",
             also=(("m", 129, 257), ("n", 26880, 29569))),
        Rule("decode-deep", "m", 129, "kernel", "M = 64..128 with K >= 20000 (split-K): 1.04-1.08x "
             "(64x8192x28672, 128x8192x28672; at K = 14336 with the reduction kernel's second launch 0.55-0.78x timed "
             "call by call, summed in one launch since 2026-12-02: 64x4096x14336 1.00-1.02x, 128x4096x14336 0.98x)",
             also=(("m", 64, 129), ("k", 20000, _INF))),
        Rule("decode-64-8k", "m", 65, "kernel", "M = 64, N = 7681..8448, K >= 8192 (64x64-splitk: one wave of "
             "121..132 tiles, K not split): 1.04 / 1.04 / 1.01x (64x8192x8192 through hkjit bench, H200 runs 34-36; "
             "64x80-pingpong 1.01 / 1.02 / 0.99x); M < 64 not measured", also=(("m", 64, 65), ("n", 7681, 8449),
                                                                       ("k", 8192, _INF))),
        Rule("tiny", "mnk", 2 ** 32, "torch", "under 2^32 multiply-adds the launch costs more than the product "
             "(512^3: 0.62x, 1024^3: 0.87x at best; the decode shapes below it 0.78-0.98x with their selected "
             "configuration through hkjit bench, e.g. 64x4096x4096 0.78-0.84x, 16x4096x4096 0.97-0.98x, H200 "
             "2026-12-01): cuBLAS wins"),
        Rule("unaligned", "aligned", 1, "kernel", "N or K is not a multiple of 8: cuBLAS leaves its fast paths "
             "(4097x4095x4096: 5.9x on the H200), hkjit pads the row strides and keeps TMA"),
        Rule("deep-square", "n", 10240, "kernel", "M >= 8192, N = 8192..10239, K >= 8192 (128x192 tiles): "
             "1.025-1.045x", also=(("m", 8192, _INF), ("n", 8192, 10240), ("k", 8192, _INF))),
        Rule("parity", "mnk", _INF, "torch", "no measured win for this shape class (prefill at K = 4096: "
             "0.96-1.01x, the other M = 16 decode shapes 0.92-1.03x swapped, decode M = 64..256 at N <= 10240 and "
             "K <= 14336 0.91-1.06x (one shape above 1.02x: 256x4096x4096, 0.96-1.06x over four runs), K % 64 != 0 "
             "0.77-0.88x): cuBLAS kept"),
    ), "the kernel (unreachable: the last rule routes every shape without a measured win to torch)"),
    # Not measured (no MI350X available to us): conservative bounds in the same shape as the H100's, scaled to
    # the 256x256 block; `python -m hkjit bench` on an MI350X tells where to move them.
    "gfx950": ArchPolicy((
        Rule("tiny", "mnk", 2048 ** 3, "torch", "under 2048^3 there are too few 256x256 blocks to fill 256 CUs"),
        Rule("skinny-m", "m", 1024, "torch", "M < 1024: too few row blocks, hipBLASLt wins"),
        Rule("skinny-n", "n", 1024, "torch", "N < 1024: too few column blocks, hipBLASLt wins"),
        Rule("shallow-k", "k", 512, "torch", "K < 512: under 16 K tiles, the pipeline never reaches steady state"),
        Rule("ragged", "fill", 0.97, "torch", "over 3% of the 256x256 blocks' area is padding"),
    ), "large enough and block-aligned for the kernel (bounds not yet measured on MI350X)"),
}

class ConfigRule(Record):
    __slots__ = ("name", "metric", "below", "config", "why", "also")
    _defaults = {"also": ()}
    name: str
    metric: str      # "m", "n", "k", "mnk", "waves" (tiles of the default configuration per SM/CU: < 1 leaves
                     # units idle), "wave_fill" (how full the waves of the default tiles are: tiles / (units *
                     # ceil(waves)); 1.0 = every wave full) or "aligned" (1 when N and K are multiples of 8)
    below: float     # the rule applies when metric < below
    config: str      # the configuration (specs.CONFIGS) it picks
    why: str
    also: tuple[tuple[str, float, float], ...]  # and lo <= metric < hi for each (metric, lo, hi);
                     # metrics as above plus "pitch" (1 when K % 64 == 0: 128-byte rows of A and Bt)


class ArchSelection(Record):
    __slots__ = ("rules", "default_reason")
    rules: tuple[ConfigRule, ...]
    default_reason: str


#: Compute units the tile counts are measured against (H100/H200 SXM: 132 SMs; MI350X: 256 CUs).
UNITS: dict[str, int] = {"cpu": 1, "sm_90a": 132, "gfx950": 256}

#: Which configuration a kernel call uses, per arch: rules tried in order on the product's shape, the first whose
#: metric is below its bound names the configuration; none matched means the arch's default (specs.CONFIGS, the
#: first). A tuning record for the exact shape (`python -m hkjit tune`, tuning.py) wins over this table. Every
#: configuration named here is built by `warmup` (so the CPU table stays empty: one CPU build in CI).
SELECTION: dict[str, ArchSelection] = {
    "cpu": ArchSelection((), "one configuration is built by default on the CPU (tune records pick others)"),
    "gfx950": ArchSelection((), "the 256x256 kernel is gfx950's only configuration"),
    # From the H200 tables of every configuration (tools/sm90a_standalone/NOTES.md, 2026-12-01): the best
    # configuration per shape class; `python -m hkjit tune` records the exact best per shape on the machine.
    "sm_90a": ArchSelection((
        # Re-seeded 2026-12-01 from H200 runs 6-8 (NOTES.md: ping-pong, 2-CTA clusters): "a / b" = the speed-ups
        # over cuBLAS in runs 6 and 7 (both timed every non-cluster configuration), a single figure = one run.
        # H200 run 13 (NOTES.md, the swapped small-M kernel; one run): M <= 16 takes the swapped tiles
        ConfigRule("decode-16-swap", "m", 17, "16x64-swap", "M <= 16, N < 10240: swapped 64-row Bt tiles, K split "
                   "over CTA pairs (16x6144x4096 0.96x, 16x4096x4096 1.04x, 16x8192x8192 0.96x, 16x8192x28672 "
                   "1.04x; 64x128-splitk 0.83 / 0.96 / 0.86 / 1.00x)", also=(("n", 0, 10240),)),
        ConfigRule("decode-16-swap-wide", "m", 17, "16x128-swap", "M <= 16, N = 10240..16383: swapped 128-row Bt "
                   "tiles, K split over CTA pairs (16x10240x8192 1.08x; 64x256-splitk 1.01x)",
                   also=(("n", 10240, 16384),)),
        ConfigRule("decode-16", "m", 33, "64x128-splitk", "M <= 32, N < 8192: 64x128 tiles, K split (0.83-0.96x)",
                   also=(("n", 0, 8192),)),
        ConfigRule("decode-widest", "m", 65, "64x256-pingpong", "M <= 64, N >= 16384: one 64x256 tile per SM, no "
                   "split (16x28672x4096 0.93 / 1.05x, 64x28672x8192 1.00 / 1.08x; 64x256-splitk 0.82 / 0.90x, "
                   "0.99 / 1.07x)", also=(("n", 16384, _INF),)),
        ConfigRule("decode-16-wide", "m", 33, "64x256-splitk", "M <= 32, N = 8192..16383: 64x256 tiles, K split "
                   "(0.88-0.99x)"),
        ConfigRule("decode-64", "m", 65, "64x64-splitk", "M = 33..64, N < 5000: 64x64 tiles, K split (0.85-1.02x)",
                   also=(("n", 0, 5000),)),
        # H200 runs 34-35 (NOTES.md, seventh session: split-K summed in one launch), through hkjit bench
        ConfigRule("decode-64-8k", "m", 65, "64x64-splitk", "M = 33..64, N = 7681..8448 (ceil(N / 64) = 121..132 "
                   "tiles, one wave >= 92% full; 64x80 tiles fill 73-80%): 64x64 tiles (64x8192x8192 1.04 / 1.04x, "
                   "64x8192x28672 1.08 / 1.09x; 64x80-pingpong 1.01 / 1.02x, 1.06 / 1.06x)", also=(("n", 7681, 8449),)),
        # H200 run 25 (NOTES.md, sixth session: tile widths off the 64-column grid; one run, "new / old pick")
        ConfigRule("decode-64-wide", "m", 65, "64x80-pingpong", "M = 33..64, N = 5000..10560 (ceil(N / 80) <= 132 "
                   "tiles, one wave): 64x80 ping-pong (64x6144x4096 0.93 / 0.89x, 64x10240x8192 0.93 / 0.88x, "
                   "64x8192x8192 1.00 / 0.99x against 64x128-pingpong)", also=(("n", 0, 10561),)),
        ConfigRule("decode-64-wider", "m", 65, "64x128-pingpong", "M = 33..64, N = 10561..16383: 64x128 ping-pong "
                   "(64x80 tiles would make more than one wave; not measured at these N)"),
        # 128x224 where its tiles fill the waves better than 128x256's: ceil(N / 224) <= 132 a row block (N <= 29568),
        # and at two row blocks N > 16896 (at N = 16384 128x256 makes 128 tiles, one full wave; 128x224 148)
        ConfigRule("decode-wide", "m", 129, "128x224", "M = 65..128, N = 16384..29568: 128x224 tiles, 128 at "
                   "N = 28672 (128x28672x8192 1.06 / 1.05x, 128x28672x4096 1.04 / 1.04x against 128x256)",
                   also=(("n", 16384, 29569),)),
        ConfigRule("decode-wide-256", "m", 257, "128x224", "M = 129..256, N = 16897..29568: 128x224 tiles, 256 at "
                   "N = 28672 (256x28672x8192 1.10 / 0.98x, 256x28672x4096 1.07 / 0.97x against 128x256)",
                   also=(("m", 129, 257), ("n", 16897, 29569))),
        ConfigRule("decode-wider", "m", 257, "128x256", "M = 65..256 with the other N >= 16384: 128x256 tiles (whole "
                   "waves at N = 16384 with 256 rows; past N = 29568 128x224 makes a wave more)",
                   also=(("n", 16384, _INF),)),
        ConfigRule("decode-10k", "m", 129, "64x160-splitk", "M = 65..128, N = 10240..16383: 64x160 tiles, K split "
                   "(128x10240x8192 1.02 / 0.96x against 64x192-pingpong)", also=(("n", 10240, 16384),)),
        # 128x160 where its tiles fill the waves better than 128x192's: two row blocks make one wave up to N = 10560
        # with 128x160 and up to N = 12672 with 128x192 (between them 128x160 needs a second wave)
        ConfigRule("decode-11k-256", "m", 257, "128x192", "M = 129..256, N = 10561..12672: 128x192 tiles, one wave "
                   "(128x160 would need two; not measured at these N)", also=(("m", 129, 257), ("n", 10561, 12673))),
        ConfigRule("decode-10k-256", "m", 257, "128x160", "M = 129..256, N = 10240..10560 and 12673..16383: "
                   "128x160 tiles (256x10240x8192 0.95 / 0.88x against 128x192)", also=(("n", 10240, 16384),)),
        ConfigRule("decode-8k-256", "m", 257, "64x256-splitk", "M = 129..256, N = 8192..10239: 64x256 tiles, K "
                   "split (256x8192x8192 0.94 / 0.93x, 256x8192x28672 1.02 / 1.02x; 64x128-splitk 0.77-0.83x)",
                   also=(("m", 129, 257), ("n", 8192, 10240))),
        ConfigRule("decode-6k-256", "m", 257, "64x192-pingpong", "M = 129..256, N = 5000..8191: 64x192 ping-pong "
                   "(256x6144x4096 0.96 / 0.99x; 64x128-splitk 0.69 / 0.72x)", also=(("m", 129, 257), ("n", 5000, 8192))),
        ConfigRule("decode", "m", 257, "64x128-splitk", "M = 65..256, the other N: 64x128 tiles, K split "
                   "(128x6144x4096 0.92x, 256x4096x4096 1.02x, 128x8192x28672 1.05x)"),
        ConfigRule("few-tiles", "waves", 1.0, "64x128-splitk", "under one wave of 128x256 tiles on 132 SMs: "
                   "64x128 tiles, K split (1024x1024x8192 0.37x -> 0.93x, 4096x128x4096 0.83x)"),
        ConfigRule("row-pitch", "pitch", 1, "128x256-cluster2", "K % 64 != 0: rows of A and Bt off the 128-byte "
                   "grid, whose TMA loads are slow; 2-CTA clusters load each Bt row once per pair (3000x5000x7000 "
                   "0.89x; repacked 0.76x, plain 0.65x, one run)"),
        ConfigRule("deep-square", "n", 10240, "128x192", "M >= 8192, N = 8192..10239, K >= 8192: 128x192 tiles "
                   "(8192^3 1.02-1.03x, 16384x8192x28672 1.03-1.05x)",
                   also=(("m", 8192, _INF), ("n", 8192, 10240), ("k", 8192, _INF))),
    ), "128x256 tiles fill the SMs in whole waves: the default configuration (0.96-1.03x on prefill, H200)"),
}


def applies(rule: Rule | ConfigRule, metrics: dict[str, float]) -> bool:
    """A rule of either table applies when its metric is below its bound and every `also` range holds."""
    return metrics[rule.metric] < rule.below and all(lo <= metrics[m] < hi for m, lo, hi in rule.also)


def select_by_table(arch: str, m: int, n: int, k: int) -> tuple[str, str, str]:
    """(configuration, rule, why) that SELECTION picks for an m x n x k product on `arch`."""
    from .specs import default_config, get_spec
    table = SELECTION.get(arch)
    default = default_config(arch)
    if table is None or not table.rules:
        return default, "default", table.default_reason if table else "the arch's default configuration"
    c = get_spec(arch).constraints
    tiles = -(-m // c.block_m) * -(-n // c.block_n)
    units = UNITS.get(arch, 1)
    waves = tiles / units
    metrics = {"m": m, "n": n, "k": k, "mnk": m * n * k, "waves": waves,
               "wave_fill": tiles / (units * -(-tiles // units)), "aligned": int(n % 8 == 0 and k % 8 == 0),
               "pitch": int(k % 64 == 0)}
    for rule in table.rules:
        if applies(rule, metrics):
            return rule.config, rule.name, rule.why
    return default, "default", table.default_reason


#: Row strides (elements) a kernel cannot address, per arch: the gfx950 launcher keeps every row offset of a
#: 256-row block inside the 32-bit buffer range (256 * ld * 2 bytes < 2^31, kernels/gemm_gfx950.hip), so a product
#: whose own rows need ld >= 2^22 (N, or K rounded up to 8) goes to torch even when the kernel is forced, and an
#: operand whose row stride alone is that wide is copied to compact rows (plan.make_plan).
MAX_LEADING_DIM: dict[str, int] = {"gfx950": 1 << 22}

_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar("hkjit_dispatch", default=None)


@functools.lru_cache(maxsize=1)
def env_mode() -> str:
    """HKJIT_DISPATCH, read once per process (an environment lookup costs microseconds on every call's path);
    ``hkjit.dispatch()`` changes the mode at run time."""
    return env_choice("HKJIT_DISPATCH", MODES, "auto")


def current_mode() -> str:
    return _mode.get() or env_mode()


@contextlib.contextmanager
def dispatch(mode: str):
    """``with hkjit.dispatch("torch"): ...`` forces a path for the calls inside (auto, kernel or torch)."""
    if mode not in MODES:
        raise ValueError(f"hkjit.dispatch({mode!r}): use one of {', '.join(MODES)}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


class Decision(Record):
    __slots__ = ("path", "rule", "reason")
    path: str     # "kernel" | "torch" | "empty"
    rule: str
    reason: str


def tile_fill(m: int, n: int, block_m: int, block_n: int) -> float:
    return (m * n) / (round_up(m, block_m) * round_up(n, block_n))


_EMPTY = Decision("empty", "empty", "a zero-size dimension: the result is empty or all zeros, no kernel needed")


def decide(arch: str, m: int, n: int, k: int) -> Decision:
    """The path of an m x n x k product on `arch` under the current mode. Not memoized here: routing.py memoizes
    the whole route of a call, this decision included."""
    if m == 0 or n == 0 or k == 0:
        return _EMPTY
    mode = current_mode()
    if mode != "auto":
        if mode == "kernel" and (wide := _too_wide(arch, n, k)) is not None:
            return wide
        return Decision(mode, f"forced-{mode}", f"forced by {'hkjit.dispatch' if _mode.get() else 'HKJIT_DISPATCH'}")
    return _decide_auto(arch, m, n, k)


def _too_wide(arch: str, n: int, k: int) -> Decision | None:
    """The torch route for a product whose rows (N for C, K for A and Bᵀ) the arch's kernel cannot address."""
    limit = MAX_LEADING_DIM.get(arch)
    if limit is None or round_up(max(n, k), 8) < limit:
        return None
    return Decision("torch", "leading-dim", f"N or K reaches {limit} (2^{limit.bit_length() - 1}): row offsets "
                    f"past the kernel's 32-bit buffer range, torch.matmul computes it (even when the kernel is "
                    f"forced)")


def _decide_auto(arch: str, m: int, n: int, k: int) -> Decision:
    if (wide := _too_wide(arch, n, k)) is not None:
        return wide
    c = get_spec(arch).constraints
    metrics = {"mnk": m * n * k, "m": m, "n": n, "k": k, "fill": tile_fill(m, n, c.block_m, c.block_n),
               "aligned": int(n % 8 == 0 and k % 8 == 0)}
    policy = POLICY[arch]
    for rule in policy.rules:
        if applies(rule, metrics):
            return Decision(rule.path, rule.name, rule.why)
    return Decision("kernel", "default", policy.default_reason)
