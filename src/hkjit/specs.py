"""Kernel specs: what each kernel is made of, as data the builder consumes.

A spec names the files (in ``kernels/``), the flags, the header libraries, the functions its torch binding
exports and the tile constraints the dispatcher must respect. Adding a kernel is adding a spec here; the cache,
lock, build and load code never branches on a kernel's name.
"""

import functools
import os
import re
from pathlib import Path

from .errors import UnsupportedTargetError
from .records import Record
from .targets import KNOWN_ARCHS

def round_up(x: int, m: int) -> int:
    """x rounded up to a multiple of m: K to a spec's pad_k_to, a row stride to its align, M or N to a tile."""
    return (x + m - 1) // m * m


@functools.lru_cache(maxsize=None)
def kernels_dir() -> Path:
    """kernels/ of a source checkout (editable install), or the copy shipped inside the wheel."""
    here = Path(os.path.dirname(os.path.abspath(__file__)))      # no resolve(): it costs a stat per component
    for cand in (here / "kernels", here.parents[1] / "kernels"):
        if (cand / "hkjit_gemm.h").is_file():
            return cand
    raise FileNotFoundError("hkjit's kernels/ folder is missing from the installation; reinstall hkjit")


class Constraints(Record):
    """What the kernel's launcher accepts without copies (plan.py copies or pads to meet the rest).

    block_m/block_n/block_k: the block tile (the policy's tile-fill rule and explain() use it). Every kernel
    handles ragged M and N in-kernel. pad_k_to: K must be a multiple of this (operands are zero-padded along K
    otherwise). align: row strides and base pointers of A and Bt must be multiples of this many elements
    (16-byte loads); align_c: the same for C (TMA stores need it, masked stores don't)."""
    __slots__ = ("block_m", "block_n", "block_k", "align", "align_c", "pad_k_to")
    _defaults = {"align": 1, "align_c": 1, "pad_k_to": 1}
    block_m: int
    block_n: int
    block_k: int
    align: int
    align_c: int
    pad_k_to: int


class KernelConfig(Record):
    """One configuration of an arch's kernel, as data: a name, the compile-time defines that select it (appended
    to the flags of the files that hold the kernel, so they are in the cache key) and the Constraints its launcher
    needs (None: the kernel spec's own). The first configuration of an arch in CONFIGS is its default, the
    kernel as built with no defines at all; its spec is the one in SPECS, unchanged (same key as before
    configurations existed). `why` says what the configuration is for (explain and `cache ls` show the name)."""
    __slots__ = ("name", "defines", "constraints", "why")
    _defaults = {"defines": (), "constraints": None, "why": ""}
    name: str
    defines: tuple[str, ...]
    constraints: "Constraints | None"
    why: str


class KernelSpec(Record):
    """One kernel for one arch, as data: the builder, key and loader read these fields and nothing else.

    name: kernel family, e.g. "gemm_bf16" (the cache folder is <arch>/<name>-<key>); host_sources: C++ files
    compiled by the host compiler (the torch binding among them); device_sources: HIP/CUDA files compiled by
    hipcc/nvcc (no torch headers in them); headers: our own headers the sources include (hashed into the key);
    libraries: header libraries (libraries.LIBRARIES keys), found by configuration; cflags / device_cflags /
    ldflags: compiler and linker flags; functions: what the binding exports; constraints: see Constraints;
    config: the KernelConfig this spec is a variant for (config_spec), "" for the arch's default one."""
    __slots__ = ("name", "arch", "host_sources", "device_sources", "headers", "libraries", "cflags",
                 "device_cflags", "ldflags", "functions", "constraints", "config")
    _defaults = {"device_sources": (), "headers": ("hkjit_gemm.h",), "libraries": (), "cflags": (),
                 "device_cflags": (), "ldflags": (), "functions": ("gemm_forward", "gemm_out"),
                 "constraints": Constraints(64, 64, 64), "config": ""}
    name: str
    arch: str
    host_sources: tuple[str, ...]
    device_sources: tuple[str, ...]
    headers: tuple[str, ...]
    libraries: tuple[str, ...]
    cflags: tuple[str, ...]
    device_cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    functions: tuple[str, ...]
    constraints: Constraints
    config: str          # the KernelConfig's name ("": the arch's default configuration, see CONFIGS)

    @property
    def files(self) -> tuple[str, ...]:
        return self.host_sources + self.device_sources + self.headers


