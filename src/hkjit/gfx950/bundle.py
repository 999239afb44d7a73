"""The AMD GPU code object inside a built HIP module: what `selftest --emulate` runs on the emulator.

A HIP shared object (the extension module hkjit builds with hipcc, or any clang HIP build) carries its device code
in the ELF section ``.hip_fatbin``: one clang offload bundle per translation unit with device code, each aligned
to 4 KiB. A bundle is either plain (magic ``__CLANG_OFFLOAD_BUNDLE__``, then an entry table: offset, size, target
triple) or compressed (magic ``CCOB``: a header, then zlib or zstd data that decompresses to a plain bundle).
The entry for a device has the triple ``hipv4-amdgcn-amd-amdhsa--<target id>``, e.g. ``...--gfx950`` or
``...--gfx950:sramecc+:xnack-``; its content is the code object (an ELF of e_machine EM_AMDGPU).

Python's standard library inflates zlib; zstd (clang's default when LLVM has it) is handed to
``clang-offload-bundler`` when one is found (HKJIT_OFFLOAD_BUNDLER, ROCm's llvm/bin, /usr/lib/llvm-*/bin), else
the error names it. Pure stdlib, no third-party parser: the formats are those of LLVM's OffloadBundler.cpp.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import HkjitError

PLAIN_MAGIC = b"__CLANG_OFFLOAD_BUNDLE__"
COMPRESSED_MAGIC = b"CCOB"
FATBIN_SECTION = ".hip_fatbin"
ELF_MAGIC = b"\x7fELF"
EM_AMDGPU = 224
_ZLIB, _ZSTD = 0, 1


class BundleError(HkjitError):
    """The file holds no usable code object for the requested target (or is not a HIP module at all)."""


@dataclass(frozen=True)
class BundleEntry:
    triple: str        # "hipv4-amdgcn-amd-amdhsa--gfx950" (kind-arch-vendor-os-env-target id)
    data: bytes

    @property
    def target_id(self) -> str:
        """'gfx950:sramecc+:xnack-' style target id (empty for the host entry)."""
        parts = self.triple.split("-", 5)
        return parts[5] if len(parts) == 6 else ""

    @property
    def processor(self) -> str:
        return self.target_id.split(":", 1)[0]


# --------------------------------------------------------------------------------------------------- ELF sections
def elf_sections(data: bytes) -> dict[str, bytes]:
    """Section name -> contents of a 64-bit little-endian ELF (NOBITS sections are empty)."""
    if data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise BundleError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shnum == 0:
        return {}
    heads = []
    for i in range(shnum):
        name, typ, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        heads.append((name, typ, off, size))
    _n, _t, str_off, str_size = heads[shstrndx]
    strtab = data[str_off:str_off + str_size]
    out = {}
    for name, typ, off, size in heads:
        sname = strtab[name:strtab.index(b"\0", name)].decode(errors="replace")
        out[sname] = b"" if typ == 8 else data[off:off + size]   # SHT_NOBITS
    return out


def elf_machine(data: bytes) -> int | None:
    if data[:4] != ELF_MAGIC or len(data) < 20:
        return None
    return struct.unpack_from("<H", data, 18)[0]


# --------------------------------------------------------------------------------------------------- bundles
def parse_plain_bundle(data: bytes, offset: int = 0) -> tuple[list[BundleEntry], int]:
    """Entries of the plain bundle at `offset`, and the bundle's end (the largest entry end)."""
    if data[offset:offset + len(PLAIN_MAGIC)] != PLAIN_MAGIC:
        raise BundleError(f"no offload bundle magic at offset {offset}")
    pos = offset + len(PLAIN_MAGIC)
    count, = struct.unpack_from("<Q", data, pos)
    pos += 8
    if count > 4096:
        raise BundleError(f"offload bundle at {offset} claims {count} entries: corrupt")
    entries, end = [], pos
    for _ in range(count):
        e_off, e_size, t_len = struct.unpack_from("<QQQ", data, pos)
        pos += 24
        triple = data[pos:pos + t_len].decode(errors="replace")
        pos += t_len
        start = offset + e_off
        if start + e_size > len(data):
            raise BundleError(f"offload bundle entry {triple} runs past the end of the data (truncated file?)")
        entries.append(BundleEntry(triple, bytes(data[start:start + e_size])))
        end = max(end, start + e_size, pos)
    return entries, end


