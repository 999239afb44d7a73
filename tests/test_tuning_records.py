"""Tuning records written by two processes at once keep both writers' winners (read, merge and replace run under
the record's lock): real processes, a real filesystem, the merge window widened by fault injection."""
from __future__ import annotations

import json
import subprocess
import sys

from hkjit.cache.layout import Layout
from helpers import child_env, record

WRITE = """
import sys
from pathlib import Path
from hkjit import tuning
tuning.write_winners("cpu", "test-device", {sys.argv[2]: {"config": "n64k256", "ms": {"n64k256": 1.0}}},
                     root=Path(sys.argv[1]))
"""


def test_two_concurrent_tune_writers_both_keep_their_winners(tmp_path):
    env = child_env(tmp_path, HKJIT_TEST_FAULT="pause_tuning_merge")
    shapes = ["64x64x64", "128x32x256"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITE, str(tmp_path), s], env=env, stderr=subprocess.PIPE,
                              text=True) for s in shapes]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    files = list(Layout(tmp_path).tuning_dir.glob("cpu/*.json"))
    assert len(files) == 1, files
    winners = json.loads(files[0].read_text())["winners"]
    assert sorted(winners) == sorted(shapes), f"a writer's winners were lost: {sorted(winners)}"
    record("tuning: two `tune` writers at once (merge window widened to 1.5 s) -> both shapes in the record")


def test_listing_reads_each_record_once_without_following_links(tmp_path):
    """`cache ls` lists a planted symlink and a corrupt file as unusable (never follows the link), a good record
    as ok."""
    proc = subprocess.run([sys.executable, "-c", WRITE, str(tmp_path), "64x64x64"], env=child_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from hkjit.tuning import iter_records
    arch_dir = Layout(tmp_path).tuning_dir / "cpu"
    good = next(arch_dir.glob("*.json"))
    secret = tmp_path / "elsewhere.json"
    secret.write_text(good.read_text())
    (arch_dir / "planted.json").symlink_to(secret)
    (arch_dir / "torn.json").write_text(good.read_text()[:40])
    status = {p.rsplit("/", 1)[-1]: info["status"] for info in iter_records([(tmp_path, True)]) for p in [info["path"]]}
    assert status[good.name] == "ok", status
    assert status["planted.json"].startswith("unreadable"), status      # O_NOFOLLOW: the link is refused
    assert status["torn.json"].startswith("not JSON"), status
    record("tuning: cache ls lists a planted symlink record as unreadable and a torn one as not JSON, one read each")
