"""The call path runs one way (issue #15, item 3): a call is routed once, the route is handed down to the launch,
and planning (hkjit.explain) is pure — it never imports the loader or the launch.

The checks trace real calls (sys.setprofile) and count how often the routing functions run: no mocks."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import hkjit
from hkjit import routing, tuning
from helpers import TOL, child_env, rand, record, rel_err

pytestmark = pytest.mark.usefixtures("warm_session_cache")  # the CPU kernel built once for the suite

ROUTING = {("policy", "decide"), ("tuning", "choose_config"), ("targets", "detect_target"), ("routing", "route"),
           ("specs", "config_spec"), ("checks", "check_operands")}


def traced_calls(fn) -> list[tuple[str, str]]:
    """(module, function) of every hkjit function entered while fn() runs."""
    calls: list[tuple[str, str]] = []

    def prof(frame, event, arg):
        mod = frame.f_globals.get("__name__", "")
        if event == "call" and mod.startswith("hkjit."):
            calls.append((mod.removeprefix("hkjit."), frame.f_code.co_name))

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_a_shape_is_routed_once_and_later_calls_only_look_the_route_up():
    m, n, k = 37 + torch.randint(0, 50, ()).item(), 29, 83     # a fresh shape: not routed yet in this process
    a, w = rand(m, k), rand(n, k)
    ref = a.double() @ w.double().t()
    with hkjit.dispatch("kernel"):
        assert routing.lookup(a, w.t()) is None
        first = traced_calls(lambda: hkjit.gemm(a, w.t()))
        route = routing.lookup(a, w.t())
        outs = []
        later = traced_calls(lambda: outs.extend(hkjit.gemm(a, w.t()) for _ in range(5)))
    assert route is not None and route.path == "kernel" and (route.m, route.n, route.k) == (m, n, k)
    for what in ROUTING - {("specs", "config_spec")}:
        assert first.count(what) == 1, (what, first.count(what))
    assert not ROUTING & set(later), sorted(ROUTING & set(later))      # five calls, no routing work at all
    assert later.count(("routing", "lookup")) == 5
    assert all(rel_err(c, ref) <= TOL for c in outs)
    record("routing: a new shape routed once (decide, choose_config, detect_target, check once each), "
           "5 later calls = 5 route lookups and no routing work")


def test_the_route_depends_on_the_mode_and_the_forced_configuration():
    a, b = rand(40, 64), rand(64, 24)
    with hkjit.dispatch("torch"):
        assert hkjit.gemm(a, b) is not None
        assert routing.lookup(a, b).path == "torch"
    with hkjit.dispatch("kernel"):
        assert routing.lookup(a, b) is None or routing.lookup(a, b).path == "kernel"
        hkjit.gemm(a, b)
        default = routing.lookup(a, b)
        other = next(c.name for c in hkjit.specs.configs_for("cpu") if c.name != default.spec.config)
        with tuning.force_config(other):
            plan = hkjit.explain(a, b)             # routes (memoized) without building the other configuration
            forced = routing.lookup(a, b)
    assert default.path == "kernel" and forced.spec.config == other != default.spec.config
    assert forced.config_rule == "forced" and plan.config == other and plan.config_rule == "forced"
    tuning.forget()                                # a new tuning record: every route chosen from the old is dropped
    assert routing.lookup(a, b) is None
    record(f"routing: the route follows hkjit.dispatch and force_config ({default.spec.config} -> {other}); "
           "tuning.forget drops the memo")


def test_explain_reports_the_route_gemm_takes():
    a, w = rand(70, 130), rand(50, 130)
    with hkjit.dispatch("kernel"):
        plan = hkjit.explain(a, w.t())
        hkjit.gemm(a, w.t())
        r = routing.lookup(a, w.t())
    assert (plan.path, plan.rule, plan.config, plan.config_rule, plan.k_padded) == (
        r.path, r.rule, r.spec.config, r.config_rule, r.k_padded)


def test_explaining_a_call_never_imports_the_loader_or_the_launch(warm_session_cache):
    code = textwrap.dedent("""
        import sys, torch, hkjit
        a = torch.randn(300, 200).bfloat16(); b = torch.randn(200, 100).bfloat16()
        plan = hkjit.explain(a, b)
        loaded = sorted(m for m in ("hkjit.loader", "hkjit.launch", "hkjit.builder", "hkjit.api") if m in sys.modules)
        print(plan.path, plan.config, loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=child_env(warm_session_cache), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "kernel" and out.stdout.strip().endswith("[]"), out.stdout
    record("routing: hkjit.explain in a fresh process imports neither the loader, the launch nor the builder")