GFX950_FLAGS = ("--offload-arch=gfx950", "-DKITTENS_CDNA4", "-O3", "-std=c++20", "-DHIP_ENABLE_WARP_SYNC_BUILTINS")

SPECS: tuple[KernelSpec, ...] = (
    KernelSpec(
        name="gemm_bf16", arch="cpu",
        host_sources=("gemm_reference.cpp", "gemm_binding.cpp"),
        cflags=("-O3",),
        constraints=Constraints(block_m=1, block_n=64, block_k=256), config="n64k256",
    ),
    KernelSpec(
        name="gemm_bf16", arch="gfx950",
        host_sources=("gemm_binding.cpp",), device_sources=("gemm_gfx950.hip",),
        headers=("hkjit_gemm.h", "gemm_gfx950_plan.h"),
        libraries=("hipkittens",),
        cflags=("-O3", "-DHKJIT_GPU"),
        device_cflags=GFX950_FLAGS,
        # 8 waves, 256x256 block, 4 LDS stages of 32-wide K tiles (kernels/gemm_gfx950_plan.h); buffer loads are
        # range-checked, stores masked: ragged M, N, K in-kernel, but K % 8 == 0 (16-byte rows).
        constraints=Constraints(block_m=256, block_n=256, block_k=32, align=8, align_c=1, pad_k_to=8),
        config="256x256",
    ),
    KernelSpec(
        name="gemm_bf16", arch="sm_90a",
        host_sources=("gemm_binding.cpp",), device_sources=("gemm_sm90a.cu",),
        libraries=("thunderkittens",),
        cflags=("-O3", "-DHKJIT_GPU"),
        device_cflags=("-gencode=arch=compute_90a,code=sm_90a", "-O3", "-std=c++20", "--expt-relaxed-constexpr",
                       "--expt-extended-lambda", "-DKITTENS_HOPPER"),
        # 2 consumer warpgroups + 1 TMA producer, persistent grid, 4-stage ring of 64-wide K tiles; TMA bounds give
        # ragged M, N, K, but TMA needs 16-byte aligned bases and row strides (A, Bt and C).
        constraints=Constraints(block_m=128, block_n=256, block_k=64, align=8, align_c=8), config="128x256",
    ),
)


def specs_for(arch: str, kernel: str | None = None) -> list[KernelSpec]:
    found = [s for s in SPECS if s.arch == arch and (kernel is None or s.name == kernel)]
    if not found:
        names = sorted({s.name for s in SPECS})
        raise UnsupportedTargetError(f"no kernel {kernel or ''} for arch {arch!r}; archs: {', '.join(KNOWN_ARCHS)}; "
                                     f"kernels: {', '.join(names)}")
    return found


_BY_NAME = {(s.arch, s.name): s for s in SPECS}


def get_spec(arch: str, kernel: str = "gemm_bf16") -> KernelSpec:
    spec = _BY_NAME.get((arch, kernel))                     # a dict lookup: this is on every call's path
    return spec if spec is not None else specs_for(arch, kernel)[0]


def _sm90a(bm: int, bn: int, *extra: str) -> tuple[str, ...]:
    return (f"-DHKJIT_SM90A_BM={bm}", f"-DHKJIT_SM90A_BN={bn}", *extra)


def _sm90a_tile(bm: int, bn: int) -> Constraints:
    return Constraints(block_m=bm, block_n=bn, block_k=64, align=8, align_c=8)


