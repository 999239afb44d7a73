"""Device-only compile of a HIP kernel for an AMD target (no ROCm install, no GPU) and an assembly parser.

`compile_device(src, arch, hipkittens_include, toolchain_dir)` runs the command line of the check toolchain's
hip-device-compile script (Debian clang-22, `-nogpulib`, the toolchain's ROCm-shaped header tree) and returns a
`DeviceCompile` with the assembly text and the resource figures read from the code-object metadata.
`main_loop(asm)` / `loop_events(body)` extract the innermost loop of a kernel and its memory/sync events for the
assembly check (tests/test_gfx950_kernel.py compares them with src/hkjit/gfx950/schedule.py's plan).

Figures come from upstream clang, not ROCm's amdclang: close to, not equal to, what hipcc reports on the user's
machine. `-nogpulib` leaves HIP's `threadIdx`/`blockIdx` as calls into the (absent) ockl device library; a kernel
that is to be measured here defines them under `-DHKJIT_NOGPULIB_SHIMS` (see kernels/gemm_gfx950.hip), otherwise
the call ABI makes the compiler save registers around each call and the spill figures are meaningless.

The toolchain folder (``rocm/include/hip``, ``HipKittens/include``) comes from configuration only:
HKJIT_TOOLCHAIN_DIR, else DEFAULT_TOOLCHAIN_DIR, never a path relative to this package or to a source checkout
(the test suite sets the variable to the toolchain its CI provides).
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from ..config import env_str
from ..errors import MissingLibraryError

DEFAULT_CLANG = "/usr/lib/llvm-22/bin/clang++"
CARD_FLAGS = ("-O3", "-std=c++20", "-DHIP_ENABLE_WARP_SYNC_BUILTINS")
ARCH_DEFINES = {"gfx950": "-DKITTENS_CDNA4", "gfx942": "-DKITTENS_CDNA3"}
LDS_PER_CU = {"gfx950": 160 * 1024, "gfx942": 64 * 1024}
REGS_PER_LANE = 512  # gfx90a+ unified VGPR+AGPR file per SIMD lane
MAX_WAVES_PER_SIMD = 8


def find_clang() -> Optional[str]:
    c = env_str("HKJIT_HIP_CLANG") or DEFAULT_CLANG
    if os.path.isfile(c) and os.access(c, os.X_OK):
        return c
    return shutil.which(c) if os.sep not in c else None


#: Where the check toolchain is when HKJIT_TOOLCHAIN_DIR is unset (config.VARS documents the same).
DEFAULT_TOOLCHAIN_DIR = "/opt/hkjit-toolchain"


def toolchain_root() -> Path:
    """The check toolchain folder: HKJIT_TOOLCHAIN_DIR, else DEFAULT_TOOLCHAIN_DIR. Whether it holds a toolchain
    is the caller's question (tests skip with a reason naming the variable; the compiles below raise)."""
    return Path(os.path.expanduser(env_str("HKJIT_TOOLCHAIN_DIR") or DEFAULT_TOOLCHAIN_DIR))


def _toolchain_paths(toolchain_dir, hipkittens_include) -> tuple[Path, Path]:
    """(toolchain folder, HipKittens include dir) of a compile: the arguments, else the configured toolchain;
    MissingLibraryError naming HKJIT_TOOLCHAIN_DIR when the folder has no HIP headers."""
    tc = Path(toolchain_dir) if toolchain_dir else toolchain_root()
    if not (tc / "rocm" / "include" / "hip").is_dir():
        raise MissingLibraryError(f"no gfx950 check toolchain at {tc} (it has no rocm/include/hip): set "
                                  f"HKJIT_TOOLCHAIN_DIR to a folder holding rocm/include/hip and HipKittens/include "
                                  f"(default {DEFAULT_TOOLCHAIN_DIR})")
    return tc, Path(hipkittens_include) if hipkittens_include else tc / "HipKittens" / "include"


