"""selftest, bench and tune return data and never print (issue #15 item 4): progress goes to the `say` callback,
by default the "hkjit" logger at INFO; the text reports are the CLI's (hkjit.cli.selftest/bench/tune). In process,
on the session cache seeded with the built CPU entry."""
from __future__ import annotations

import json
import logging

import pytest

from hkjit import bench, selftest, tune
from hkjit.cli.bench import format_table
from hkjit.cli.selftest import format_row, format_summary
from hkjit.cli.tune import format_report


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def hkjit_log():
    """What the library logs on the "hkjit" logger at INFO (attached there: the CLI's set-up stops propagation)."""
    log = logging.getLogger("hkjit")
    handler, level = Lines(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.lines
    log.removeHandler(handler)
    log.setLevel(level)


def test_library_returns_data_and_logs_progress(warm_session_cache, capfd, hkjit_log):
    rep = bench.run([(8, 8, 8)], repeat=2)
    tuned = tune.tune([(8, 8, 8)], configs=["n64k256"], repeat=2, record=False)
    checked = selftest.selftest([selftest.Case(8, 8, 8)], arch="cpu", record=False)
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), "the library printed: progress must go through `say` / the hkjit logger"
    assert "bench [1/1] 8x8x8 ..." in hkjit_log and any(m.startswith("tune [1/1] 8x8x8") for m in hkjit_log)

    assert isinstance(rep, bench.BenchReport) and [r.shape for r in rep.rows] == ["8x8x8"]
    doc = json.loads(json.dumps(rep.to_json()))
    assert list(doc)[:3] == ["device", "arch", "kernel"] and doc["results"][0]["shape"] == "8x8x8"
    assert doc["warnings"] == rep.warnings and "rows" not in doc
    assert "8x8x8" in format_table(rep).splitlines()[3]

    assert tuned.rows[0].winner == "n64k256" and "n64k256" in format_report(tuned)
    assert checked.passed and checked.n_passed == 1 and checked.worst == checked.results[0].rel_err
    assert format_summary(checked).startswith("selftest: PASSED: 1/1 shapes")
    assert format_row(checked.results[0]).startswith("8x8x8")


def test_say_replaces_the_logger(warm_session_cache, hkjit_log):
    said: list[str] = []
    bench.run([(8, 8, 8)], repeat=1, say=said.append)
    assert said == ["bench [1/1] 8x8x8 ..."] and hkjit_log == []