#: The configurations of each arch's kernel, default first (its spec is the SPECS one, no defines). Each other one
#: is a spec variant with its own cache entry: its defines go into the flags of the files holding the kernel.
#: sm_90a defines (kernels/gemm_sm90a.cu): HKJIT_SM90A_BM, _BN, _STAGES, _GROUP_M, _SPLITK (0|1|2), _REPACK (0|1),
#: _PINGPONG (0|1), _CLUSTER (1|2), _SWAP (0|1), _PDL (0|1).
#: CPU defines (kernels/gemm_reference.cpp): HKJIT_REF_BLOCK_N, HKJIT_REF_BLOCK_K.
CONFIGS: dict[str, tuple[KernelConfig, ...]] = {
    "cpu": (
        KernelConfig("n64k256", why="64-column panels of Bt, 256 deep (64 KiB of fp32: L2-resident)"),
        KernelConfig("n128k128", ("-DHKJIT_REF_BLOCK_N=128", "-DHKJIT_REF_BLOCK_K=128"),
                     Constraints(block_m=1, block_n=128, block_k=128),
                     why="128-column panels, 128 deep: the same 64 KiB panel, half the passes over A"),
    ),
    "gfx950": (
        KernelConfig("256x256", why="8 waves, 256x256 block, 4 LDS stages (kernels/gemm_gfx950_plan.h)"),
    ),
    # Measured on the H200 (tools/sm90a_standalone/NOTES.md, 2026-12-01): which one wins where is
    # policy.SELECTION's business; -splitk / -repack only act where the launcher's rule says (under 2 waves of
    # tiles; a row pitch off the 128-byte grid), elsewhere they run the plain kernel's code.
    "sm_90a": (
        KernelConfig("128x256", why="2 consumer warpgroups, 128x256 tiles, 4 stages, GROUP_M 16 (large products)"),
        KernelConfig("256x128", _sm90a(256, 128), _sm90a_tile(256, 128),
                     why="256x128 tiles (2 consumers x 2 row blocks): the transposed tile, ties 128x256 within 1%"),
        KernelConfig("128x192", _sm90a(128, 192), _sm90a_tile(128, 192),
                     why="128x192 tiles: best on deep square products (8192^3 1.03x, 16384x8192x28672 1.045x)"),
        KernelConfig("128x224", _sm90a(128, 224), _sm90a_tile(128, 224),
                     why="128x224 tiles: N = 28672 in 128 tiles a row block (128x256: 112, 85% of the SMs busy): "
                         "M = 65..256 with N = 16384..29568 (256x28672x8192 1.10x, 256x28672x4096 1.07x; 128x256 "
                         "0.98 / 0.97x)"),
        KernelConfig("128x160", _sm90a(128, 160), _sm90a_tile(128, 160),
                     why="128x160 tiles: N = 10240 in 64 tiles a row block (128x192: 54): M = 129..256 with "
                         "N = 10240 (256x10240x8192 0.95x; 128x192 0.88x)"),
        KernelConfig("128x128", _sm90a(128, 128), _sm90a_tile(128, 128),
                     why="128x128 tiles, 6 stages: not selected (256x10240x8192 0.90x, where 128x160 is 0.95x; "
                         "0.87-0.93x when large)"),
        KernelConfig("128x256-repack", ("-DHKJIT_SM90A_REPACK=1",), _sm90a_tile(128, 256),
                     why="copies an operand whose row pitch is off the 128-byte grid (K % 64 != 0) to an aligned "
                         "pitch first (3000x5000x7000: 0.61x -> 0.77x, 4096x4096x4104: 0.65x -> 0.84x)"),
        KernelConfig("64x64-splitk", _sm90a(64, 64, "-DHKJIT_SM90A_SPLITK=1"), _sm90a_tile(64, 64),
                     why="64x64 tiles, K split across SMs: M = 33..64 with N < 5000 (0.85-1.02x) and N = 7681..8448, "
                         "one wave of tiles (64x8192x8192 1.01-1.04x, 64x8192x28672 1.07-1.09x)"),
        KernelConfig("64x128-splitk", _sm90a(64, 128, "-DHKJIT_SM90A_SPLITK=1"), _sm90a_tile(64, 128),
                     why="64x128 tiles, K split: M <= 32 with N < 8192, M = 65..256, few-tile products "
                         "(128x8192x8192: 0.45x -> 0.97x)"),
        KernelConfig("64x256-splitk", _sm90a(64, 256, "-DHKJIT_SM90A_SPLITK=1"), _sm90a_tile(64, 256),
                     why="64x256 tiles, K split: M <= 64 with wide N (0.84-1.02x)"),
        KernelConfig("64x256-pingpong", _sm90a(64, 256, "-DHKJIT_SM90A_PINGPONG=1"), _sm90a_tile(64, 256),
                     why="ping-pong (each consumer owns a 64x256 tile, one stores while the other computes), no "
                         "split: M <= 64 with N >= 16384 (0.93-1.08x; 0.95x of 128x256 on prefill)"),
        KernelConfig("64x192-pingpong", _sm90a(64, 192, "-DHKJIT_SM90A_PINGPONG=1"), _sm90a_tile(64, 192),
                     why="ping-pong, 64x192 tiles, 6 stages: M = 129..256 with N = 6144 (0.92-0.99x); M = 65..128 "
                         "with N = 10240 until run 25 (0.96-1.03x; 64x160-splitk 1.02x)"),
        KernelConfig("64x128-pingpong", _sm90a(64, 128, "-DHKJIT_SM90A_PINGPONG=1"), _sm90a_tile(64, 128),
                     why="ping-pong, 64x128 tiles, 8 stages: M = 33..64 with N = 10561..16383, where 64x80 tiles "
                         "make more than one wave (at N <= 10560 64x80-pingpong: 0.93-1.00x where this is 0.88-0.99x)"),
        KernelConfig("64x160-splitk", _sm90a(64, 160, "-DHKJIT_SM90A_SPLITK=1"), _sm90a_tile(64, 160),
                     why="64x160 tiles, K split: M = 65..128 with N = 10240 (128x10240x8192 1.02x; 64x192-pingpong "
                         "0.96x)"),
        KernelConfig("64x80-pingpong", _sm90a(64, 80, "-DHKJIT_SM90A_PINGPONG=1"), _sm90a_tile(64, 80),
                     why="ping-pong, 64x80 tiles: M = 33..64 with N = 5000..10560 (64x6144x4096 0.93x, "
                         "64x10240x8192 0.93x, 64x8192x8192 1.00x; 64x128-pingpong 0.89 / 0.88 / 0.99x)"),
        # swap: the kernel computes C^T = Bt . A^T (its BM x BN tile is C's BN x BM), K split over CTA pairs that
        # sum through distributed shared memory (HKJIT_SM90A_SPLITK=2); 16x64-swap is launched with programmatic
        # dependent launch (HKJIT_SM90A_PDL=1: +2% back to back on the M = 16 decode shapes in H200 runs 20 and 21;
        # 16x128-swap lost 6% with it at 16x10240x8192 in run 21, so it has none)
        KernelConfig("16x64-swap", _sm90a(64, 16, "-DHKJIT_SM90A_SWAP=1", "-DHKJIT_SM90A_SPLITK=2",
                                          "-DHKJIT_SM90A_PDL=1"),
                     _sm90a_tile(16, 64),
                     why="decode M <= 16: Bt's rows on the 64-row wgmma side, M on its 16-wide N side, K split over "
                         "CTA pairs reduced in shared memory (16x4096x4096 1.04x, 16x6144x4096 0.96x; 64x128-splitk "
                         "0.96 / 0.83x)"),
        KernelConfig("16x128-swap", _sm90a(128, 16, "-DHKJIT_SM90A_SWAP=1", "-DHKJIT_SM90A_SPLITK=2"),
                     _sm90a_tile(16, 128),
                     why="decode M <= 16, N = 10240..16383: as 16x64-swap with 128 rows of Bt a tile "
                         "(16x10240x8192 1.08x; 64x256-splitk 1.01x)"),
        KernelConfig("128x256-cluster2", ("-DHKJIT_SM90A_CLUSTER=2",), _sm90a_tile(128, 256),
                     why="2-CTA clusters: vertically adjacent 128x256 tiles share Bt, each CTA loads half of it "
                         "multicast to both; = 128x256 on aligned products, 0.89x (repack 0.76x) at K = 7000"),
    ),
}


