"""How bench times (issue #16): which host calls are timed, the GPU's queue put ahead of the host before each round,
and --graph timing graph replays, in which no host code of the timed function runs. The GPU tests run under
`pytest -m gpu` on a device; here the CPU path and --graph's refusal on a machine without a GPU run."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from helpers import child_env

from hkjit import bench

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA/ROCm GPU (run `pytest -m gpu` there)")


class Counter:
    """A timed function that counts its host calls and which input set each got."""

    def __init__(self) -> None:
        self.sets: list[int] = []

    def __call__(self, i: int) -> None:
        self.sets.append(i)


def test_eager_timing_calls_every_function_repeat_times_in_rotated_rounds():
    fns = [Counter(), Counter()]
    samples = bench._median_seconds([(None, f) for f in fns], torch.device("cpu"), repeat=20, warmup=1, sets=3,
                                    rounds=5)
    for f, s in zip(fns, samples):
        # warm-up touches every input set once, then 5 rounds of 4 timed calls, each timed on its own
        assert f.sets == [0, 1, 2] + [0, 1, 2, 0] * 5 and len(s) == 20 and all(t >= 0 for t in s)


def test_graph_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --graph runs (test_graph_replays_run_no_host_code)")
    with pytest.raises(bench.UnsupportedTargetError, match="--graph .* needs a GPU"):
        bench.run([(8, 8, 8)], graph=True)
    p = subprocess.run([sys.executable, "-m", "hkjit", "bench", "--graph", "--shapes", "8x8x8"], env=child_env(),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)
    assert p.stderr.startswith("hkjit: error: --graph") and "Traceback" not in p.stderr, p.stderr


@pytest.mark.gpu
@GPU
def test_graph_replays_run_no_host_code():
    """Under graph=True the function's host code runs at warm-up and once per input set at capture, never while
    timing: what is timed is the replays alone. Each sample is per call (a replay holds `sets` calls)."""
    device = torch.device("cuda", torch.cuda.current_device())
    a = torch.randn(512, 512, device=device, dtype=torch.bfloat16)
    f = Counter()

    def fn(i: int) -> None:
        f(i)
        torch.matmul(a, a)

    samples, = bench._median_seconds([(None, fn)], device, repeat=30, warmup=2, sets=3, rounds=5, graph=True)
    assert f.sets == [0, 1, 2] + [0, 1, 2]
    assert len(samples) == 5 * 2 and all(t > 0 for t in samples)     # 6 calls a round: 2 replays of 3


@pytest.mark.gpu
@GPU
def test_gpu_bench_eager_and_graph_report_their_timer():
    device = torch.device("cuda", torch.cuda.current_device())
    rate = bench._sleep_rate(device)
    assert 1e8 < rate < 1e10, rate                     # cycles per second of torch.cuda._sleep: a GPU clock
    for graph in (False, True):
        rep = bench.run([(256, 512, 1024)], repeat=20, graph=graph, say=lambda m: None)
        r, = rep.rows
        assert r.hkjit_ms > 0 and r.torch_ms > 0 and r.auto_ms > 0, r
        assert ("graph replays" in rep.timer) == graph and "device events" in rep.timer, rep.timer
        assert rep.to_json()["timer"] == rep.timer
