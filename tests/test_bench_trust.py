"""Honest tables (issue 17.6): bench reports how far its timed calls spread and warns when the medians cannot be
trusted; --plot without matplotlib says so once; `cache ls` says "unverified" for an entry it did not checksum
(a flipped byte shows only to --verify)."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers import child_env, copy_cache

from hkjit import bench
from hkjit.cli.bench import have_matplotlib
from hkjit.cache.entry import iter_entries
from hkjit.cache.layout import MANIFEST


def _row(shape: tuple[int, int, int], spread: float) -> bench.BenchRow:
    return bench.BenchRow(*shape, 1.0, 1.0, 1.0, 1.0, 1.0, "kernel", "kernel", 1.0, 1.0, 10, 3, spread)


def test_spread_measures_disturbed_calls():
    steady = [1.0e-3, 1.02e-3, 0.99e-3, 1.01e-3, 1.0e-3, 1.03e-3, 0.98e-3, 1.0e-3, 1.01e-3, 1.0e-3]
    disturbed = steady[:6] + [20e-3, 0.5e-3, 15e-3, 1.0e-3]    # calls that waited for the CPU
    assert bench.spread(steady) < 0.1
    assert bench.spread(disturbed) > bench.MAX_SPREAD
    assert bench.spread([1e-3]) == 0.0
    assert bench.trust_warnings([_row((64, 64, 64), 0.2)], load=0.3, cpus=2) == []
    warned = bench.trust_warnings([_row((64, 64, 64), 0.2), _row((128, 128, 128), 3.5)], load=0.3, cpus=2)
    assert len(warned) == 1 and "128x128x128" in warned[0] and "64x64x64" not in warned[0] and "350%" in warned[0]
    assert any("load average is 9" in w for w in bench.trust_warnings([_row((8, 8, 8), 0)], load=9.0, cpus=2))


def test_bench_reports_spread_and_plot_error_once(built_cache, tmp_path):
    root = copy_cache(built_cache, tmp_path / "cache")
    env = child_env(root)
    p = subprocess.run([sys.executable, "-m", "hkjit", "bench", "--shapes", "64x64x64", "--repeat", "4", "--json"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    r, = doc["results"]
    assert r["spread"] >= 0 and isinstance(doc["warnings"], list) and doc["cpus"] and "load" in doc
    p = subprocess.run([sys.executable, "-m", "hkjit", "bench", "--shapes", "64x64x64", "--repeat", "2", "--plot",
                        str(tmp_path / "b.png")], env=env, capture_output=True, text=True, timeout=300)
    assert "spread" in p.stdout and "64x64x64" in p.stdout
    if have_matplotlib():
        assert p.returncode == 0
    else:
        assert p.returncode == 2
        lines = [ln for ln in p.stderr.splitlines() if "matplotlib" in ln]
        assert len(lines) == 1 and lines[0].startswith("hkjit: error:"), p.stderr


def test_cache_ls_does_not_call_an_unchecked_entry_ok(built_cache, tmp_path):
    root = copy_cache(built_cache, tmp_path / "flipped")
    entry = next(e for _a, _k, _key, e in iter_entries(root))
    module = entry / json.loads((entry / MANIFEST).read_text())["module_file"]
    data = bytearray(module.read_bytes())
    data[len(data) // 3] ^= 0x40
    module.write_bytes(bytes(data))

    def ls(*extra: str) -> dict:
        p = subprocess.run([sys.executable, "-m", "hkjit", "cache", "ls", "--json", *extra], env=child_env(root),
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)["entries"][0]

    assert ls()["status"] == "unverified"
    assert "checksum" in ls("--verify")["status"]
    p = subprocess.run([sys.executable, "-m", "hkjit", "cache", "ls"], env=child_env(root), capture_output=True,
                       text=True, timeout=300)
    assert " ok" not in p.stdout and "unverified" in p.stdout and "--verify" in p.stdout, p.stdout