# ------------------------------------------------------------------------------------- named by their parameters
# A configuration outside CONFIGS may be asked for by a name that spells its parameters (warmup --config, tune /
# bench --configs, a tuning record's winner): `tune` can then time a tile the kernel supports but no one has
# listed (sm_90a 128x96), and a winner it records is used like a listed one. The names of CONFIGS always mean
# what CONFIGS says; a spelled name whose defines equal a listed configuration's is refused (one name each).

#: sm_90a name suffixes, in the one order a name lists them, and the defines each adds (see gemm_sm90a.cu)
_SM90A_FEATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("splitk", ("-DHKJIT_SM90A_SPLITK=1",)),        # K split over CTAs, partials in a workspace
    ("csplit", ("-DHKJIT_SM90A_SPLITK=2",)),        # K split over the CTAs of a cluster (distributed shared memory)
    ("pingpong", ("-DHKJIT_SM90A_PINGPONG=1",)),
    ("repack", ("-DHKJIT_SM90A_REPACK=1",)),
    ("cluster2", ("-DHKJIT_SM90A_CLUSTER=2",)),
    ("swap", ("-DHKJIT_SM90A_SWAP=1", "-DHKJIT_SM90A_SPLITK=2")),   # C^T = Bt . A^T, pairs split K (needs a split)
    ("pdl", ("-DHKJIT_SM90A_PDL=1",)),
)
_SM90A_GRAMMAR = ("BMxBN[-splitk|-csplit][-pingpong][-repack][-cluster2][-pdl][-stS][-gG] (BM 64, 128 or 256; BN a "
                  "multiple of 16 from 64 to 256; S ring stages 2..16; G raster group), or MxBM-swap[-pdl][-stS][-gG] "
                  "(M side 16, 32 or 64)")


