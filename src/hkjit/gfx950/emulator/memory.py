"""Global memory as byte buffers at 64-bit device addresses, and raw buffer resource descriptors.

Why: the kernel reaches memory only through 128-bit buffer resources (base, stride, num_records) and scalar
loads of its kernarg segment; the emulator gives each allocation its own numpy byte array so that an address
outside every allocation is seen (a fault on hardware) instead of silently reading a neighbour.
"""
from __future__ import annotations

import bisect
from typing import Optional, Union

import numpy as np

from .errors import EmulatorError

_FIRST = 0x1_0000_0000  # first allocation; never 0, well inside the 48-bit buffer base range
_GUARD = 0x10000        # unmapped gap after every allocation, so overruns fault instead of hitting a neighbour


class GlobalMemory:
    """Zero-filled allocations; `alloc` returns the device address."""

    def __init__(self) -> None:
        self._bases: list[int] = []
        self._arrays: list[np.ndarray] = []
        self._next = _FIRST

    def alloc(self, nbytes: int, align: int = 256) -> int:
        if nbytes < 0:
            raise EmulatorError(f"alloc({nbytes}): size must be >= 0")
        if align <= 0 or align & (align - 1):
            raise EmulatorError(f"alloc(align={align}): alignment must be a power of two")
        base = (self._next + align - 1) & ~(align - 1)
        self._bases.append(base)
        self._arrays.append(np.zeros(max(nbytes, 1), np.uint8)[:nbytes] if nbytes else np.zeros(0, np.uint8))
        self._next = base + nbytes + _GUARD
        if self._next >= 1 << 48:
            raise EmulatorError("emulated global memory exhausted the 48-bit address space")
        return base

    def find(self, addr: int) -> Optional[tuple[int, np.ndarray]]:
        """(allocation base, its byte array) holding `addr`, or None."""
        i = bisect.bisect_right(self._bases, addr) - 1
        if i < 0:
            return None
        base, arr = self._bases[i], self._arrays[i]
        return (base, arr) if addr < base + arr.size else None

    def _span(self, addr: int, nbytes: int) -> tuple[np.ndarray, int]:
        if nbytes == 0:
            return np.zeros(0, np.uint8), 0
        hit = self.find(addr)
        if hit is None or addr + nbytes > hit[0] + hit[1].size:
            raise EmulatorError(f"global address 0x{addr:x} (+{nbytes} bytes) is outside every allocation")
        return hit[1], addr - hit[0]

    def write(self, addr: int, data: Union[bytes, bytearray, memoryview, np.ndarray]) -> None:
        raw = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else \
            np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        arr, off = self._span(addr, raw.size)
        arr[off:off + raw.size] = raw

    def read(self, addr: int, nbytes: int) -> bytes:
        arr, off = self._span(addr, nbytes)
        return arr[off:off + nbytes].tobytes()

    def read_array(self, addr: int, dtype, count: int) -> np.ndarray:
        """A copy of `count` elements of `dtype` at `addr`."""
        dt = np.dtype(dtype)
        return np.frombuffer(self.read(addr, dt.itemsize * count), dt).copy()

    def write_array(self, addr: int, values: np.ndarray) -> None:
        self.write(addr, np.ascontiguousarray(values))


class BufferResource:
    """A buffer resource descriptor V# (4 dwords; AMD CDNA3/CDNA4 ISA "Buffer Resource"):
    base = w0 | w1[15:0] << 32, stride = w1[29:16], swizzle_enable = w1[31], num_records = w2,
    add_tid_enable = w3[23]."""

    __slots__ = ("base", "stride", "num_records", "swizzle", "add_tid")

    def __init__(self, words) -> None:
        w0, w1, w2, w3 = (int(x) & 0xFFFFFFFF for x in words)
        self.base = w0 | (w1 & 0xFFFF) << 32
        self.stride = (w1 >> 16) & 0x3FFF
        self.swizzle = bool(w1 >> 31 & 1)
        self.num_records = w2
        self.add_tid = bool(w3 >> 23 & 1)
