"""Reusing the kernel-layout copy of a weight across calls, keyed on what torch records about writes.

The seed keyed its Bᵀ cache on ``id(B)``: stale after ``B.add_(...)``, and wrong when Python reuses the id of a
freed tensor. Here an entry is keyed on (storage pointer, offset, version counter, shape, strides, device, dtype)
and holds only a *weak* reference to the tensor that owns the storage (the view's base): in-place updates bump the
version (a miss), a freed weight drops its entry (its weakref dies), and a new tensor at the same address is a
different owner object. Memory is bounded (HKJIT_PREPARED_CACHE_MB, least recently used evicted first; 0 turns
the reuse off).

What the key can trust is the version counter, shared by a tensor, its views and ``.detach()``: torch bumps it
for every in-place op and ``out=``, and hkjit bumps it for what its kernels write through a data pointer
(plan._written). Writes that bypass the counter — through ``.data`` (a new counter), the storage, NumPy/DLPack
views, foreign kernels — cannot be seen by any key short of hashing the weight, which costs as much as the copy
it would save: for such weights use ``hkjit.prepare`` (the explicit form) or set HKJIT_PREPARED_CACHE_MB=0.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Callable

import torch

from .config import env_float


def _owner(t: torch.Tensor) -> torch.Tensor:
    return t._base if t._base is not None else t


def cache_key(t: torch.Tensor, layout: tuple) -> tuple | None:
    """None where the tensor cannot be keyed safely (inference tensors have no version counter)."""
    if t.is_inference() or (t.is_cuda and torch.cuda.is_current_stream_capturing()):
        return None
    return (t.untyped_storage().data_ptr(), t.storage_offset(), t._version, tuple(t.shape), tuple(t.stride()),
            str(t.device), t.dtype, layout)


class PreparedCache:
    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = int(env_float("HKJIT_PREPARED_CACHE_MB", 1024) * 2**20) if max_bytes is None else max_bytes
        self._entries: OrderedDict[tuple, tuple[weakref.ref, torch.Tensor]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, t: torch.Tensor, layout: tuple, make: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """(prepared tensor, whether it came from the cache)."""
        key = cache_key(t, layout)
        if key is None:
            return make(), False
        owner = _owner(t)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0]() is owner:
                self._entries.move_to_end(key)
                self.hits += 1
                return hit[1], True
        value = make()
        self.misses += 1
        size = value.untyped_storage().nbytes()
        if size > self.max_bytes:
            return value, False
        with self._lock:
            self._drop(key)
            ref = weakref.ref(owner, lambda _r: self._forget(key))
            self._entries[key] = (ref, value)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                self._drop(next(iter(self._entries)))
        return value, False

    def _drop(self, key: tuple) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[1].untyped_storage().nbytes()

    def _forget(self, key: tuple) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0]() is None:
                self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes


PREPARED = PreparedCache()