def _parse_sm90a(name: str) -> KernelConfig | str:
    """The configuration an sm_90a name spells, or why it spells none. Checked here: the grammar, each value's range
    and the combinations gemm_sm90a.cu refuses that the name alone shows (its #error / static_assert stay the
    authority); what only the compiler can tell (whether the ring fits in shared memory) fails the build."""
    m = re.fullmatch(r"(\d+)x(\d+)((?:-[a-z0-9]+)*)", name)
    if not m:
        return f"not of the form {_SM90A_GRAMMAR}"
    first, second = int(m.group(1)), int(m.group(2))
    parts = [p for p in m.group(3).split("-") if p]
    order = [f for f, _ in _SM90A_FEATURES] + ["st", "g"]
    defines: list[str] = []
    seen: list[int] = []
    for p in parts:
        num = re.fullmatch(r"(st|g)(\d+)", p)
        at = order.index(num.group(1)) if num else order.index(p) if p in order else -1
        if at < 0:
            return f"unknown part -{p} (parts: {', '.join('-' + f for f in order[:-2])}, -stS, -gG)"
        if seen and at <= seen[-1]:
            return f"-{p} is out of order or repeated: parts go in the order {' '.join('-' + f for f in order)}"
        seen.append(at)
        if num:
            value = int(num.group(2))
            if num.group(1) == "st" and not 2 <= value <= 16:
                return f"-st{value}: the ring has 2..16 stages"
            if num.group(1) == "g" and value < 1:
                return "-g0: the raster group is at least 1 tile row"
            defines.append(f"-DHKJIT_SM90A_{'STAGES' if num.group(1) == 'st' else 'GROUP_M'}={value}")
        else:
            defines += _SM90A_FEATURES[at][1]
    swap = "swap" in parts
    if "splitk" in parts and "csplit" in parts:
        return "-splitk and -csplit are two ways of splitting K: take one"
    bm, bn = (second, first) if swap else (first, second)     # a swapped name is C's tile: M side x Bt rows
    if bm not in (64, 128, 256):
        return f"{'the Bt side' if swap else 'BM'} {bm} is not 64, 128 or 256"
    if swap and bn not in (16, 32, 64):
        return f"the M side {bn} of a swapped tile is not 16, 32 or 64"
    if not swap and (bn % 16 or not 64 <= bn <= 256):
        return f"BN {bn} is not a multiple of 16 from 64 to 256"
    if swap and any(p in ("splitk", "csplit", "pingpong", "repack", "cluster2") for p in parts):
        return "a swapped tile takes only -pdl, -stS and -gG (it splits K over CTA pairs itself)"
    pingpong = "pingpong" in parts
    if pingpong and bm == 256:
        return "ping-pong needs BM 64 or 128 (each consumer holds a whole tile)"
    if "csplit" in parts and (bm * bn > 8192 or any(p in ("pingpong", "repack", "cluster2") for p in parts)):
        return "-csplit needs BM x BN <= 8192 and no -pingpong, -repack or -cluster2"
    row_blocks = bm // 64 if pingpong else max(bm // 128, 1)   # m64 row blocks a consumer warpgroup holds
    if not swap and row_blocks * bn > 256:
        return (f"a consumer warpgroup's accumulators ({bm}x{bn} tile{', ping-pong' if pingpong else ''}) would "
                f"exceed 128 registers a thread: at most {256 // row_blocks} columns with these rows")
    tile = () if (bm, bn) == (128, 256) else (f"-DHKJIT_SM90A_BM={bm}", f"-DHKJIT_SM90A_BN={bn}")
    return KernelConfig(name, tile + tuple(defines), _sm90a_tile(bn, bm) if swap else _sm90a_tile(bm, bn),
                        why="named by its parameters (not in the measured list)")


_CPU_GRAMMAR = "nNkK (N columns of Bt per panel, 1..1024; K deep, 1..16384: at most a 64 MiB fp32 panel)"


