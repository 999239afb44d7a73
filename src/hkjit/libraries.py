"""Finding the header libraries kernels include (HipKittens, ThunderKittens) and hashing their content.

Third-party code stays out of the repository: a library is found through its environment variable, then its documented default places (DEFAULT_PLACES: home and /opt; never a path relative to the
package or to a development machine). The cache key takes the *content* of its include tree, never its path,
so two checkouts in different folders give the same key and an edited header gives a new one.
"""
from __future__ import annotations

import os
from pathlib import Path

from .config import env_str
from .errors import MissingLibraryError
from .records import Record


class Library(Record):
    """name: "hipkittens" | "thunderkittens"; env_var: the variable users set; marker: a file that must exist
    under the include dir; url: where to get it."""
    __slots__ = ("name", "env_var", "marker", "url")
    name: str
    env_var: str
    marker: str
    url: str


LIBRARIES = {
    "hipkittens": Library("hipkittens", "HIPKITTENS_ROOT", "kittens.cuh", "https://github.com/HazyResearch/HipKittens"),
    "thunderkittens": Library("thunderkittens", "THUNDERKITTENS_ROOT", "kittens.cuh",
                              "https://github.com/HazyResearch/ThunderKittens"),
}

#: The documented default places of a checkout when its variable is unset (config.VARS says the same): nothing
#: relative to this package, so an installed hkjit never looks into whatever happens to lie beside it.
DEFAULT_PLACES = {
    "hipkittens": ("~/HipKittens", "/opt/HipKittens"),
    "thunderkittens": ("~/ThunderKittens", "/opt/ThunderKittens"),
}


def _known_places(name: str) -> list[str]:
    return list(DEFAULT_PLACES[name])


def _include_dir(root: Path, marker: str) -> Path | None:
    for cand in (root / "include", root):
        if (cand / marker).is_file():
            return cand
    return None


def find_library(name: str) -> Path:
    """The include directory of library `name` (the folder holding kittens.cuh).

    Order: the library's environment variable, then its documented places. Raises MissingLibraryError naming
    the variable to set."""
    lib = LIBRARIES[name]
    explicit = env_str(lib.env_var)
    candidates = [explicit] if explicit else _known_places(name)
    for cand in candidates:
        found = _include_dir(Path(os.path.expanduser(cand)), lib.marker)
        if found is not None:
            return found.resolve()
    if explicit:
        raise MissingLibraryError(f"{lib.env_var}={explicit} has no {lib.marker} (in it or in its include/); "
                                  f"point it at a {lib.name} checkout ({lib.url})")
    raise MissingLibraryError(f"{lib.name} headers not found: clone {lib.url} and set {lib.env_var} to it "
                              f"(looked in {', '.join(candidates)}); `python -m hkjit doctor` shows what was found")


def tree_listing(root: Path) -> tuple[list[str], list[str]]:
    """(folders, regular files) under root as sorted posix paths relative to root; "" is root itself.

    os.scandir with plain strings (no pathlib): it runs whenever a tree's recorded signature no longer matches."""
    base = str(root)
    cut = len(base) + 1
    dirs, files = [""], []
    stack = [base]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                rel = entry.path[cut:].replace(os.sep, "/")
                if entry.is_dir():
                    dirs.append(rel)
                    stack.append(entry.path)
                elif entry.is_file():
                    files.append(rel)
    return sorted(dirs), sorted(files)


def tree_hash(root: Path, files: list[str] | None = None) -> str:
    """xxh3_128 over (relative path, content) of every file: location-independent content identity."""
    import xxhash   # only when the tree's signature changed (toolchain.library_hash)
    h = xxhash.xxh3_128()
    for rel in files if files is not None else tree_listing(root)[1]:
        with open(os.path.join(str(root), rel), "rb") as f:
            data = f.read()
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()
