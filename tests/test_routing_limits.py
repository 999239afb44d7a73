"""Products hkjit must hand to torch instead of failing (issue #13, item 9): meta tensors (hkjit.Linear built under
``torch.device("meta")``), and on gfx950 rows wider than the kernel can address (a leading dimension >= 2^22)."""
from __future__ import annotations

import pytest
import torch

import hkjit
from hkjit.plan import make_plan
from hkjit.policy import MAX_LEADING_DIM, decide
from helpers import TOL, record, rel_err

pytestmark = pytest.mark.usefixtures("warm_session_cache")  # the CPU kernel built once for the suite

@pytest.mark.parametrize("mode", ["auto", "kernel"])
def test_linear_builds_and_runs_on_meta_then_materializes(mode):
    with hkjit.dispatch(mode):
        with torch.device("meta"):
            layer = hkjit.Linear(64, 48)
            y = layer(torch.empty(5, 7, 64, dtype=torch.bfloat16))
        assert layer.weight.is_meta and y.is_meta and y.shape == (5, 7, 48) and y.dtype == torch.bfloat16
        out = torch.empty(5, 48, dtype=torch.bfloat16, device="meta")
        assert hkjit.gemm(torch.empty(5, 64, dtype=torch.bfloat16, device="meta"), layer.weight.detach().t(),
                          out=out) is out
        assert hkjit.gemm(torch.empty(2, 5, 64, dtype=torch.bfloat16, device="meta"),
                          torch.empty(2, 64, 3, dtype=torch.bfloat16, device="meta")).shape == (2, 5, 3)
        plan = hkjit.explain(torch.empty(5, 64, dtype=torch.bfloat16, device="meta"), layer.weight.t())
        assert plan.path == "torch" and plan.rule == "meta"
        assert hkjit.prepare(layer.weight.t()) is not None
        layer = layer.to_empty(device="cpu")                 # materialize, then a real product on the kernel
        torch.nn.init.normal_(layer.weight)
        torch.nn.init.normal_(layer.bias)
        x = torch.randn(9, 64).bfloat16()
        ref = x.double() @ layer.weight.double().t() + layer.bias.double()
        assert rel_err(layer(x), ref) <= TOL
    record(f"meta: hkjit.Linear built and run under torch.device('meta') ({mode}) -> shapes, then materialized")


@pytest.mark.parametrize("mode", ["auto", "kernel"])
@pytest.mark.parametrize("n,k", [(1 << 22, 4096), (4096, 1 << 22), (4096, (1 << 22) - 7)])
def test_gfx950_rows_past_the_buffer_range_go_to_torch(mode, n, k):
    assert MAX_LEADING_DIM["gfx950"] == 1 << 22
    with hkjit.dispatch(mode):
        d = decide("gfx950", 8192, n, k)
    assert d.path == "torch" and d.rule == "leading-dim", d
    with hkjit.dispatch(mode):
        d = decide("gfx950", 8192, 4096, (1 << 22) - 8)      # the widest rows that fit
    assert d.rule != "leading-dim"


def test_gfx950_operand_with_a_wide_row_stride_is_copied_not_passed():
    """K and N fit but A's (or B's) row stride alone is >= 2^22: copied to compact rows (the plan says so)."""
    ld = 1 << 22
    wide = torch.empty(3, ld, dtype=torch.bfloat16)            # 24 MiB: two rows of stride 2^22
    a = wide[:, :256]
    b_ok = torch.empty(128, 256, dtype=torch.bfloat16).t()     # W.t() layout: no copy on its own
    with hkjit.dispatch("kernel"):
        plan = make_plan(a, b_ok, arch="gfx950")
        assert plan.path == "kernel" and plan.copy_a and not plan.copy_b and "row stride < 4194304" in plan.copies[0]
        plan = make_plan(torch.empty(64, 256, dtype=torch.bfloat16), wide[:, :256].t(), arch="gfx950")
        assert plan.copy_b and not plan.copy_a
        plan = make_plan(torch.empty(64, 256, dtype=torch.bfloat16), b_ok, arch="gfx950")
        assert not plan.copy_a and not plan.copy_b
    record("gfx950: N or K >= 2^22 routed to torch (also forced), a 2^22 row stride copied to compact rows")
