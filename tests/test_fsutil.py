"""fsutil's one chunked hasher (module checksums and archive digests both use it) and its filesystem probes, and
config's size format; real files under tmp_path, fresh random bytes each run."""
from __future__ import annotations

import hashlib
import os

import pytest
import xxhash

from hkjit.fsutil import file_xxh3
from hkjit.config import env_size, human_size, parse_size
from hkjit.errors import ConfigError
from hkjit.fsutil import free_space, hash_file, hash_stream, nearest_existing, writable


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, (1 << 20) + 17, 3 << 20])
def test_hash_file_matches_the_whole_file_digest(tmp_path, size):
    """Across the 1 MiB chunk boundary: the chunked digest is the digest of all the bytes."""
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert hash_file(path, hashlib.sha256()) == hashlib.sha256(data).hexdigest()
    assert file_xxh3(path) == xxhash.xxh3_128(data).hexdigest()
    with open(path, "rb") as f:             # what is left of an open file: archive import hashes what it reads
        f.seek(size // 2)
        assert hash_stream(f, hashlib.sha256()) == hashlib.sha256(data[size // 2:]).hexdigest()


def test_probes_look_at_the_nearest_existing_folder(tmp_path):
    missing = tmp_path / "not" / "yet"
    assert nearest_existing(missing) == tmp_path
    assert writable(missing) and free_space(missing) is not None and free_space(missing) > 0
    (tmp_path / "file").write_text("x")
    assert not writable(tmp_path / "file")          # a file is no folder to create one in
    assert list(tmp_path.iterdir()) == [tmp_path / "file"], "a probe left a file behind"


def test_sizes(monkeypatch):
    assert [parse_size(t) for t in ("123", "500M", "2G", "1.5GiB", " 4 kb ")] == \
        [123, 500 << 20, 2 << 30, 3 << 29, 4 << 10]
    assert human_size(512) == "512 B" and human_size(3 << 29) == "1.5 GiB"
    with pytest.raises(ValueError, match="500M"):
        parse_size("lots")
    monkeypatch.setenv("HKJIT_IMPORT_MAX_BYTES", "4M")
    assert env_size("HKJIT_IMPORT_MAX_BYTES", 1) == 4 << 20
    monkeypatch.setenv("HKJIT_IMPORT_MAX_BYTES", "junk")
    with pytest.raises(ConfigError, match="HKJIT_IMPORT_MAX_BYTES='junk'"):
        env_size("HKJIT_IMPORT_MAX_BYTES", 1)
    monkeypatch.delenv("HKJIT_IMPORT_MAX_BYTES")
    assert env_size("HKJIT_IMPORT_MAX_BYTES", 7) == 7
