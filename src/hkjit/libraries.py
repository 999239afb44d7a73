"""Finding the header libraries kernels include (HipKittens, ThunderKittens) and hashing their content.

Third-party code stays out of the repository: a library is found through its environment variable (or an
argument), then a list of known locations. The cache key takes the *content* of its include tree, never its path,
so two checkouts in different folders give the same key and an edited header gives a new one.
"""

import hashlib
import os
from typing import NamedTuple
from pathlib import Path

from .errors import MissingLibraryError

_REPO = Path(__file__).resolve().parents[2]


class Library(NamedTuple):
    name: str            # "hipkittens" | "thunderkittens"
    env_var: str         # the variable users set
    marker: str          # a file that must exist under the include dir
    url: str             # where to get it


LIBRARIES = {
    "hipkittens": Library("hipkittens", "HIPKITTENS_ROOT", "kittens.cuh", "https://github.com/HazyResearch/HipKittens"),
    "thunderkittens": Library("thunderkittens", "THUNDERKITTENS_ROOT", "kittens.cuh",
                              "https://github.com/HazyResearch/ThunderKittens"),
}

_KNOWN_PLACES = {
    "hipkittens": ["~/HipKittens", "/opt/HipKittens", "/root/agent/HipKittens", str(_REPO.parent / "HipKittens"),
                   str(_REPO.parent / "shared/toolchain/HipKittens")],
    "thunderkittens": ["~/ThunderKittens", "/opt/ThunderKittens", str(_REPO.parent / "ThunderKittens"),
                       str(_REPO / ".carry/ThunderKittens"), str(_REPO.parent / "shared/toolchain/ThunderKittens")],
}


def _include_dir(root: Path, marker: str) -> Path | None:
    for cand in (root / "include", root):
        if (cand / marker).is_file():
            return cand
    return None


def find_library(name: str, root: str | os.PathLike | None = None) -> Path:
    """The include directory of library `name` (the folder holding kittens.cuh).

    Order: `root` argument, the library's environment variable, known locations. Raises MissingLibraryError naming
    the variable to set."""
    lib = LIBRARIES[name]
    explicit = root or os.environ.get(lib.env_var)
    candidates = [explicit] if explicit else _KNOWN_PLACES[name]
    for cand in candidates:
        found = _include_dir(Path(os.path.expanduser(cand)), lib.marker)
        if found is not None:
            return found.resolve()
    if explicit:
        raise MissingLibraryError(f"{lib.env_var}={explicit} has no {lib.marker} (in it or in its include/); "
                                  f"point it at a {lib.name} checkout ({lib.url})")
    raise MissingLibraryError(f"{lib.name} headers not found: clone {lib.url} and set {lib.env_var} to it "
                              f"(looked in {', '.join(candidates)}); `python -m hkjit doctor` shows what was found")


def _walk(root: Path):
    """DirEntry of every regular file under root, in no particular order (os.scandir, plain strings)."""
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir():
                    stack.append(entry.path)
                elif entry.is_file():
                    yield entry


def tree_files(root: Path) -> list[tuple[str, str]]:
    """(posix relative path, absolute path) of every regular file under root, sorted."""
    cut = len(str(root)) + 1
    return sorted((e.path[cut:].replace(os.sep, "/"), e.path) for e in _walk(root))


def tree_signature(root: Path) -> str:
    """The stat identity (path, inode, size, mtime, ctime) of every file under root, hashed.

    Runs on every warm start (keys.library_hash) in place of reading the headers: one walk, one stat a file.
    Any edit, added, removed or renamed file changes it; then the tree is hashed again."""
    rows = []
    for e in _walk(root):
        st = e.stat()
        rows.append(f"{e.path}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}")
    rows.sort()
    return hashlib.blake2b("\n".join(rows).encode(), digest_size=16).hexdigest()


def tree_hash(root: Path) -> str:
    """xxh3_128 over (relative path, content) of every file: location-independent content identity."""
    import xxhash   # only when the tree's signature changed (keys.library_hash)
    h = xxhash.xxh3_128()
    for rel, path in tree_files(root):
        with open(path, "rb") as f:
            data = f.read()
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()