def _parse_cpu(name: str) -> KernelConfig | str:
    """The configuration a CPU name spells (nNkK: panels of N columns of Bt, K deep), or why it spells none."""
    m = re.fullmatch(r"n(\d+)k(\d+)", name)
    if not m or not (1 <= int(m.group(1)) <= 1024 and 1 <= int(m.group(2)) <= 16384):
        return f"not of the form {_CPU_GRAMMAR}"
    n, k = int(m.group(1)), int(m.group(2))
    return KernelConfig(name, (f"-DHKJIT_REF_BLOCK_N={n}", f"-DHKJIT_REF_BLOCK_K={k}"),
                        Constraints(block_m=1, block_n=n, block_k=k), why="named by its parameters")


#: arch -> the parser of its spelled configuration names and their form (an arch without one takes only the names
#: of CONFIGS)
_SPELLED = {"sm_90a": (_parse_sm90a, _SM90A_GRAMMAR), "cpu": (_parse_cpu, _CPU_GRAMMAR)}
_FOUND: dict[tuple[str, str], KernelConfig] = {}


def spelled_form(arch: str) -> str | None:
    """The form of the names that spell `arch`'s configurations by their parameters (None: listed names only)."""
    return _SPELLED[arch][1] if arch in _SPELLED else None


def find_config(arch: str, name: str) -> KernelConfig:
    """The configuration `name` of `arch`: one of CONFIGS, or one its name spells (see above). Raises
    UnsupportedTargetError saying why a name is neither, with the listed names and the grammar."""
    hit = _FOUND.get((arch, name))
    if hit is not None:
        return hit
    listed = configs_for(arch)
    cfg = next((c for c in listed if c.name == name), None)
    if cfg is None:
        got = _SPELLED[arch][0](name) if arch in _SPELLED else "this arch takes only the listed names"
        if isinstance(got, KernelConfig):
            same = set(got.defines)
            twin = next((c for c in listed if set(c.defines) == same), None)   # the default: no defines
            if twin is not None:
                got = f"that is the configuration {twin.name}"
        if isinstance(got, str):
            raise UnsupportedTargetError(f"no configuration {name!r} for {arch}: {got}; configurations: "
                                         f"{', '.join(c.name for c in listed)}")
        cfg = got
    _FOUND[(arch, name)] = cfg
    return cfg


def configs_for(arch: str) -> tuple[KernelConfig, ...]:
    """The configurations of `arch`'s kernel, default first (UnsupportedTargetError for an unknown arch)."""
    found = CONFIGS.get(arch)
    if found is None:
        raise UnsupportedTargetError(f"no kernel configurations for arch {arch!r}; archs: {', '.join(CONFIGS)}")
    return found


def default_config(arch: str) -> str:
    return configs_for(arch)[0].name


def resolve_configs(arch: str, names: list[str]) -> list[str]:
    """Configuration names as a user gives them (--config/--configs: names, "all" for every listed configuration
    of `arch`, or names that spell a configuration: find_config), in order, each once; a name that is neither
    raises UnsupportedTargetError saying why."""
    out = []
    for n in names:
        out += [c.name for c in configs_for(arch)] if n == "all" else [find_config(arch, n).name]
    return list(dict.fromkeys(out))


_VARIANTS: dict[tuple[str, str, str], KernelSpec] = {}


def config_spec(arch: str, config: str | None = None, kernel: str = "gemm_bf16") -> KernelSpec:
    """The spec of `kernel` for `arch` in configuration `config` (None or "": the default, get_spec's).

    A variant is the default spec with the configuration's defines appended to the flags of the files holding the
    kernel (the device flags on a GPU, the host flags for the CPU kernel), its constraints, and its name in
    ``config``. Memoized: the call path asks for it on every kernel call. An unknown name raises
    UnsupportedTargetError naming the known ones."""
    if not config:
        return get_spec(arch, kernel)
    hit = _VARIANTS.get((arch, kernel, config))
    if hit is not None:
        return hit
    base = get_spec(arch, kernel)
    cfg = find_config(arch, config)
    if cfg.name == base.config:
        spec = base
    elif base.device_sources:
        spec = base.replace(device_cflags=base.device_cflags + cfg.defines, config=cfg.name,
                            constraints=cfg.constraints or base.constraints)
    else:
        spec = base.replace(cflags=base.cflags + cfg.defines, config=cfg.name,
                            constraints=cfg.constraints or base.constraints)
    _VARIANTS[(arch, kernel, config)] = spec
    return spec


def is_default_config(spec: KernelSpec) -> bool:
    """Whether `spec` is its arch's default configuration (its key then holds no config field: the same keys as
    before configurations existed)."""
    return not spec.config or spec.config == CONFIGS.get(spec.arch, (KernelConfig(spec.config),))[0].name