@dataclasses.dataclass
class DeviceCompile:
    source: Path
    arch: str
    command: list
    asm: str
    kernel: str
    vgpr: int
    agpr: int
    sgpr: int
    vgpr_spill: int
    sgpr_spill: int
    scratch: int  # .private_segment_fixed_size, bytes per lane
    lds: int  # .group_segment_fixed_size (static LDS; dynamic LDS is the launcher's)
    mfma: int
    wavefront_size: int
    occupancy_reported: Optional[int]  # clang's "; Occupancy:" comment (waves per SIMD) when numeric

    def occupancy(self, threads_per_block: int, dynamic_lds: int = 0) -> dict:
        """Waves per SIMD and blocks per CU, limited by registers and by LDS (4 SIMDs per CU)."""
        regs = self.vgpr + self.agpr  # agpr_count is 0 unless AGPRs are used; then next_free covers both
        granule = 8
        regs = max(granule, -(-regs // granule) * granule)
        by_regs = min(MAX_WAVES_PER_SIMD, REGS_PER_LANE // regs)
        waves_per_block = -(-threads_per_block // self.wavefront_size)
        waves_per_simd_per_block = -(-waves_per_block // 4)
        lds = self.lds + dynamic_lds
        blocks_by_lds = (LDS_PER_CU.get(self.arch, 64 * 1024) // lds) if lds else 64
        blocks_by_regs = by_regs // waves_per_simd_per_block
        blocks = min(blocks_by_lds, blocks_by_regs)
        return {"waves_per_simd_by_regs": by_regs, "blocks_per_cu_by_lds": blocks_by_lds,
                "blocks_per_cu": blocks, "waves_per_simd": blocks * waves_per_simd_per_block}

    def summary(self) -> str:
        return (f"{self.kernel}: VGPR {self.vgpr} AGPR {self.agpr} SGPR {self.sgpr} spills v{self.vgpr_spill}/"
                f"s{self.sgpr_spill} scratch {self.scratch} B static LDS {self.lds} B MFMA {self.mfma}"
                f" occupancy(clang) {self.occupancy_reported}")


def device_compile_command(source, arch: str, hipkittens_include, toolchain_dir, out,
                           extra_flags: Sequence[str] = (), clang: Optional[str] = None) -> list:
    tc = Path(toolchain_dir)
    cmd = [clang or find_clang() or DEFAULT_CLANG, "-x", "hip", f"--offload-arch={arch}", "--cuda-device-only",
           "-nogpulib", f"--rocm-path={tc / 'rocm'}", f"--hip-path={tc / 'rocm'}", "-D__AMDGCN_WAVEFRONT_SIZE=64",
           "-Wno-invalid-constexpr", *CARD_FLAGS]
    if arch in ARCH_DEFINES:
        cmd.append(ARCH_DEFINES[arch])
    cmd += [f"-I{hipkittens_include}", f"-I{tc / 'rocm' / 'include' / 'hip'}", *extra_flags,
            "-S", str(source), "-o", str(out)]
    return cmd


def compile_device(source, arch: str = "gfx950", hipkittens_include=None, toolchain_dir=None,
                   extra_flags: Sequence[str] = (), clang: Optional[str] = None,
                   kernel_contains: Optional[str] = None) -> DeviceCompile:
    """Compile `source` device-only; raise RuntimeError with clang's output on failure."""
    source = Path(source)
    tc, inc = _toolchain_paths(toolchain_dir, hipkittens_include)
    with tempfile.TemporaryDirectory(prefix="hkjit-hipcheck-") as td:
        out = Path(td) / (source.stem + f".{arch}.s")
        cmd = device_compile_command(source, arch, inc, tc, out, extra_flags, clang)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"device compile failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-8000:]}")
        asm = out.read_text()
    return parse_resources(asm, source, arch, cmd, kernel_contains)


_META_KEYS = ("vgpr_count", "agpr_count", "sgpr_count", "vgpr_spill_count", "sgpr_spill_count",
              "private_segment_fixed_size", "group_segment_fixed_size", "wavefront_size")


def kernels_metadata(asm: str) -> list[dict]:
    """One dict per kernel from the .amdgpu_metadata YAML (the keys above, plus name)."""
    m = re.search(r"\.amdgpu_metadata(.*?)\.end_amdgpu_metadata", asm, re.S)
    if not m:
        return []
    out: list[dict] = []
    cur: Optional[dict] = None
    for line in m.group(1).splitlines():
        k = re.match(r"\s*-?\s*\.(\w+):\s*(\S.*)?$", line)
        if not k:
            continue
        key, val = k.group(1), (k.group(2) or "").strip()
        if key == "agpr_count" and line.lstrip().startswith("-"):  # first key of a new kernel map
            cur = {}
            out.append(cur)
        elif cur is None and key in _META_KEYS + ("name",):
            cur = {}
            out.append(cur)
        if cur is not None and (key in _META_KEYS or key == "name") and key not in cur:
            cur[key] = val if key == "name" else int(val, 0) if re.fullmatch(r"-?(0x)?[0-9a-fA-F]+", val) else val
    return [k for k in out if "name" in k]


def parse_resources(asm: str, source, arch: str, cmd, kernel_contains: Optional[str] = None) -> DeviceCompile:
    metas = kernels_metadata(asm)
    if kernel_contains:
        metas = [k for k in metas if kernel_contains in k["name"]]
    if not metas:
        raise RuntimeError("no kernel metadata in the assembly")
    k = metas[0]
    occ = None
    body = function_body(asm, k["name"])
    m = re.search(r";\s*Occupancy:\s*(\d+)\s*$", body or asm, re.M)
    if m:
        occ = int(m.group(1))
    return DeviceCompile(
        source=Path(source), arch=arch, command=list(cmd), asm=asm, kernel=k["name"],
        vgpr=k.get("vgpr_count", 0), agpr=k.get("agpr_count", 0), sgpr=k.get("sgpr_count", 0),
        vgpr_spill=k.get("vgpr_spill_count", 0), sgpr_spill=k.get("sgpr_spill_count", 0),
        scratch=k.get("private_segment_fixed_size", 0), lds=k.get("group_segment_fixed_size", 0),
        mfma=len(re.findall(r"^\s*v_mfma\w*", body or asm, re.M)),
        wavefront_size=k.get("wavefront_size", 64), occupancy_reported=occ,
    )


# ---------------------------------------------------------------------------------------------------------------
# Assembly parsing
# ---------------------------------------------------------------------------------------------------------------
def function_body(asm: str, name: str) -> Optional[str]:
    """Text of one function: from its label to the end of its resource comments (the next function label or
    the metadata, whichever comes first)."""
    m = re.search(rf"^{re.escape(name)}:", asm, re.M)
    if not m:
        return None
    nxt = re.compile(r"^(?!\.L)[A-Za-z_$][\w$.]*:|^\s*\.amdgpu_metadata", re.M)
    e = nxt.search(asm, m.end())
    return asm[m.start():e.start() if e else len(asm)]


def _instructions(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        s = line.split(";", 1)[0].strip()
        if not s or s.startswith(".") or s.endswith(":"):
            if s.endswith(":"):
                out.append(s)
            continue
        out.append(s)
    return out


def main_loop(asm: str, name: Optional[str] = None) -> list[str]:
    """Instructions of the innermost loop: from the label marked '=>This Inner Loop Header' to the branch back
    to it. With several inner loops, the one with the most v_mfma instructions."""
    text = (function_body(asm, name) or "") if name else asm
    lines = text.splitlines()
    best: list[str] = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\.LBB\w+):.*Inner Loop Header", line)
        if not m:
            continue
        label = m.group(1)
        body = []
        for j in range(i + 1, len(lines)):
            if re.match(rf"^\s*s_cbranch_\w+\s+{re.escape(label)}\s*$", lines[j]) or \
               re.match(rf"^\s*s_branch\s+{re.escape(label)}\s*$", lines[j]):
                break
            body.append(lines[j])
        ins = _instructions("\n".join(body))
        if sum(x.startswith("v_mfma") for x in ins) > sum(x.startswith("v_mfma") for x in best):
            best = ins
    return best


_WAIT = re.compile(r"^s_waitcnt\s+(.*)$")


def classify(ins: str) -> list[tuple]:
    """Events of one instruction: ("load",) global->LDS DMA, ("read",) ds_read, ("mfma",), ("vmcnt", n),
    ("lgkmcnt", n), ("barrier",), ("setprio", n), ("store",) buffer/global store; [] for anything else."""
    op = ins.split(None, 1)[0]
    if re.match(r"^(buffer|global)_load_\w+", op) and re.search(r"\blds\b", ins):
        return [("load",)]
    if op.startswith("ds_read") or op.startswith("ds_load"):
        return [("read",)]
    if op.startswith("v_mfma"):
        return [("mfma",)]
    if op == "s_barrier":
        return [("barrier",)]
    if op == "s_setprio":
        return [("setprio", int(ins.split(None, 1)[1], 0))]
    if re.match(r"^(buffer|global)_store", op):
        return [("store",)]
    m = _WAIT.match(ins)
    if m:
        ev: list[tuple] = []
        for kind, n in re.findall(r"(vmcnt|lgkmcnt|expcnt)\((\d+)\)", m.group(1)):
            if kind != "expcnt":
                ev.append((kind, int(n)))
        if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", m.group(1).strip()):
            ev.append(("raw-waitcnt", m.group(1).strip()))
        return ev
    if op in ("s_waitcnt_vmcnt", "s_waitcnt_lgkmcnt"):
        return [("raw-waitcnt", ins)]
    return []


def loop_events(instructions: Sequence[str]) -> list[tuple]:
    ev = []
    for ins in instructions:
        if ins.endswith(":"):
            continue
        ev += classify(ins)
    return ev


def periodic_match(got: Sequence[tuple], unit: Sequence[tuple]) -> Optional[tuple[int, int]]:
    """(period, rotation) when `got` is `unit` repeated `period` times, read from position `rotation` of the
    repetition (the compiler may unroll the loop and rotate its header into the body); None otherwise."""
    n = len(unit)
    if n == 0 or len(got) % n:
        return None
    period = len(got) // n
    cycle = list(unit) * (period + 1)
    for r in range(n):
        if cycle[r:r + len(got)] == list(got):
            return period, r
    return None


def is_valu(ins: str) -> bool:
    """A vector-ALU instruction other than an MFMA (what the main loop's VALU budget counts)."""
    op = ins.split(None, 1)[0]
    return op.startswith("v_") and not op.startswith("v_mfma") and not op.startswith("v_accvgpr")


@dataclasses.dataclass
class Block:
    label: Optional[str]
    instructions: list
    successors: list  # indices of successor blocks


def basic_blocks(instructions: Sequence[str]) -> list[Block]:
    """Split straight-line assembly (as _instructions returns it) into basic blocks with their successors."""
    blocks: list[Block] = []
    cur = Block(None, [], [])
    for ins in instructions:
        if ins.endswith(":"):
            if cur.instructions or cur.label is not None:
                blocks.append(cur)
            cur = Block(ins[:-1], [], [])
            continue
        cur.instructions.append(ins)
        op = ins.split(None, 1)[0]
        if op.startswith("s_cbranch") or op in ("s_branch", "s_endpgm", "s_setpc_b64"):
            blocks.append(cur)
            cur = Block(None, [], [])
    if cur.instructions or cur.label is not None:
        blocks.append(cur)
    index = {b.label: i for i, b in enumerate(blocks) if b.label}
    for i, b in enumerate(blocks):
        last = b.instructions[-1] if b.instructions else ""
        op, _, arg = last.partition(" ")
        if op.startswith("s_cbranch"):
            b.successors = [index[arg.strip()], i + 1]
        elif op == "s_branch":
            b.successors = [index[arg.strip()]]
        elif op in ("s_endpgm", "s_setpc_b64"):
            b.successors = []
        elif i + 1 < len(blocks):
            b.successors = [i + 1]
    return blocks


def barrier_counts(blocks: Sequence[Block], start: int, stop=None) -> set[int]:
    """The numbers of s_barrier a wave can execute on its way from block `start` to a block for which
    `stop(index)` is true (not counting that block), or, with no `stop`, to the end of the function; edges back
    to a block on the current path (loops) are not taken."""
    out: set[int] = set()

    def walk(i: int, n: int, path: frozenset):
        if i != start and stop is not None and stop(i):
            out.add(n)
            return
        n += sum(1 for ins in blocks[i].instructions if ins.split(None, 1)[0] == "s_barrier")
        if not blocks[i].successors and stop is None:
            out.add(n)
        for j in blocks[i].successors:
            if j not in path:
                walk(j, n, path | {j})

    walk(start, 0, frozenset({start}))
    return out


_VREG = re.compile(r"\bv\[(\d+):(\d+)\]|\bv(\d+)\b")


def _regs(operand_text: str) -> set[int]:
    out = set()
    for a, b, single in _VREG.findall(operand_text):
        if single:
            out.add(int(single))
        else:
            out.update(range(int(a), int(b) + 1))
    return out


def lds_read_hazards(instructions: Sequence[str]) -> list[str]:
    """Within straight-line code: every register a ds_read writes must be covered by an lgkmcnt wait before any
    instruction reads or overwrites it (the compiler does not track HipKittens' inline-asm ds_reads, so nothing
    else guarantees this). The loop is checked twice over to catch reads left in flight across the back edge."""
    pending: list[set[int]] = []  # oldest first, one per ds_read
    problems = []
    seq = [i for i in instructions if not i.endswith(":")]
    for rnd in range(2):
        for ins in seq:
            op, _, rest = ins.partition(" ")
            m = _WAIT.match(ins)
            if m:
                n = re.search(r"lgkmcnt\((\d+)\)", m.group(1))
                if n:
                    del pending[:max(0, len(pending) - int(n.group(1)))]
                continue
            if op.startswith("ds_read") or op.startswith("ds_load"):
                dst, _, srcs = rest.partition(",")
                used = _regs(srcs)
                for p in pending:
                    if p & used:
                        problems.append(f"{ins}: address register still being written by an earlier ds_read")
                pending.append(_regs(dst))
                continue
            used = _regs(rest)
            for p in pending:
                if p & used:
                    problems.append(f"round {rnd}: `{ins}` touches v{sorted(p & used)} before the ds_read "
                                    f"writing it was waited for (lgkmcnt)")
                    break
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Code object (for the emulator)
# ---------------------------------------------------------------------------------------------------------------
def compile_code_object(source, out, arch: str = "gfx950", hipkittens_include=None, toolchain_dir=None,
                        extra_flags: Sequence[str] = (), clang: Optional[str] = None) -> Path:
    """Compile `source` device-only into the code object the GPU would load (an EM_AMDGPU ELF, linked by lld),
    written to `out`: the command of device_compile_command with `-c --no-gpu-bundle-output` instead of `-S`.
    Raise RuntimeError with clang's output on failure."""
    source, out = Path(source), Path(out)
    tc, inc = _toolchain_paths(toolchain_dir, hipkittens_include)
    cmd = device_compile_command(source, arch, inc, tc, out, extra_flags, clang)
    i = cmd.index("-S")
    cmd[i:i + 1] = ["-c", "--no-gpu-bundle-output"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"device compile failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-8000:]}")
    return out