def _find_bundler() -> str | None:
    """HKJIT_OFFLOAD_BUNDLER when set (and only it), else ROCm's, else one on PATH, else Debian's llvm-N."""
    from ..config import env_str
    if tool := env_str("HKJIT_OFFLOAD_BUNDLER"):
        return tool if os.path.isfile(tool) and os.access(tool, os.X_OK) else None
    cands = []
    for var in ("ROCM_PATH", "ROCM_HOME"):
        if home := env_str(var):
            cands.append(os.path.join(home, "llvm", "bin", "clang-offload-bundler"))
    cands += ["/opt/rocm/llvm/bin/clang-offload-bundler", shutil.which("clang-offload-bundler") or ""]
    cands += sorted(glob.glob("/usr/lib/llvm-*/bin/clang-offload-bundler"), reverse=True)
    return next((c for c in cands if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def _unbundle_with_tool(blob: bytes, triples: list[str] | None = None) -> bytes:
    """Decompress a CCOB bundle with clang-offload-bundler (-list, then -unbundle every entry), re-packed plain."""
    tool = _find_bundler()
    if tool is None:
        raise BundleError("the code object is a zstd-compressed offload bundle, which Python cannot inflate: install "
                          "clang-offload-bundler (ROCm's llvm/bin, or apt-get install clang-tools-22) or point "
                          "HKJIT_OFFLOAD_BUNDLER at it, or unpack it yourself with `clang-offload-bundler --unbundle "
                          "--type=o --targets=hipv4-amdgcn-amd-amdhsa--gfx950 --input=FILE --output=x.co`")
    with tempfile.TemporaryDirectory(prefix="hkjit-bundle-") as td:
        src = Path(td) / "in.bundle"
        src.write_bytes(blob)
        r = subprocess.run([tool, "--list", "--type=o", f"--input={src}"], capture_output=True, text=True)
        if r.returncode != 0:
            raise BundleError(f"{tool} --list failed: {r.stderr.strip()[-2000:]}")
        names = [t.strip() for t in r.stdout.splitlines() if t.strip()]
        outs = [Path(td) / f"e{i}" for i in range(len(names))]
        r = subprocess.run([tool, "--unbundle", "--type=o", f"--input={src}", f"--targets={','.join(names)}",
                            *[f"--output={o}" for o in outs]], capture_output=True, text=True)
        if r.returncode != 0:
            raise BundleError(f"{tool} --unbundle failed: {r.stderr.strip()[-2000:]}")
        return pack_plain_bundle([BundleEntry(n, o.read_bytes()) for n, o in zip(names, outs)])


def decompress_bundle(data: bytes, offset: int = 0) -> tuple[bytes, int]:
    """The plain bundle inside the CCOB bundle at `offset`, and the compressed bundle's end (when known).

    Header (little-endian): 'CCOB', u16 version, u16 method (0 zlib, 1 zstd), then version 1: u32 uncompressed
    size, u64 hash; version 2: u32 total size, u32 uncompressed size, u64 hash; version 3: u64 total size, u64
    uncompressed size, u64 hash. The hash is the low 64 bits of the MD5 of the uncompressed bundle."""
    if data[offset:offset + 4] != COMPRESSED_MAGIC:
        raise BundleError(f"no compressed offload bundle magic at offset {offset}")
    version, method = struct.unpack_from("<HH", data, offset + 4)
    if version == 1:
        (raw_size, digest), head, total = struct.unpack_from("<IQ", data, offset + 8), 20, None
    elif version == 2:
        total, raw_size, digest = struct.unpack_from("<IIQ", data, offset + 8)
        head = 24
    elif version == 3:
        total, raw_size, digest = struct.unpack_from("<QQQ", data, offset + 8)
        head = 32
    else:
        raise BundleError(f"compressed offload bundle version {version} is unknown to hkjit (knows 1-3): unpack it "
                          f"with clang-offload-bundler --unbundle and pass the code object")
    end = offset + total if total else len(data)
    payload = data[offset + head:end]
    if method == _ZLIB:
        try:
            raw = zlib.decompress(payload)
        except zlib.error as e:
            raise BundleError(f"compressed offload bundle at {offset}: zlib data is corrupt ({e})") from None
    elif method == _ZSTD:
        raw = _unbundle_with_tool(data[offset:end])
        return raw, end
    else:
        raise BundleError(f"compressed offload bundle at {offset}: unknown compression method {method}")
    if len(raw) != raw_size:
        raise BundleError(f"compressed offload bundle at {offset}: {len(raw)} bytes inflated, header says {raw_size}")
    if struct.unpack("<Q", hashlib.md5(raw).digest()[:8])[0] != digest:
        raise BundleError(f"compressed offload bundle at {offset}: hash mismatch (corrupt)")
    return raw, end


def pack_plain_bundle(entries: list[BundleEntry]) -> bytes:
    """A plain offload bundle of `entries` (the inverse of parse_plain_bundle; entries 8-byte aligned)."""
    head = len(PLAIN_MAGIC) + 8 + sum(24 + len(e.triple.encode()) for e in entries)
    offsets, pos = [], -(-head // 8) * 8
    for e in entries:
        offsets.append(pos)
        pos = -(-(pos + len(e.data)) // 8) * 8
    out = bytearray(PLAIN_MAGIC + struct.pack("<Q", len(entries)))
    for e, off in zip(entries, offsets):
        t = e.triple.encode()
        out += struct.pack("<QQQ", off, len(e.data), len(t)) + t
    for e, off in zip(entries, offsets):
        out += b"\0" * (off - len(out)) + e.data
    return bytes(out)


def bundles_in(blob: bytes) -> list[BundleEntry]:
    """Every entry of every bundle (plain or compressed) found in `blob` (a .hip_fatbin section or a bundle file)."""
    entries: list[BundleEntry] = []
    pos = 0
    while pos < len(blob):
        i_plain, i_comp = blob.find(PLAIN_MAGIC, pos), blob.find(COMPRESSED_MAGIC, pos)
        hits = [i for i in (i_plain, i_comp) if i >= 0]
        if not hits:
            break
        i = min(hits)
        if i == i_plain:
            found, pos = parse_plain_bundle(blob, i)
        else:
            raw, pos = decompress_bundle(blob, i)
            found, _ = parse_plain_bundle(raw)
        entries += found
    return entries


def entries_of_file(data: bytes) -> list[BundleEntry]:
    """The offload entries of a HIP module (.so with .hip_fatbin), a bundle file, or [a code object itself]."""
    if data.startswith(PLAIN_MAGIC) or data.startswith(COMPRESSED_MAGIC):
        return bundles_in(data)
    if data[:4] != ELF_MAGIC:
        raise BundleError("neither an ELF file nor an offload bundle")
    if elf_machine(data) == EM_AMDGPU:
        return [BundleEntry("hipv4-amdgcn-amd-amdhsa--", data)]   # target id read from the code object's flags
    sections = elf_sections(data)
    fatbin = sections.get(FATBIN_SECTION)
    if fatbin is None:
        raise BundleError(f"the ELF file has no {FATBIN_SECTION} section: not a HIP module with device code "
                          f"(sections: {', '.join(s for s in sections if s) or 'none'})")
    return bundles_in(fatbin)


_GFX_MACH = {0x4F: "gfx950", 0x4C: "gfx942"}   # EF_AMDGPU_MACH values (LLVM AMDGPUUsage)


def code_object_processor(co: bytes) -> str:
    """The processor a code object is built for, from e_flags' EF_AMDGPU_MACH (e.g. 'gfx950'); '' if unknown."""
    if elf_machine(co) != EM_AMDGPU:
        return ""
    flags, = struct.unpack_from("<I", co, 0x30)
    return _GFX_MACH.get(flags & 0xFF, "")


def extract_code_object(path_or_bytes, arch: str = "gfx950") -> bytes:
    """The `arch` code object in a HIP module (.so), an offload bundle, or a code object file.

    Raises BundleError naming what the file holds instead when there is none for `arch`, or several different
    ones (e.g. one per translation unit with device code: hkjit's module has exactly one)."""
    data = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, (str, os.PathLike)) else bytes(path_or_bytes)
    what = str(path_or_bytes) if isinstance(path_or_bytes, (str, os.PathLike)) else "the data"
    entries = entries_of_file(data)
    mine = [e for e in entries if e.processor == arch and e.triple.startswith(("hip", "hipv4", "openmp"))]
    mine += [e for e in entries if e.processor == "" and e.triple.endswith("--") and
             code_object_processor(e.data) == arch]
    mine = [e for e in mine if elf_machine(e.data) == EM_AMDGPU]
    distinct = list({e.data: e for e in mine}.values())
    if not distinct:
        have = ", ".join(e.triple + ("" if e.target_id else f" ({code_object_processor(e.data) or 'host'})")
                         for e in entries) or "no entries"
        raise BundleError(f"{what} holds no {arch} code object (found: {have}); build the module for "
                          f"--offload-arch={arch}")
    if len(distinct) > 1:
        raise BundleError(f"{what} holds {len(distinct)} different {arch} code objects "
                          f"({', '.join(e.triple for e in distinct)}): pass the one to check as a .o file")
    return distinct[0].data
