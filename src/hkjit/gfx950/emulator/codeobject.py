"""Read an AMDGPU HSA code object (ELF): kernel descriptors, the amdhsa metadata note, and the disassembly.

Why: the emulator must run the kernel *as compiled*, so everything it knows about a kernel comes from the code
object the real build produces, never from the source.  Layouts follow LLVM's AMDGPUUsage document
("Kernel Descriptor", "Code Object V3+ Metadata", "Initial Kernel Execution State").
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .decode import Instruction, decode_line
from .errors import EmulatorError, UnknownInstructionError

EM_AMDGPU = 224
NT_AMDGPU_METADATA = 32


# ---------------------------------------------------------------------------------------------------------------
# ELF
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class _Section:
    name: str
    addr: int
    offset: int
    size: int
    type: int


def _elf_sections(data: bytes) -> list[_Section]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise EmulatorError("not a 64-bit little-endian ELF; pass the gfx950 code object (clang --cuda-device-only "
                            "--no-gpu-bundle-output -c), not an offload bundle or a host object")
    e_machine = struct.unpack_from("<H", data, 18)[0]
    if e_machine != EM_AMDGPU:
        raise EmulatorError(f"ELF e_machine is {e_machine}, not EM_AMDGPU ({EM_AMDGPU}): not an AMDGPU code object")
    e_shoff, = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    raw = []
    for i in range(e_shnum):
        o = e_shoff + i * e_shentsize
        name, typ, _flags, addr, off, size = struct.unpack_from("<IIQQQQ", data, o)
        raw.append((name, typ, addr, off, size))
    stroff = raw[e_shstrndx][3]

    def cstr(o: int) -> str:
        return data[o:data.index(b"\0", o)].decode()

    return [_Section(cstr(stroff + n), a, o, s, t) for n, t, a, o, s in raw]


def _elf_symbols(data: bytes, secs: list[_Section]) -> dict[str, tuple[int, int]]:
    """name -> (value, size) from .symtab (or .dynsym)."""
    out: dict[str, tuple[int, int]] = {}
    for symname, strname in ((".symtab", ".strtab"), (".dynsym", ".dynstr")):
        st = next((s for s in secs if s.name == symname), None)
        sr = next((s for s in secs if s.name == strname), None)
        if not st or not sr:
            continue
        for o in range(st.offset, st.offset + st.size, 24):
            n, _info, _other, _shndx, value, size = struct.unpack_from("<IBBHQQ", data, o)
            if n:
                s0 = sr.offset + n
                out.setdefault(data[s0:data.index(b"\0", s0)].decode(), (value, size))
    return out


def _section_bytes_at(data: bytes, secs: list[_Section], addr: int, size: int) -> bytes:
    for s in secs:
        if s.type != 8 and s.addr <= addr and addr + size <= s.addr + s.size:  # 8 = SHT_NOBITS
            o = s.offset + addr - s.addr
            return data[o:o + size]
    raise EmulatorError(f"address 0x{addr:x} (+{size}) is in no section of the code object")


# ---------------------------------------------------------------------------------------------------------------
# MessagePack (the NT_AMDGPU_METADATA note): the small subset the metadata uses
# ---------------------------------------------------------------------------------------------------------------
def _msgpack(buf: bytes, i: int = 0):
    b = buf[i]
    i += 1
    if b <= 0x7F:
        return b, i
    if b >= 0xE0:
        return b - 0x100, i
    if 0x80 <= b <= 0x8F:
        return _mp_map(buf, i, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return _mp_arr(buf, i, b & 0x0F)
    if 0xA0 <= b <= 0xBF:
        n = b & 0x1F
        return buf[i:i + n].decode(), i + n
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in fixed:
        return fixed[b], i
    ints = {0xCC: "<B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if b in ints:
        f = ints[b]
        return struct.unpack_from(f, buf, i)[0], i + struct.calcsize(f)
    if b in (0xCA, 0xCB):
        f = ">f" if b == 0xCA else ">d"
        return struct.unpack_from(f, buf, i)[0], i + struct.calcsize(f)
    if b in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
        lf = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}[b]
        n = struct.unpack_from(lf, buf, i)[0]
        i += struct.calcsize(lf)
        raw = buf[i:i + n]
        return (raw.decode() if b >= 0xD9 else bytes(raw)), i + n
    if b in (0xDC, 0xDD):
        f = ">H" if b == 0xDC else ">I"
        return _mp_arr(buf, i + struct.calcsize(f), struct.unpack_from(f, buf, i)[0])
    if b in (0xDE, 0xDF):
        f = ">H" if b == 0xDE else ">I"
        return _mp_map(buf, i + struct.calcsize(f), struct.unpack_from(f, buf, i)[0])
    raise EmulatorError(f"unsupported MessagePack byte 0x{b:02x} in the AMDGPU metadata note")


def _mp_arr(buf, i, n):
    out = []
    for _ in range(n):
        v, i = _msgpack(buf, i)
        out.append(v)
    return out, i


def _mp_map(buf, i, n):
    out = {}
    for _ in range(n):
        k, i = _msgpack(buf, i)
        v, i = _msgpack(buf, i)
        out[k] = v
    return out, i


def _metadata(data: bytes, secs: list[_Section]) -> dict:
    for s in secs:
        if s.type != 7:  # SHT_NOTE
            continue
        o, end = s.offset, s.offset + s.size
        while o + 12 <= end:
            namesz, descsz, typ = struct.unpack_from("<III", data, o)
            name = data[o + 12:o + 12 + namesz].rstrip(b"\0")
            d0 = o + 12 + ((namesz + 3) & ~3)
            if name == b"AMDGPU" and typ == NT_AMDGPU_METADATA:
                return _msgpack(data[d0:d0 + descsz])[0]
            o = d0 + ((descsz + 3) & ~3)
    raise EmulatorError("the code object has no NT_AMDGPU_METADATA note (code object v3+ is required)")


# ---------------------------------------------------------------------------------------------------------------
# Kernel descriptor (64 bytes at <kernel>.kd; AMDGPUUsage "Kernel Descriptor")
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class KernelDescriptor:
    group_segment_fixed_size: int
    private_segment_fixed_size: int
    kernarg_size: int
    kernel_code_entry_byte_offset: int
    compute_pgm_rsrc3: int
    compute_pgm_rsrc1: int
    compute_pgm_rsrc2: int
    kernel_code_properties: int

    @classmethod
    def parse(cls, raw: bytes) -> "KernelDescriptor":
        g, p, ka = struct.unpack_from("<III", raw, 0)
        entry, = struct.unpack_from("<q", raw, 16)
        r3, r1, r2 = struct.unpack_from("<III", raw, 44)
        props, = struct.unpack_from("<H", raw, 56)
        return cls(g, p, ka, entry, r3, r1, r2, props)

    # COMPUTE_PGM_RSRC2
    @property
    def user_sgpr_count(self) -> int:
        return (self.compute_pgm_rsrc2 >> 1) & 0x1F

    @property
    def enable_private_segment(self) -> bool:
        return bool(self.compute_pgm_rsrc2 & 1)

    @property
    def enable_workgroup_id(self) -> tuple[bool, bool, bool]:
        return tuple(bool(self.compute_pgm_rsrc2 >> b & 1) for b in (7, 8, 9))  # type: ignore[return-value]

    @property
    def enable_workgroup_info(self) -> bool:
        return bool(self.compute_pgm_rsrc2 >> 10 & 1)

    @property
    def enable_vgpr_workitem_id(self) -> int:
        """0: x only, 1: x and y, 2: x, y and z."""
        return (self.compute_pgm_rsrc2 >> 11) & 3

    # COMPUTE_PGM_RSRC1 (gfx90a/gfx950 wave64: VGPR granule 8, counting VGPRs and AGPRs together)
    @property
    def vgpr_total(self) -> int:
        return ((self.compute_pgm_rsrc1 & 0x3F) + 1) * 8

    # COMPUTE_PGM_RSRC3 (gfx90a+): ACCUM_OFFSET, first AGPR in the unified file, in units of 4
    @property
    def accum_offset(self) -> int:
        return ((self.compute_pgm_rsrc3 & 0x3F) + 1) * 4

    # KERNEL_CODE_PROPERTIES: which user SGPRs are set up, in this order
    USER_SGPRS = (("private_segment_buffer", 0, 4), ("dispatch_ptr", 1, 2), ("queue_ptr", 2, 2),
                  ("kernarg_segment_ptr", 3, 2), ("dispatch_id", 4, 2), ("flat_scratch_init", 5, 2),
                  ("private_segment_size", 6, 1))

    def user_sgprs(self) -> list[tuple[str, int]]:
        """[(what, first SGPR)], in the order the hardware loads them."""
        out, n = [], 0
        for name, bit, size in self.USER_SGPRS:
            if self.kernel_code_properties >> bit & 1:
                out.append((name, n))
                n += size
        return out

    @property
    def wave32(self) -> bool:
        return bool(self.kernel_code_properties >> 10 & 1)


@dataclass
class KernelInfo:
    name: str
    kernarg_size: int
    args: list
    group_segment_size: int
    private_segment_size: int
    vgpr_count: int
    agpr_count: int
    sgpr_count: int
    wave64: bool
    descriptor: KernelDescriptor
    entry: int  # address of the first instruction
    instructions: list = field(default_factory=list)  # list[Instruction], in address order
    metadata: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Disassembly
# ---------------------------------------------------------------------------------------------------------------
def find_objdump() -> str:
    """llvm-objdump: $HKJIT_LLVM_OBJDUMP, then ROCm's llvm/bin, then Debian's llvm-22, then PATH."""
    from ...config import env_str
    env = env_str("HKJIT_LLVM_OBJDUMP")
    if env:
        if not Path(env).is_file():
            raise EmulatorError(f"HKJIT_LLVM_OBJDUMP={env} is not a file; point it at llvm-objdump (LLVM >= 18)")
        return env
    rocm = env_str("ROCM_PATH", "/opt/rocm")
    for cand in (f"{rocm}/llvm/bin/llvm-objdump", "/usr/lib/llvm-22/bin/llvm-objdump"):
        if Path(cand).is_file():
            return cand
    for name in ("llvm-objdump-22", "llvm-objdump"):
        p = shutil.which(name)
        if p:
            return p
    raise EmulatorError("no llvm-objdump found to disassemble the code object: set HKJIT_LLVM_OBJDUMP to one "
                        "(ROCm's llvm/bin/llvm-objdump or `apt-get install llvm-22`)")


_LINE = re.compile(r"^\s+([a-z_][\w.]*)(.*?)\s*//\s*([0-9A-Fa-f]+):\s*([0-9A-Fa-f ]+?)\s*(<.*>)?\s*$")


def disassemble(elf: bytes, mcpu: str = "gfx950", tools: Optional[str] = None) -> list[Instruction]:
    """Decoded instructions of .text, in address order (llvm-objdump's text, one record per instruction)."""
    objdump = tools or find_objdump()
    with tempfile.TemporaryDirectory(prefix="hkjit-emu-") as td:
        p = Path(td) / "co.o"
        p.write_bytes(elf)
        r = subprocess.run([objdump, "-d", f"--mcpu={mcpu}", str(p)], capture_output=True, text=True)
    if r.returncode != 0:
        raise EmulatorError(f"{objdump} failed ({r.returncode}): {r.stderr[-2000:]}")
    out = []
    for line in r.stdout.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        mnem, ops, addr, words = m.group(1), m.group(2), int(m.group(3), 16), m.group(4).split()
        words_i = [int(w, 16) for w in words]
        try:
            out.append(decode_line(mnem, ops.strip(), addr, words_i))
        except UnknownInstructionError as e:  # kept, and raised only if the instruction is executed
            out.append(Instruction(addr=addr, size=4 * len(words_i), mnemonic=mnem, op=f"<undecodable {mnem}>",
                                   enc="", operands=[], mods={}, text=f"{mnem} {ops.strip()}".strip(),
                                   words=words_i, error=str(e)))
    return out


class CodeObject:
    """A gfx950 code object: its kernels (descriptor, metadata, decoded instructions)."""

    def __init__(self, kernels: dict, instructions: list, elf: bytes, target: str) -> None:
        self.kernels: dict[str, KernelInfo] = kernels
        self.instructions: list[Instruction] = instructions
        self.elf = elf
        self.target = target
        self.index_of = {ins.addr: i for i, ins in enumerate(instructions)}

    @classmethod
    def from_elf(cls, elf_bytes: bytes, tools: Optional[str] = None) -> "CodeObject":
        """Parse `elf_bytes` (an AMDGPU code object); `tools` is an llvm-objdump path (default: find_objdump())."""
        data = bytes(elf_bytes)
        secs = _elf_sections(data)
        syms = _elf_symbols(data, secs)
        meta = _metadata(data, secs)
        target = meta.get("amdhsa.target", "")
        mcpu = target.rsplit("--", 1)[-1].split(":")[0] if "--" in target else "gfx950"
        instructions = disassemble(data, mcpu, tools)
        kernels = {}
        for k in meta.get("amdhsa.kernels", []):
            name = k[".name"]
            kd_sym = k.get(".symbol", name + ".kd")
            if kd_sym not in syms:
                raise EmulatorError(f"kernel {name}: descriptor symbol {kd_sym} missing from the code object")
            kd_addr, _ = syms[kd_sym]
            kd = KernelDescriptor.parse(_section_bytes_at(data, secs, kd_addr, 64))
            entry = kd_addr + kd.kernel_code_entry_byte_offset
            fval, fsize = syms.get(name, (entry, 0))
            end = fval + fsize if fsize and fval == entry else 1 << 64
            kernels[name] = KernelInfo(
                name=name, kernarg_size=k.get(".kernarg_segment_size", kd.kernarg_size), args=k.get(".args", []),
                group_segment_size=k.get(".group_segment_fixed_size", kd.group_segment_fixed_size),
                private_segment_size=k.get(".private_segment_fixed_size", kd.private_segment_fixed_size),
                vgpr_count=k.get(".vgpr_count", 0), agpr_count=k.get(".agpr_count", 0),
                sgpr_count=k.get(".sgpr_count", 0), wave64=k.get(".wavefront_size", 64) == 64, descriptor=kd,
                entry=entry, instructions=[i for i in instructions if entry <= i.addr < end], metadata=k)
        if not kernels:
            raise EmulatorError("the code object's metadata lists no kernels")
        return cls(kernels, instructions, data, target)

    @classmethod
    def from_file(cls, path, tools: Optional[str] = None) -> "CodeObject":
        return cls.from_elf(Path(path).read_bytes(), tools)

    def kernel(self, name: str) -> KernelInfo:
        if name in self.kernels:
            return self.kernels[name]
        hits = [k for k in self.kernels if name in k]
        if len(hits) == 1:
            return self.kernels[hits[0]]
        raise EmulatorError(f"no kernel {name!r} in the code object; it has {sorted(self.kernels)}")
