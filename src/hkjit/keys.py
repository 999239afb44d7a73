"""The cache key: a content hash of everything that can change a built module.

The inputs are a pure function of the build request (toolchain.BuildRequest, resolved once per lookup): the
builder builds that same record, so what is hashed is what is built. ``key_inputs_of(request)`` gives the
inputs as a JSON-able dict (stored beside every entry as key.json, so a miss can be explained later by
`python -m hkjit cache why`), ``key_of()`` hashes its canonical JSON. Paths never enter the key (content does:
our sources' and the header libraries' hashes), so the same sources give the same key from any folder or machine.

The loader asks ``resolve_key()``: the full key wherever the compiler and the header libraries are found; on a
node that only runs a pre-baked cache (neither there) the key of an entry whose key.json matches every input
that can be computed locally, the compiler identity and header hashes taken from that record. The key and stat
signatures are blake2b-128 from hashlib, which torch has already imported: a warm start loads no hashing module.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .version import CACHE_FORMAT
from .errors import MissingLibraryError
from .specs import KernelSpec, is_default_config
from .toolchain import BuildRequest, resolve


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def key_of(inputs: dict) -> str:
    return hashlib.blake2b(canonical(inputs), digest_size=16).hexdigest()


def key_inputs_of(request: BuildRequest) -> dict:
    """The key inputs of a build request, as far as this machine could resolve them: an absent compiler is None,
    an absent header library has no "libraries" entry (request.missing names both). Everything the builder hands
    to load_inline is here: the spec's flags and functions; the extra flags and the compiler variables through
    "env"; each include dir through the content of what it holds ("files": our sources and headers,
    "libraries": each header library); the compiler through its identity."""
    spec = request.spec
    inputs = {
        "format": CACHE_FORMAT,
        "kernel": spec.name,
        "arch": spec.arch,
        "files": {s.name: s.hash for s in request.sources},
        "libraries": {lib.name: lib.hash for lib in request.libraries if lib.hash is not None},
        "flags": {"cflags": list(request.cflags), "device_cflags": list(request.device_cflags),
                  "ldflags": list(request.ldflags), "functions": list(request.functions)},
        "compiler": request.compiler_version,
        "torch": dict(request.torch),
        "python": request.python,
        "env": dict(request.env),
    }
    if not is_default_config(spec):
        # a configuration's defines are in the flags already (so in the key); its name is recorded too, for
        # `cache ls` / `cache why`. The default configuration adds no field: its keys are those of before.
        inputs["config"] = spec.config
    return inputs


def key_inputs(spec: KernelSpec, memo_path: Path | None = None) -> dict:
    """The full key inputs of `spec` here (building needs them). Raises MissingLibraryError when the compiler or
    a header library is not found."""
    request = resolve(spec, memo_path)
    if request.missing:
        raise MissingLibraryError(request.missing[0][1])
    return key_inputs_of(request)


#: key -> the key inputs that were taken from a pre-baked entry's key.json instead of computed here (resolve_key)
_FROM_RECORD: dict[str, tuple[str, ...]] = {}


def from_record(key: str) -> tuple[str, ...]:
    """The inputs of `key` this process took on trust from the entry's record (empty: all were verified here);
    doctor and `cache why` report them."""
    return _FROM_RECORD.get(key, ())


def entry_key(spec: KernelSpec, root: Path | None = None) -> tuple[str, dict]:
    """(key, inputs) of spec in root (default: the cache root): the full key where the compiler and headers are
    here, else a pre-baked entry's key matched by field (resolve_key)."""
    from .cache.layout import Layout
    from .cache.roots import cache_root
    root = root or cache_root()
    return resolve_key(resolve(spec, Layout(root).memo), root)


def resolve_key(request: BuildRequest, root: Path) -> tuple[str, dict]:
    """(key, inputs) to look `request.spec` up with in the cache root and its read-only layers.

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
    from .cache.trust import search_roots
    spec = request.spec
    inputs = key_inputs_of(request)
    missing = dict(request.missing)
    if not missing:
        return key_of(inputs), inputs
    nearest: tuple[Path, list] | None = None
    searched = search_roots(root)
    for layer in searched:
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
    first = request.missing[0][1]
    where = ", ".join(str(p) for p in searched)
    if nearest is None:
        detail = f"no pre-baked {spec.arch}/{spec.name} entry in {where} to run instead"
    else:
        shown = "; ".join(f"{f}: {_short(a)} (entry) != {_short(b)} (here)" for f, a, b in nearest[1][:4])
        detail = (f"no pre-baked {spec.arch}/{spec.name} entry matches this machine (nearest {nearest[0]} "
                  f"differs in {shown})")
    raise MissingLibraryError(f"{first}; {detail}") from None


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
