"""The cache key: a content hash of everything that can change a built module.

``key_inputs()`` gathers the inputs as a JSON-able dict (stored beside every entry as key.json, so a miss can be
explained later by `python -m hkjit cache why`), ``key_of()`` hashes its canonical JSON. Paths never enter the
key (content does), so the same sources give the same key from any folder or machine.

The loader asks ``resolve_key()``: the full key wherever the compiler and the header libraries are found; on a
node that only runs a pre-baked cache (neither there) the key of an entry whose key.json matches every input
that can be computed locally, the compiler identity and header hashes taken from that record.

Three facts cost a subprocess or reading files: the compiler's version, our kernel sources' hashes and a header
tree's hash. All are memoized on disk (``Layout.memo``: ``<cache>/v1/memo.json``) keyed by the stat signature (inode, size,
mtime, ctime) of the files they come from, so a warm start in a fresh process costs a few stats, not a
`--version` run or a read of every header. Content hashes are xxh3-128 (fast on megabytes; xxhash is imported
only when something must be hashed), the key and stat signatures are blake2b-128 from hashlib, which torch has
already imported: a warm start loads no hashing module.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import importlib.machinery
from pathlib import Path
from typing import Any, Callable

import torch

from .version import CACHE_FORMAT
# the build-affecting environment variables are the ones config.VARS marks (BUILD_ENV_VARS: importable from here)
from .config import BUILD_ENV_VARS, build_env  # noqa: F401
from .errors import MissingLibraryError
from .libraries import find_library, tree_hash, tree_listing
from .specs import KernelSpec, is_default_config, kernels_dir
from .targets import compiler_path, compiler_version, target_for_arch



def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def key_of(inputs: dict) -> str:
    return hashlib.blake2b(canonical(inputs), digest_size=16).hexdigest()


def file_hash(path: Path) -> str:
    import xxhash   # only when a file changed since it was last hashed (see Memo)
    return xxhash.xxh3_128_hexdigest(path.read_bytes())


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
            from .fsutil import atomic_write_text
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


def listing_signature(root: Path, dirs: list[str], files: list[str]) -> str | None:
    """The stat identity of a tree listing (libraries.tree_listing): inode, mtime and ctime of each folder (they
    change when an entry is added, removed or renamed) and each file's identity. None when a recorded path is
    gone."""
    base = str(root) + os.sep
    rows = []
    try:
        for rel in dirs:
            st = os.stat(base + rel)
            rows.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
        for rel in files:
            rows.append(file_identity(os.stat(base + rel)))
    except OSError:
        return None
    return hashlib.blake2b(repr((dirs, files, rows)).encode(), digest_size=16).hexdigest()


def torch_identity() -> dict:
    return {
        "version": torch.__version__,
        "git": getattr(torch.version, "git_version", ""),
        "hip": torch.version.hip or "",
        "cuda": torch.version.cuda or "",
        "cxx11abi": bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", True)),
    }


@functools.lru_cache(maxsize=None)
def _compiler_identity(arch: str, memo_path: str | None) -> str:
    path = os.path.realpath(compiler_path(target_for_arch(arch)))
    memo = Memo(Path(memo_path) if memo_path else None)
    return memo.get(f"compiler:{path}", stat_signature(path), lambda: compiler_version(path))


def source_hash(path: Path, memo_path: str | None) -> str:
    memo = Memo(Path(memo_path) if memo_path else None)
    return memo.get(f"file:{path}", stat_signature(str(path)), lambda: file_hash(path))


def library_hash(name: str, memo_path: str | None, root: str | None = None) -> str:
    inc = find_library(name, root)
    memo = Memo(Path(memo_path) if memo_path else None)
    name = f"tree:{inc}"
    hit = memo.peek(name)
    if hit is not None and isinstance(hit[1], dict):
        # A warm start stats the recorded folders and files (no directory walk): an added, removed or renamed
        # file changes its folder's mtime, an edit changes the file's own identity.
        if listing_signature(inc, hit[1]["dirs"], hit[1]["files"]) == hit[0]:
            return hit[1]["hash"]
    dirs, files = tree_listing(inc)
    signature = listing_signature(inc, dirs, files)
    value = {"hash": tree_hash(inc, files), "dirs": dirs, "files": files}
    memo.put(name, signature, value)
    return value["hash"]


def local_inputs(spec: KernelSpec, memo_path: Path | None = None, library_roots: dict[str, str] | None = None
                 ) -> tuple[dict, dict[str, MissingLibraryError]]:
    """The key inputs of `spec` as far as this machine can compute them, and the error of each one it cannot.

    Only two inputs can be missing: the compiler's identity (no compiler on PATH) and a header library's content
    hash (no checkout): the node that only runs a pre-baked cache has neither. Those fields are None / absent in
    the dict and named in the second value ("compiler", "libraries.<name>"); everything else (our own sources,
    flags, torch, Python, arch, cache format, build env) is always computable."""
    memo = str(memo_path) if memo_path else None
    kdir = kernels_dir()
    roots = library_roots or {}
    missing: dict[str, MissingLibraryError] = {}
    libraries = {}
    for lib in spec.libraries:
        try:
            libraries[lib] = library_hash(lib, memo, roots.get(lib))
        except MissingLibraryError as e:
            missing[f"libraries.{lib}"] = e
    try:
        compiler = _compiler_identity(spec.arch, memo)
    except MissingLibraryError as e:
        compiler = None
        missing["compiler"] = e
    inputs = {
        "format": CACHE_FORMAT,
        "kernel": spec.name,
        "arch": spec.arch,
        "files": {f: source_hash(kdir / f, memo) for f in spec.files},
        "libraries": libraries,
        "flags": {"cflags": list(spec.cflags), "device_cflags": list(spec.device_cflags),
                  "ldflags": list(spec.ldflags), "functions": list(spec.functions)},
        "compiler": compiler,
        "torch": torch_identity(),
        "python": importlib.machinery.EXTENSION_SUFFIXES[0],   # carries the SOABI; sysconfig costs ms
        "env": build_env(),
    }
    if not is_default_config(spec):
        # a configuration's defines are in the flags already (so in the key); its name is recorded too, for
        # `cache ls` / `cache why`. The default configuration adds no field: its keys are those of before.
        inputs["config"] = spec.config
    return inputs, missing


def key_inputs(spec: KernelSpec, memo_path: Path | None = None, library_roots: dict[str, str] | None = None) -> dict:
    """Everything that can change the module `spec` builds into, as a JSON-able dict (the full key: building
    needs it). Raises MissingLibraryError when the compiler or a header library is not found."""
    inputs, missing = local_inputs(spec, memo_path, library_roots)
    if missing:
        raise next(iter(missing.values()))
    return inputs


#: key -> the key inputs that were taken from a pre-baked entry's key.json instead of computed here (resolve_key)
_FROM_RECORD: dict[str, tuple[str, ...]] = {}


def from_record(key: str) -> tuple[str, ...]:
    """The inputs of `key` this process took on trust from the entry's record (empty: all were verified here);
    doctor and `cache why` report them."""
    return _FROM_RECORD.get(key, ())


def resolve_key(spec: KernelSpec, root: Path, library_roots: dict[str, str] | None = None) -> tuple[str, dict]:
    """(key, inputs) to look `spec` up with in the cache root and its read-only layers.

    Where the compiler and the header libraries are present this is the full key (key_inputs): a node that can
    build never takes an entry built with another compiler or other headers. Where some are absent (a node that
    only runs a cache pre-baked in CI: no hipcc, no HipKittens checkout) the key cannot be recomputed, so each
    entry of (arch, kernel) is matched by fields instead: every input computable here must equal the entry's
    key.json, and only the uncomputable ones (compiler identity, header content) are taken from that record
    (``from_record(key)`` names them). The entry must also verify (manifest, key.json hash, module checksum).
    Candidates are taken root first, then layers, in name order, so every node picks the same one. When none
    matches, the MissingLibraryError for the first absent input is raised, naming the nearest entry's mismatch."""
    from .cache.entry import verify_entry
    from .cache.layout import KEY_JSON, Layout, split_entry_name
    from .cache.roots import cache_layers
    from .cache.trust import trusted_layers
    inputs, missing = local_inputs(spec, Layout(root).memo, library_roots)
    if not missing:
        return key_of(inputs), inputs
    nearest: tuple[Path, list] | None = None
    for layer in [root] + trusted_layers([p for p in cache_layers() if p != root]):
        folder = Layout(layer).arch_dir(spec.arch)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            kernel, key = split_entry_name(name)
            if kernel != spec.name:
                continue
            try:
                recorded = json.loads((folder / name / KEY_JSON).read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(recorded, dict):
                continue
            diffs = [d for d in diff_inputs(recorded, inputs) if d[0] not in missing]
            if diffs:
                if nearest is None or len(diffs) < len(nearest[1]):
                    nearest = (folder / name, diffs)
                continue
            if any(recorded.get("libraries", {}).get(f.split(".", 1)[1]) is None
                   for f in missing if f.startswith("libraries.")) or \
                    ("compiler" in missing and not recorded.get("compiler")):
                continue                        # the record lacks what we would take from it
            if not verify_entry(folder / name, key, full=False, write_stamp=layer == root).ok:
                continue
            _FROM_RECORD[key] = tuple(sorted(missing))
            return key, recorded
    first = next(iter(missing.values()))
    where = ", ".join(str(p) for p in [root] + cache_layers())
    if nearest is None:
        detail = f"no pre-baked {spec.arch}/{spec.name} entry in {where} to run instead"
    else:
        shown = "; ".join(f"{f}: {_short(a)} (entry) != {_short(b)} (here)" for f, a, b in nearest[1][:4])
        detail = (f"no pre-baked {spec.arch}/{spec.name} entry matches this machine (nearest {nearest[0]} "
                  f"differs in {shown})")
    raise type(first)(f"{first}; {detail}") from None


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "..."


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def diff_inputs(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """(field, old value, new value) for every key input that differs: why a cache entry did not match."""
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
