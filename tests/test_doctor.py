"""doctor: diagnose() returns data (a Report) built from the build requests; cli/doctor.py formats it."""
from __future__ import annotations

import json

from hkjit.cli.doctor import format_report
from hkjit.doctor import Report, diagnose
from hkjit.keys import key_inputs_of
from hkjit.specs import get_spec
from hkjit.toolchain import resolve

#: the --json document's top-level keys, in their order (scripts read them)
JSON_KEYS = ["hkjit", "python", "platform", "torch", "device", "target", "settings", "build_tools", "libraries",
             "archs", "runs_prebaked", "cache", "env", "problems", "ok"]


def test_diagnose_returns_a_report_that_formats_and_serializes():
    report = diagnose(["cpu"])
    assert isinstance(report, Report)
    doc = report.to_json()
    assert list(doc) == JSON_KEYS
    assert json.loads(json.dumps(doc))["problems"] == [p.to_json() for p in report.problems]
    text = format_report(report)
    assert text.splitlines()[0].startswith("hkjit ") and "toolchains" in text and "\ndoctor: " in text


def test_doctor_reports_the_build_request():
    """The compiler identity and header hash doctor shows are the ones the key hashes (one resolution, not a
    second derivation: `--version` of the real file, the header tree's content hash)."""
    report = diagnose(["cpu", "gfx950"])
    cpu = key_inputs_of(resolve(get_spec("cpu")))
    assert report.archs["cpu"]["compiler"]["version"] == cpu["compiler"]
    assert report.archs["cpu"]["compiler"]["path"] == resolve(get_spec("cpu")).compiler
    hip = resolve(get_spec("gfx950"))
    lib = report.libraries["hipkittens"]
    if hip.libraries[0].hash is None:
        assert lib["found"] is False and lib["error"] == hip.libraries[0].error
    else:
        assert lib["found"] and lib["hash"] == key_inputs_of(hip)["libraries"]["hipkittens"]
        assert lib["path"] == hip.libraries[0].include_dir


def test_a_misspelt_hkjit_variable_is_named_with_the_likely_one(monkeypatch):
    """HKJIT_CAHCE_DIR is silently ignored by everything else: doctor names it, and the variable it resembles."""
    monkeypatch.setenv("HKJIT_CAHCE_DIR", "/tmp/somewhere")
    monkeypatch.setenv("HKJIT_NOT_A_SETTING_AT_ALL", "1")
    report = diagnose(["cpu"])
    notes = {p.what: p for p in report.problems}
    typo, other = notes["HKJIT_CAHCE_DIR"], notes["HKJIT_NOT_A_SETTING_AT_ALL"]
    assert not typo.blocking and "did you mean HKJIT_CACHE_DIR?" in typo.fix and "no effect" in typo.message
    assert not other.blocking and "did you mean" not in other.fix
    monkeypatch.delenv("HKJIT_CAHCE_DIR")
    monkeypatch.delenv("HKJIT_NOT_A_SETTING_AT_ALL")
    assert not any(p.what.startswith("HKJIT_CAHCE") for p in diagnose(["cpu"]).problems)
