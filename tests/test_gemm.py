"""hkjit.gemm semantics, errors, layouts, prepared weights, dispatch, torch.compile, autograd, Linear.

Every product runs through the real path (spec -> key -> lock -> build -> load -> call): on this machine the CPU
reference kernel; the `gpu` variants run the same tests on a CUDA/ROCm device. Inputs are fresh random numbers,
outputs are compared with a float64 reference by relative Frobenius error.
"""
from __future__ import annotations

import gc

import pytest
import torch

import hkjit
from hkjit.prepared import PREPARED
from helpers import DEVICES, TOL, rand, rel_err

pytestmark = pytest.mark.usefixtures("warm_session_cache")  # the CPU kernel built once for the suite

@pytest.fixture(autouse=True)
def force_kernel():
    """These tests exercise the kernel; the policy's own choices are tested separately."""
    with hkjit.dispatch("kernel"):
        yield


SHAPES = [(1, 1, 1), (3, 70, 5), (257, 193, 255), (64, 192, 300), (0, 5, 4), (4, 0, 3), (5, 6, 0),
          (130, 260, 4160)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_shapes(device, m, n, k):
    a, b = rand(m, k, device=device), rand(k, n, device=device)
    c = hkjit.gemm(a, b)
    assert c.shape == (m, n) and c.dtype == torch.bfloat16 and c.device == a.device and c.is_contiguous()
    ref = a.double() @ b.double()
    if c.numel():
        if k == 0:
            assert (c == 0).all()
        else:
            assert rel_err(c, ref) <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_leading_dims_flattened(device):
    a, b = rand(2, 3, 8, device=device), rand(8, 5, device=device)
    c = hkjit.gemm(a, b)
    assert c.shape == (2, 3, 5) and c.is_contiguous()
    assert rel_err(c, a.double() @ b.double()) <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_batched_b_broadcasts_like_matmul(device):
    a, b = rand(2, 1, 33, 40, device=device), rand(3, 40, 17, device=device)
    c = hkjit.gemm(a, b)
    assert c.shape == torch.matmul(a, b).shape == (2, 3, 33, 17)
    assert rel_err(c, a.double() @ b.double()) <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_transposed_view_b_is_read_without_copy(device):
    w = rand(72, 320, device=device)            # nn.Linear weight layout (N, K); 16-byte rows (K, N % 8 == 0)
    a = rand(64, 320, device=device)
    plan = hkjit.explain(a, w.t())
    assert plan.path == "kernel" and plan.copies == ()
    misses = PREPARED.misses
    c = hkjit.gemm(a, w.t())
    assert PREPARED.misses == misses, "a transposed-view B must not be copied"
    assert rel_err(c, a.double() @ w.double().t()) <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_a(device):
    base = rand(50, 2 * 96, device=device)
    a = base[:, ::2]                             # column stride 2: must be copied into rows
    assert not a.is_contiguous()
    b = rand(96, 40, device=device)
    assert any("A copied" in c for c in hkjit.explain(a, b).copies)
    assert rel_err(hkjit.gemm(a, b), a.double() @ b.double()) <= TOL
    at = rand(96, 50, device=device).t()         # a transposed A: also copied, also right
    assert rel_err(hkjit.gemm(at, b), at.double() @ b.double()) <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_out_argument_and_poisoned_output(device):
    a, b = rand(37, 64, device=device), rand(64, 29, device=device)
    out = torch.full((37, 29), float("nan"), dtype=torch.bfloat16, device=device)
    res = hkjit.gemm(a, b, out=out)
    assert res is out
    assert rel_err(out, a.double() @ b.double()) <= TOL
    strided = torch.full((37, 64), float("nan"), dtype=torch.bfloat16, device=device)[:, :29]
    hkjit.gemm(a, b, out=strided)
    assert rel_err(strided, a.double() @ b.double()) <= TOL
    with pytest.raises(ValueError, match="out must be"):
        hkjit.gemm(a, b, out=torch.empty(29, 37, dtype=torch.bfloat16, device=device))


def test_errors_name_the_problem_and_fix():
    a, b = rand(4, 8), rand(8, 3)
    for mode in ("kernel", "torch"):         # these shapes succeed first: the per-shape route memo of the eager
        with hkjit.dispatch(mode):           # path must never let a changed argument skip its check
            assert rel_err(hkjit.gemm(a, b), a.double() @ b.double()) <= TOL
            if torch.cuda.is_available():
                hkjit.gemm(a.cuda(), b.cuda())
                with pytest.raises(ValueError, match="move both to one device"):
                    hkjit.gemm(a.cuda(), b)
    with pytest.raises(TypeError, match=r"bfloat16.*\.bfloat16\(\)"):
        hkjit.gemm(a.float(), b)
    with pytest.raises(TypeError, match="B is torch.float16"):
        hkjit.gemm(a, b.half())
    with pytest.raises(ValueError, match="1-D"):
        hkjit.gemm(a[0], b)
    with pytest.raises(ValueError, match=r"cannot be multiplied \(4x8 and 7x3\)"):
        hkjit.gemm(a, rand(7, 3))
    with pytest.raises(ValueError, match="do not broadcast"):
        hkjit.gemm(rand(2, 4, 8), rand(3, 8, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        hkjit.gemm([[1.0]], b)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="move both to one device"):
            hkjit.gemm(a, b.cuda())


def test_unsupported_arch_names_the_supported_ones():
    from hkjit.errors import UnsupportedTargetError
    from hkjit.targets import target_for_arch
    with pytest.raises(UnsupportedTargetError, match="gfx950.*sm_90a"):
        target_for_arch("gfx942")


def test_missing_hipkittens_names_the_variable(monkeypatch, tmp_path):
    from hkjit.errors import MissingLibraryError
    from hkjit.libraries import find_library
    monkeypatch.setenv("HIPKITTENS_ROOT", str(tmp_path))
    with pytest.raises(MissingLibraryError, match="HIPKITTENS_ROOT"):
        find_library("hipkittens")


@pytest.mark.parametrize("device", DEVICES)
def test_inplace_mutation_of_b_gives_new_result(device):
    a, b = rand(40, 64, device=device), rand(64, 30, device=device)   # (K, N) contiguous: copied and cached
    c1 = hkjit.gemm(a, b)
    hits = PREPARED.hits
    c1b = hkjit.gemm(a, b)
    assert PREPARED.hits == hits + 1 and torch.equal(c1, c1b)
    b.add_(1.0)
    c2 = hkjit.gemm(a, b)
    assert rel_err(c2, a.double() @ b.double()) <= TOL
    assert not torch.equal(c1, c2)


@pytest.mark.parametrize("device", DEVICES)
def test_freed_b_and_new_tensor_at_same_address(device):
    a = rand(40, 64, device=device)
    found_same_address = False
    for _ in range(20):
        b = rand(64, 30, device=device)
        ptr = b.data_ptr()
        hkjit.gemm(a, b)
        del b
        gc.collect()
        b2 = rand(64, 30, device=device)      # often lands at the freed address, with version counter 0 again
        found_same_address |= b2.data_ptr() == ptr
        assert rel_err(hkjit.gemm(a, b2), a.double() @ b2.double()) <= TOL
        if found_same_address:
            break
    assert found_same_address, "the allocator never reused the address; the test proved nothing"


def test_prepared_cache_holds_no_strong_reference_and_is_bounded():
    from hkjit.prepared import PreparedCache
    cache = PreparedCache(max_bytes=3 * 64 * 64 * 2)
    weights = [rand(64, 64) for _ in range(5)]
    for w in weights:
        cache.get(w, ("bt",), lambda w=w: w.t().contiguous())
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes      # LRU bound
    del weights, w
    gc.collect()
    assert len(cache) == 0                                           # freed weights drop their entries


@pytest.mark.parametrize("device", DEVICES)
def test_prepare_gives_the_no_copy_layout(device):
    b = rand(64, 48, device=device)
    p = hkjit.prepare(b)
    assert torch.equal(p, b) and p.stride(0) == 1
    assert hkjit.explain(rand(8, 64, device=device), p).copies == ()
    assert hkjit.prepare(p) is p                 # already in the kernel's layout: returned as it is
    a = rand(33, 64, device=device)
    assert rel_err(hkjit.gemm(a, p), a.double() @ b.double()) <= TOL


def test_dispatch_policy_and_overrides(monkeypatch):
    from hkjit.policy import decide
    with hkjit.dispatch("auto"):
        assert decide("sm_90a", 64, 64, 64).rule == "tiny"
        assert decide("sm_90a", 8192, 8192, 8192).rule == "deep-square"       # 128x192 tiles: 1.03x
        assert decide("sm_90a", 4096, 4096, 4096).rule == "parity"            # 1.00x: cuBLAS kept
        assert decide("sm_90a", 8192, 10240, 8192).rule == "parity"           # N outside the measured win
        assert decide("sm_90a", 4097, 4095, 4096).rule == "unaligned"         # cuBLAS is slow there: kernel
        assert decide("sm_90a", 128, 28672, 8192).rule == "decode-wide"       # 1.11x
        assert decide("sm_90a", 256, 28672, 4096).rule == "decode-wide-256"   # 128x224 tiles: 1.03-1.05x
        assert decide("sm_90a", 256, 16384, 8192).rule == "parity"            # not measured at M > 128
        assert decide("sm_90a", 256, 30720, 4096).rule == "parity"            # 128x224 would make 3 waves
        assert decide("sm_90a", 64, 28672, 8192).rule == "parity"             # 0.98-1.00x: cuBLAS kept
        assert decide("sm_90a", 512, 28672, 8192).rule == "parity"            # M > 256: prefill, at parity
        assert decide("sm_90a", 64, 8192, 28672).rule == "decode-deep"        # split-K 1.07x
        assert decide("sm_90a", 64, 8192, 8192).rule == "decode-64-8k"        # 64x64-splitk: 1.04x
        assert decide("sm_90a", 64, 8192, 4096).rule == "tiny"                # K under the measured class
        assert decide("sm_90a", 56, 8192, 16384).rule == "parity"             # M < 64: not measured
        assert decide("sm_90a", 64, 8456, 8192).rule == "parity"              # 64x64 tiles: a second wave
        assert decide("sm_90a", 64, 4096, 14336).rule == "tiny"               # under 2^32; split-K 1.00-1.02x: parity
        assert decide("sm_90a", 16, 28672, 4096).rule == "tiny"
        assert decide("sm_90a", 16, 10240, 8192).rule == "decode-16-wide"    # 16x128-swap: 1.05-1.08x
        assert decide("sm_90a", 16, 8192, 28672).rule == "decode-16-deep"    # 16x64-swap: 1.01-1.06x
        assert decide("sm_90a", 8, 10240, 8192).rule == "tiny"               # M <= 8: not measured
        assert decide("sm_90a", 16, 10240, 4096).rule == "tiny"              # K under the measured class
        assert decide("sm_90a", 16, 6144, 4096).rule == "tiny"               # 0.96-0.99x: cuBLAS kept
        assert decide("sm_90a", 3000, 5000, 7000).rule == "parity"            # K % 64 != 0: 0.77x repacked
        assert decide("sm_90a", 4097, 4095, 4096).path == "kernel"
        assert decide("gfx950", 8192, 8192, 8192).path == "kernel"
        assert decide("cpu", 3, 4, 5).path == "kernel"
        assert decide("cpu", 0, 4, 5).path == "empty"
    monkeypatch.setenv("HKJIT_DISPATCH", "torch")
    with hkjit.dispatch("auto"):
        assert decide("sm_90a", 8192, 8192, 8192).path == "kernel"      # the context manager wins
    assert decide("sm_90a", 4096, 4096, 4096).path == "kernel"          # (autouse fixture forces kernel)
    a, b = rand(8, 16), rand(16, 4)
    with hkjit.dispatch("torch"):
        plan = hkjit.explain(a, b)
        assert plan.path == "torch" and "forced" in plan.rule
        assert rel_err(hkjit.gemm(a, b), a.double() @ b.double()) <= TOL
    with pytest.raises(ValueError, match="auto, kernel, torch"):
        with hkjit.dispatch("fast"):
            pass


def test_explain_reports_copies_and_kernel():
    plan = hkjit.explain(rand(10, 20), rand(20, 30))
    assert plan.path == "kernel" and plan.kernel == "gemm_bf16" and plan.arch == "cpu"
    assert any("Bᵀ" in c for c in plan.copies)
    assert "kernel gemm_bf16 for cpu" in str(plan)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    def f(x, w):
        return torch.relu(hkjit.gemm(x, w.t())) * 2

    compiled = torch.compile(f, fullgraph=True)
    x, w = rand(65, 96, device=device), rand(48, 96, device=device)
    ref = torch.relu(x.double() @ w.double().t()) * 2
    assert rel_err(compiled(x, w), ref) <= TOL
    assert rel_err(compiled(x, w), f(x, w).double()) <= TOL


def test_torch_routed_calls_are_plain_matmul_in_eager_and_autograd():
    """A product the policy sends to torch is torch.matmul itself (torch's autograd, no custom op); under
    torch.compile the op stays in the graph whatever the policy says, and decides at run time."""
    from torch._dynamo.testing import CompileCounterWithBackend
    x, w = rand(40, 64).requires_grad_(), rand(24, 64).requires_grad_()
    with hkjit.dispatch("torch"):
        y = hkjit.gemm(x, w.t())
        assert "MmBackward" in type(y.grad_fn).__name__           # torch's node, not hkjit::gemm's
        y.float().sum().backward()
    with hkjit.dispatch("kernel"):
        y2 = hkjit.gemm(x, w.t())
        assert "MmBackward" not in type(y2.grad_fn).__name__
    assert rel_err(y, x.double() @ w.double().t()) <= TOL and rel_err(y2, y.double()) <= TOL
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("eager")
    with hkjit.dispatch("torch"), torch.no_grad():
        z = torch.compile(lambda x, w: hkjit.gemm(x, w.t()), fullgraph=True, backend=counter)(x, w)
    assert any("hkjit.gemm" in str(n.target) for g in counter.graphs for n in g.graph.nodes)
    assert rel_err(z, y.double()) <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_match_float64(device):
    a64 = torch.randn(3, 33, 40, dtype=torch.float64, device=device)
    b64 = torch.randn(40, 20, dtype=torch.float64, device=device)
    a = a64.bfloat16().requires_grad_()
    b = b64.bfloat16().requires_grad_()
    g = torch.randn(3, 33, 20, dtype=torch.float64, device=device)
    (hkjit.gemm(a, b).double() * g).sum().backward()
    ar, br = a.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    (ar @ br * g).sum().backward()
    assert rel_err(a.grad, ar.grad) <= TOL and rel_err(b.grad, br.grad) <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_batched_b(device):
    a = rand(2, 1, 9, 16, device=device).requires_grad_()
    b = rand(3, 16, 7, device=device).requires_grad_()
    hkjit.gemm(a, b).float().sum().backward()
    ar, br = a.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    (ar @ br).sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    assert rel_err(a.grad, ar.grad) <= TOL and rel_err(b.grad, br.grad) <= TOL


def test_out_rejects_autograd():
    a = rand(4, 8).requires_grad_()
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        hkjit.gemm(a, rand(8, 3), out=torch.empty(4, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("device", DEVICES)
def test_linear_drop_in(device):
    ref = torch.nn.Linear(96, 40, device=device, dtype=torch.bfloat16)
    layer = hkjit.Linear.from_linear(ref)
    x = rand(4, 7, 96, device=device)
    y = layer(x)
    expected = x.double() @ ref.weight.double().t() + ref.bias.double()
    assert y.shape == (4, 7, 40) and rel_err(y, expected) <= TOL
    y.float().sum().backward()
    assert ref.weight.grad is not None and ref.weight.grad.shape == (40, 96)
    fresh = hkjit.Linear(96, 40, bias=False, device=device)
    assert fresh.weight.dtype == torch.bfloat16 and fresh.bias is None
    assert rel_err(fresh(x), x.double() @ fresh.weight.double().t()) <= TOL


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU")
def test_graph_capture_with_warm_kernel_and_current_stream():
    a, b = rand(4096, 4096, device="cuda"), rand(4096, 4096, device="cuda")
    w = b.t().contiguous()
    hkjit.gemm(a, w.t())                               # warm: built/loaded and validated before capture
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):                      # runs on the current (side) stream
        c_side = hkjit.gemm(a, w.t())
    torch.cuda.current_stream().wait_stream(side)
    assert rel_err(c_side, a.double() @ b.double()) <= TOL
    graph = torch.cuda.CUDAGraph()
    static_a = a.clone()
    with torch.cuda.graph(graph):
        static_c = hkjit.gemm(static_a, w.t())
    static_a.copy_(rand(4096, 4096, device="cuda"))
    graph.replay()
    torch.cuda.synchronize()
    assert rel_err(static_c, static_a.double() @ b.double()) <= TOL


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU")
def test_graph_capture_cache_miss_raises_clear_error(tmp_path, monkeypatch):
    from hkjit.errors import CaptureError
    from hkjit.loader import forget_loaded
    monkeypatch.setenv("HKJIT_CACHE_DIR", str(tmp_path))     # an empty cache: the kernel is not built
    forget_loaded()
    a = rand(2048, 2048, device="cuda")
    graph = torch.cuda.CUDAGraph()
    try:
        with pytest.raises(CaptureError, match="warmup"):
            with torch.cuda.graph(graph):
                hkjit.gemm(a, a)
    finally:
        forget_loaded()


def test_unhashable_or_foreign_arguments_get_the_type_error():
    class Odd:
        shape = dtype = device = []            # attributes present but unhashable: the route memo steps aside
    with pytest.raises(TypeError, match="torch.Tensor"):
        hkjit.gemm(Odd(), rand(8, 3))
