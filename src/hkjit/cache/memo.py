"""The memo (``Layout.memo``: ``<cache>/v1/memo.json``): facts that cost a subprocess or a read of many files.

The compiler's version, our sources' hashes and a header tree's hash (toolchain.py computes them) are recorded by
name with the stat signature of the files they come from, so a warm start in a fresh process costs a few stats,
not a ``--version`` run or a read of every header. Shared by processes through an atomically replaced file, read
once per process; a read-only cache keeps it in memory. The root's trust is checked before its memo is used
(loader, doctor: trust.check_root).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable


class Memo:
    """A small JSON memo (name -> [stat signature, value]) shared by processes through an atomically replaced
    file; read once per process."""

    _loaded: dict[str, dict[str, list]] = {}

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def _data(self) -> dict[str, list]:
        key = str(self.path)
        if key not in Memo._loaded:
            try:
                Memo._loaded[key] = json.loads(self.path.read_text()) if self.path else {}
            except (OSError, ValueError):
                Memo._loaded[key] = {}
        return Memo._loaded[key]

    def peek(self, name: str) -> tuple[str, Any] | None:
        """(signature, value) recorded for name, if any."""
        hit = self._data().get(name)
        return (hit[0], hit[1]) if isinstance(hit, list) and len(hit) == 2 else None

    def put(self, name: str, signature: str, value: Any) -> None:
        data = self._data()
        data[name] = [signature, value]
        if self.path is not None:
            from ..fsutil import atomic_write_text
            try:
                atomic_write_text(self.path, json.dumps(data, indent=0, sort_keys=True))
            except OSError:
                pass  # read-only cache: the memo stays in this process

    def get(self, name: str, signature: str, compute: Callable[[], str]) -> str:
        hit = self.peek(name)
        if hit is not None and hit[0] == signature:
            return hit[1]
        value = compute()
        self.put(name, signature, value)
        return value


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """A file's identity without reading it (inode, size, mtime, ctime): any write changes its ctime, which no
    user call can set back, so an unchanged identity means unchanged bytes."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stat_signature(path: str) -> str:
    return ":".join(map(str, file_identity(os.stat(path))))
