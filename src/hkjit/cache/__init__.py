"""The on-disk cache: its format and everything that reads or writes it, one module per concern.

    layout.py    every path under a cache root, spelled once (Layout(root): entries, staging, trash slots, failed
                 logs, validation and tuning records, locks and leases, the memo, the special folders)
    roots.py     where the caches are: the writable root (HKJIT_CACHE_DIR), the read-only layers
                 (HKJIT_CACHE_PATH), whether the root can take a build
    trust.py     whether a root, layer, entry or lock folder may be used: nobody but this user or root wrote it
    entry.py     one entry's life: manifest check, verification (Verdict, verify_entry), publish, move aside,
                 use stamps, listing, cleanup of dead builds' staging folders
    memo.py      the memo of facts that cost a subprocess or many reads (compiler versions, source and header
                 hashes), keyed by the stat signature of their files (toolchain.py computes them)
    lock.py      one build lock per entry, with a lease naming the holder (BuildLock, lock_dir)
    admin.py     ls / summary / details / verify / clear / prune / why, as plain functions (`python -m hkjit cache`)
    archive.py   export and import of entries as tar files, with every check an untrusted archive needs

A warm hit (loader.py) uses layout, roots, trust, memo and entry only: lock is imported for a build, admin and archive
(tarfile, the decompressors, dataclasses) only by the CLI and tools. This file holds no code, so importing one
module of the package costs only that module.
"""
