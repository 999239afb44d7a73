"""Kernel specs: what each kernel is made of, as data the builder consumes.

A spec names the files (in ``kernels/``), the flags, the header libraries, the functions its torch binding
exports and the tile constraints the dispatcher must respect. Adding a kernel is adding a spec here; the cache,
lock, build and load code never branches on a kernel's name.
"""

import functools
import os
from pathlib import Path

from .errors import UnsupportedTargetError
from .targets import KNOWN_ARCHS

@functools.lru_cache(maxsize=None)
def kernels_dir() -> Path:
    """kernels/ of a source checkout (editable install), or the copy shipped inside the wheel."""
    here = Path(os.path.dirname(os.path.abspath(__file__)))      # no resolve(): it costs a stat per component
    for cand in (here / "kernels", here.parents[1] / "kernels"):
        if (cand / "hkjit_gemm.h").is_file():
            return cand
    raise FileNotFoundError("hkjit's kernels/ folder is missing from the installation; reinstall hkjit")


class _Record:
    """A small immutable record: keyword construction with defaults, value equality, ``replace()``.

    Not a NamedTuple: building a NamedTuple class execs generated code (~0.3 ms each), and this module is imported
    on every warm start, whose budget is a few milliseconds."""
    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, *args, **kwargs) -> None:
        values = dict(self._defaults, **dict(zip(self.__slots__, args)), **kwargs)
        missing = [f for f in self.__slots__ if f not in values]
        unknown = set(values) - set(self.__slots__)
        if missing or unknown:
            raise TypeError(f"{type(self).__name__}: missing {missing}, unknown {sorted(unknown)}")
        for f in self.__slots__:
            object.__setattr__(self, f, values[f])

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable: use .replace({name}=...)")

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self.__slots__)

    def replace(self, **changes):
        return type(self)(**dict(zip(self.__slots__, self._values()), **changes))

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.__slots__)})"


class Constraints(_Record):
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


class KernelSpec(_Record):
    """One kernel for one arch, as data: the builder, key and loader read these fields and nothing else.

    name: kernel family, e.g. "gemm_bf16" (the cache folder is <arch>/<name>-<key>); host_sources: C++ files
    compiled by the host compiler (the torch binding among them); device_sources: HIP/CUDA files compiled by
    hipcc/nvcc (no torch headers in them); headers: our own headers the sources include (hashed into the key);
    libraries: header libraries (libraries.LIBRARIES keys), found by configuration; cflags / device_cflags /
    ldflags: compiler and linker flags; functions: what the binding exports; constraints: see Constraints."""
    __slots__ = ("name", "arch", "host_sources", "device_sources", "headers", "libraries", "cflags",
                 "device_cflags", "ldflags", "functions", "constraints")
    _defaults = {"device_sources": (), "headers": ("hkjit_gemm.h",), "libraries": (), "cflags": (),
                 "device_cflags": (), "ldflags": (), "functions": ("gemm_forward", "gemm_out"),
                 "constraints": Constraints(64, 64, 64)}
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

    @property
    def files(self) -> tuple[str, ...]:
        return self.host_sources + self.device_sources + self.headers


GFX950_FLAGS = ("--offload-arch=gfx950", "-DKITTENS_CDNA4", "-O3", "-std=c++20", "-DHIP_ENABLE_WARP_SYNC_BUILTINS")

SPECS: tuple[KernelSpec, ...] = (
    KernelSpec(
        name="gemm_bf16", arch="cpu",
        host_sources=("gemm_reference.cpp", "gemm_binding.cpp"),
        cflags=("-O3",),
        constraints=Constraints(block_m=1, block_n=64, block_k=256),
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
        constraints=Constraints(block_m=128, block_n=256, block_k=64, align=8, align_c=8),
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
