"""hkjit.gemm captured in a CUDA graph and replayed, for the sm_90a configurations whose launch does more than one
kernel: split-K (the GEMM writes fp32 partials into a stream-ordered pool workspace, a second kernel sums them) and
repack (a copy kernel moves an operand to a 128-byte row pitch first, into pool memory), plus the ping-pong
configuration, the 2-CTA cluster one (launched by cudaLaunchKernelEx with a cluster dimension) and the swapped
small-M ones (C^T = Bt . A^T, K split over CTA pairs that sum in distributed shared memory, transposed stores,
programmatic dependent launch: also chained calls, eagerly and in a graph). Timed in graphs by
tools/sm90a_standalone, never checked there through hkjit: a graph records the pool allocations and frees, so a
replay that reused a stale workspace or a copy made at capture time would give the captured inputs' product, which
these tests would see.

Each case: warm the configuration (built or loaded, validated) outside the capture, capture one call on static
inputs, then per replay write fresh random numbers into the static inputs, poison the output with NaN, replay,
and compare against float64 (relative error <= 1e-2); a second replay on the same inputs must give the same bits
(split-K sums its partials in a fixed order). The shapes are chosen so that the launcher's rules really take the
path: split-K only under 2 waves of tiles on the H200's 132 SMs, repack only for >= 1 wave of tiles and a row
pitch off the 128-byte grid (K = 7000 and 4104: 14000 and 8208 bytes). Needs a CUDA Hopper GPU and the sm_90a
toolchain (nvcc, ThunderKittens); `python -m hkjit warmup --config NAME` first saves the builds' minutes.
"""
from __future__ import annotations

import pytest
import torch

import hkjit
from hkjit.tuning import force_config
from helpers import TOL, rel_err


def _hopper() -> bool:
    return torch.cuda.is_available() and torch.version.cuda is not None and \
        torch.cuda.get_device_capability(0) == (9, 0)


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _hopper(), reason="needs a CUDA Hopper GPU (sm_90a) with the hkjit kernel")]

# (configuration, M, N, K, why this shape takes the configuration's special path)
CASES = [
    ("64x128-splitk", 128, 4096, 8192, "64 tiles of 64x128 on 132 SMs: split in K"),
    ("64x64-splitk", 64, 4096, 14336, "64 tiles: split in K, the deepest slices"),
    ("64x256-splitk", 16, 10240, 8192, "40 tiles, M = 16 (one ragged row block)"),
    ("64x128-splitk", 33, 4100, 4104, "ragged M, N % 8 != 0 edge (element-wise stores), K % 64 != 0"),
    ("128x256-repack", 3000, 5000, 7000, "480 tiles, row pitch 14000 B: A and Bt repacked"),
    ("128x256-repack", 4096, 4096, 4104, "512 tiles, row pitch 8208 B"),
    ("64x256-pingpong", 4096, 4096, 4096, "1024 tiles, 7-8 per CTA: both consumers take turns"),
    ("64x256-pingpong", 2050, 3000, 1000, "ragged M and K, 33 x 12 tiles: odd unit counts per CTA"),
    ("128x256-cluster2", 4096, 4096, 4096, "2-CTA clusters, Bt multicast (cudaLaunchKernelEx in the graph)"),
    ("128x256-cluster2", 2100, 3000, 1000, "17 tile rows: the last pair's second tile is past M"),
    ("16x64-swap", 16, 4096, 4096, "64 tiles of 64 Bt rows: CTA pairs split K, reduced in shared memory"),
    ("16x64-swap", 5, 4100, 4104, "M = 5 of the 16-wide side, N % 8 != 0, K % 64 != 0, pairs"),
    ("16x128-swap", 16, 10240, 8192, "80 tiles of 128 Bt rows: CTA pairs"),
    ("16x128-swap", 16, 40960, 1024, "320 tiles (>= 2 waves): no split, transposed stores, 2-3 tiles a CTA"),
]


@pytest.mark.parametrize("config,m,n,k,why", CASES, ids=[f"{c[0]}-{c[1]}x{c[2]}x{c[3]}" for c in CASES])
def test_graph_replay_of_forced_configuration(config, m, n, k, why):
    dev = "cuda"
    a = torch.empty(m, k, device=dev, dtype=torch.bfloat16)
    w = torch.empty(n, k, device=dev, dtype=torch.bfloat16)        # nn.Linear weight layout: B = w.t()
    gen = torch.Generator(device=dev).manual_seed(m * 7 + n * 3 + k)
    a.normal_(generator=gen)
    w.normal_(generator=gen)
    with hkjit.dispatch("kernel"), force_config(config):
        plan = hkjit.explain(a, w.t())
        assert plan.path == "kernel" and plan.config == config, plan
        warm = hkjit.gemm(a, w.t())                                  # built/loaded and validated before capture
        torch.cuda.synchronize()
        assert rel_err(warm, a.double() @ w.double().t()) <= TOL
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            c = hkjit.gemm(a, w.t())
    for _ in range(3):
        a.normal_(generator=gen)                                   # fresh data in the static inputs
        w.normal_(generator=gen)
        c.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        ref = a.double() @ w.double().t()
        assert rel_err(c, ref) <= TOL, f"{config} {m}x{n}x{k} ({why})"
        first = c.clone()
        c.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(first.view(torch.int16), c.view(torch.int16)), "second replay differs (a race?)"


# 16x64-swap launches with programmatic dependent launch (HKJIT_SM90A_PDL=1): a call may be scheduled
# before the call before it has finished, and only its wait keeps it from reading that call's output too early.
CHAINS = [("16x64-swap", 16, 4096), ("16x128-swap", 16, 10240)]


@pytest.mark.parametrize("config,m,n", CHAINS, ids=[f"{c[0]}-{c[1]}x{c[2]}" for c in CHAINS])
def test_back_to_back_calls_see_the_call_before(config, m, n):
    """Three calls with no synchronisation between them, eagerly and replayed in a graph: c1 = a w^T, c2 = c1 w^T
    (reads what the call before wrote), then d w^T written into a (overwrites what the first call read); outputs
    poisoned with NaN before each round, every result against float64 on the values it was computed from."""
    dev = "cuda"
    gen = torch.Generator(device=dev).manual_seed(m + n)
    a = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
    d = torch.empty_like(a)
    w = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
    c1, c2 = torch.empty_like(a), torch.empty_like(a)

    def calls():
        hkjit.gemm(a, w.t(), out=c1)
        hkjit.gemm(c1, w.t(), out=c2)
        hkjit.gemm(d, w.t(), out=a)

    def check(replay):
        for _ in range(3):
            a.normal_(generator=gen)
            d.normal_(generator=gen)
            w.normal_(generator=gen).div_(n ** 0.5)
            a0 = a.double()
            c1.fill_(float("nan"))
            c2.fill_(float("nan"))
            replay()
            torch.cuda.synchronize()
            w64 = w.double().t()
            assert rel_err(c1, a0 @ w64) <= TOL, f"{config}: the first call"
            assert rel_err(c2, c1.double() @ w64) <= TOL, f"{config}: read its input before the call before wrote it"
            assert rel_err(a, d.double() @ w64) <= TOL, f"{config}: the third call"

    with hkjit.dispatch("kernel"), force_config(config):
        assert hkjit.explain(a, w.t()).config == config
        calls()                                                      # built/loaded and validated before capture
        torch.cuda.synchronize()
        check(calls)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            calls()
    check(graph.replay)
