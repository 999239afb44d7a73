"""What an entry's manifest.json may name: the one check shared by the loader, `cache verify` and `cache import`.

The manifest tells the loader which file to import (``module_file``) under which name (``module_name``). An entry
is a folder of plain files, so ``module_file`` must be a plain file name inside it: an absolute path or a path with
a folder would make the loader import a file the entry's checksum never covered ("/some/where/evil.so" — the
checksum would then be of that file, written by whoever wrote the manifest). This module imports nothing heavy:
cache.verify_entry, on every warm start's path, calls it.
"""
from __future__ import annotations

import re

from .layout import ENTRY_FILES
_PLAIN_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def manifest_problem(manifest: dict, entry_name: str | None = None, arch: str | None = None) -> str:
    """Why `manifest` may not be used for the entry folder `entry_name` (``<kernel>-<key>``) under `arch`; ""
    when it may. Checks the names only: sizes and checksums are cache.verify_entry's."""
    module_file = manifest.get("module_file")
    if not isinstance(module_file, str) or not _PLAIN_FILE.match(module_file) or module_file in ENTRY_FILES \
            or not module_file.endswith((".so", ".pyd")):
        return (f"manifest names module file {module_file!r}, not a plain .so/.pyd file name inside the entry "
                f"(refused: the loader would import a file outside what the entry's checksum covers)")
    module_name = manifest.get("module_name")
    if not isinstance(module_name, str) or not _MODULE_NAME.match(module_name) \
            or not module_file.startswith(module_name):
        return f"manifest names module {module_name!r}, not the Python name of {module_file!r}"
    if entry_name is not None:
        kernel, _, key = entry_name.rpartition("-")
        if manifest.get("kernel", kernel) != kernel or manifest.get("key", key) != key:
            return (f"manifest of {manifest.get('kernel')}-{manifest.get('key')} in the folder of {entry_name} "
                    f"(moved or renamed)")
    if arch is not None and manifest.get("arch", arch) != arch:
        return f"manifest of an entry for {manifest.get('arch')} filed under {arch}"
    return ""
