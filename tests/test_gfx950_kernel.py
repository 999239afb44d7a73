"""Checks of the gfx950 HipKittens GEMM that run without an AMD GPU (issues 3 and 14), plus GPU tests (`-m gpu`).

(a) compile gate: device-only compile for gfx950 with clang-22; bf16 MFMA present, LDS <= 160 KiB, no spills, no
    scratch, VGPR + AGPR <= 256 (2 waves per SIMD).  (b) the pipeline plan (kernels/gemm_gfx950_plan.h) in the
    multi-group schedule model for 1..64 K tiles; the seed's plan is rejected at 3 tiles, upstream HipKittens'
    published MI355X schedule for every tile count >= 4, and a plan that races only across wave groups is
    rejected although the single-trace model accepts it.  (c) the compiled main loop is the plan's sequence of
    loads, reads, MFMAs, waits, barriers and s_setprio (modulo the unroll period), the barrier counts before and
    after the loop are the stagger's, and no MFMA reads a register an LDS read has not been waited for.
    (d) performance guards (16-MFMA clusters at raised priority, a VALU budget per K tile), each with a mutation
    test that compiles a broken copy of the kernel and sees the guard fail.
"""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hkjit.gfx950 import hipcheck, schedule  # noqa: E402

KERNEL = REPO / "kernels" / "gemm_gfx950.hip"
SEED_MD = None  # resolved from the toolchain dir's sibling: <repo>/../shared/seed
LDS_LIMIT = 160 * 1024


def _toolchain() -> Path:
    return hipcheck.toolchain_root()


def _seed_source(tmp_dir: Path) -> Path | None:
    md = _toolchain().parent / "seed" / "hipkittens_gemm_level2_prompt.md"
    if not md.is_file():
        return None
    m = re.search(r"## COMPLETE KERNEL\s*```cpp\n(.*?)```", md.read_text(), re.S)
    if not m:
        return None
    src = m.group(1).replace("#include <torch/extension.h>\n", "")
    src = src[: src.index("torch::Tensor gemm_forward")]  # the torch host wrapper cannot compile device-only
    p = tmp_dir / "seed_gemm.hip"
    p.write_text(src)
    return p


def _skip_reason() -> str | None:
    if hipcheck.find_clang() is None:
        return f"clang-22 not found ({hipcheck.DEFAULT_CLANG} or $HKJIT_HIP_CLANG); apt-get install clang-22 lld-22"
    tc = _toolchain()
    if not (tc / "HipKittens" / "include" / "kittens.cuh").is_file() or not (tc / "rocm" / "include" / "hip").is_dir():
        return f"toolchain dir {tc} (HipKittens headers, rocm headers) absent; set HKJIT_TOOLCHAIN_DIR"
    return None


@pytest.fixture(scope="module")
def compiled():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tc = _toolchain()
    return hipcheck.compile_device(KERNEL, "gfx950", tc / "HipKittens" / "include", tc,
                                   extra_flags=["-DHKJIT_NOGPULIB_SHIMS", f"-I{REPO / 'kernels'}"])


@pytest.fixture(scope="module")
def plan():
    return schedule.load_plan()


# ---------------------------------------------------------------------------------------------------------------
# (a) compile gate
# ---------------------------------------------------------------------------------------------------------------
def test_compile_gate(compiled, plan):
    r = compiled
    occ = r.occupancy(plan.consts["kThreads"], plan.consts["kLdsBytes"])
    print(f"\n{r.summary()}\n  dynamic LDS (plan) {plan.consts['kLdsBytes']} B; occupancy estimate {occ}")
    assert r.mfma > 0 and re.search(r"^\s*v_mfma_f32_\w+_bf16\b", r.asm, re.M), "no bf16 MFMA instruction"
    assert r.vgpr_spill == 0, f"{r.vgpr_spill} VGPRs spilled"
    assert r.sgpr_spill == 0, f"{r.sgpr_spill} SGPRs spilled"
    assert r.scratch == 0, f"{r.scratch} bytes of scratch per lane"
    assert r.lds + plan.consts["kLdsBytes"] <= LDS_LIMIT
    # the launcher's dynamic LDS request is the plan's footprint
    assert "plan::kLdsBytes" in KERNEL.read_text()
    # 8 waves (2 per SIMD) must fit the register file: VGPR + AGPR <= 512 / 2 per lane
    assert -(-r.vgpr // 8) * 8 + r.agpr <= hipcheck.REGS_PER_LANE // 2, (r.vgpr, r.agpr)
    assert occ["waves_per_simd_by_regs"] >= plan.consts["kWaves"] // 4
    assert occ["blocks_per_cu"] >= 1


def test_kernel_unit_is_torch_free_and_hipify_neutral():
    src = KERNEL.read_text()
    assert "torch" not in re.sub(r"//[^\n]*", "", src)
    code = re.sub(r"//[^\n]*", "", src)
    assert not re.search(r"\bcuda[A-Z_]\w*|\bcudaStream_t\b|<cuda", code), "use hip* names only"
    assert 'extern "C" int hkjit_gemm_bf16(' in src and 'extern "C" const char* hkjit_gemm_bf16_error(' in src
    assert "hipGetLastError()" in src and "static_cast<hipStream_t>(stream)" in src


@pytest.mark.parametrize("name", ["seed"])
def test_seed_figures_for_comparison(name, tmp_path_factory):
    """Not a gate: compiles the seed (as the issue quotes it) to print its figures beside ours."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("seed")
    src = _seed_source(d)
    if src is None:
        pytest.skip("seed prompt not found next to the toolchain (../shared/seed)")
    tc = _toolchain()
    raw = hipcheck.compile_device(src, "gfx950", tc / "HipKittens" / "include", tc)
    shim = d / "seed_shim.hip"
    shim.write_text(_shim_prefix() + src.read_text())
    fair = hipcheck.compile_device(shim, "gfx950", tc / "HipKittens" / "include", tc)
    print(f"\nseed as is:           {raw.summary()}\nseed with ockl shims: {fair.summary()}")
    assert raw.mfma > 0


def _shim_prefix() -> str:
    text = KERNEL.read_text()
    m = re.search(r"#ifdef HKJIT_NOGPULIB_SHIMS\n(.*?)#endif", text, re.S)
    return "#include <hip/hip_runtime.h>\n" + m.group(1)


# ---------------------------------------------------------------------------------------------------------------
# (b) schedule simulation
# ---------------------------------------------------------------------------------------------------------------
def test_plan_constants_derived(plan):
    c = plan.consts
    assert c["kLoadsPerTile"] == c["kLoadsPerA"] + c["kLoadsPerB"]
    assert c["kLoadsPerA"] * 16 * c["kThreads"] == c["kBlockM"] * c["kBlockK"] * 2
    assert c["kVmcntSteady"] == (c["kPrefetch"] - 1) * c["kLoadsPerTile"]
    assert c["kLdsBytes"] <= LDS_LIMIT


def test_schedule_correct_for_1_to_64_tiles(plan):
    """In the plan's own wave groups (the kernel's) and in lock step (one trace)."""
    assert plan.groups == 2 and plan.stagger == 1
    for groups in (None, 1):
        bad = schedule.check_all(plan, 64, groups=groups)
        assert not bad, "\n".join(e for errs in bad.values() for e in errs[:3])


def test_seed_schedule_rejected_at_three_tiles():
    seed = schedule.seed_plan()
    assert schedule.simulate(seed, 1) == [] and schedule.simulate(seed, 2) == []
    errs = schedule.simulate(seed, 3)  # K = 192 with K_STEP 64
    assert errs and any("expecting tile 1, sees tile 2" in e for e in errs), errs


def test_upstream_schedule_rejected_for_four_or_more_tiles():
    """HipKittens' published MI355X loop reads B half 0 of tile t+1 before the vmcnt that retires its DMA; it
    only works by timing slack. Two tiles (no loop iteration) are right; every even count from 4 on is not."""
    up = schedule.upstream_plan()
    assert schedule.simulate(up, 2) == []
    for T in range(4, 65, 2):
        errs = schedule.simulate(up, T)
        assert errs and any("ReadB" in e and "stage 1B half 0" in e and "before group" in e for e in errs), (T, errs)


def test_multi_group_model_rejects_a_race_the_single_trace_model_accepts(plan):
    """Moving the vmcnt wait for tile t+1 from the second memory cluster into the last compute cluster leaves one
    barrier between it and the reads of tile t+1: right in lock step (the single-trace model accepts it), but
    with group 1 one barrier behind, group 0 reads the tile while group 1 may still be waiting for its share."""
    broken = schedule.parse_plan_text(_race_mutation(schedule.PLAN_HEADER.read_text()))
    assert broken.groups == 2 and broken.stagger == 1
    assert not schedule.check_all(broken, 16, groups=1), "the single-trace model should accept this plan"
    bad = schedule.check_all(broken, 16)
    assert bad and all(T in bad for T in range(2, 17)), sorted(bad)
    assert any("before group 1's share" in e for e in bad[4]), bad[4][:5]


_RETIRE_NEXT = "    {Op::WaitVm, kVmcntSteady, 0},\n    {Op::Barrier, 0, 0},\n    // compute: A half 1"
_LAST_CLUSTER = "    {Op::Mma, 1, 1},\n"


def test_model_rejects_unbalanced_barriers(plan):
    """Without group 0's barrier at exit the groups run different numbers of s_barrier: the workgroup hangs."""
    def no_exit_stagger(g, T):
        return [x for x in plan.traces(T)[g] if x[2] != "exit stagger"]
    broken = dataclasses.replace(plan, custom_traces=no_exit_stagger)
    errs = schedule.simulate(broken, 3)
    assert any("different numbers of s_barrier" in e for e in errs), errs


def _race_mutation(text: str) -> str:
    assert _RETIRE_NEXT in text and text.count(_LAST_CLUSTER) == 1
    text = text.replace(_RETIRE_NEXT, "    {Op::Barrier, 0, 0},\n    // compute: A half 1")
    return text.replace(_LAST_CLUSTER, _LAST_CLUSTER + "    {Op::WaitVm, kVmcntSteady, 0},\n")


@pytest.mark.parametrize("mutation", [
    ("constexpr int kVmcntSteady = (kPrefetch - 1) * kLoadsPerTile;",
     "constexpr int kVmcntSteady = kPrefetch * kLoadsPerTile;"),
    ("    {Op::Barrier, 0, 0},\n    // compute: A half 1", "    // compute: A half 1"),
    ("    {Op::WaitLgkm, kLgkmAll, 0},\n    {Op::SetPrio, 1, 0},\n    {Op::Mma, 0, 0},",
     "    {Op::SetPrio, 1, 0},\n    {Op::Mma, 0, 0},"),
    ("    {Op::WaitVm, kVmcntDrain, 0},\n", ""),
    ("constexpr int kPrefetch = kStages - 1;", "constexpr int kPrefetch = kStages;"),
    # the A prefetch two clusters earlier reloads tile t-1's A half 1 while the other group may still read it
    ("    {Op::LoadA, kPrefetch, 0},\n    {Op::LoadA, kPrefetch, 1},\n", ""),
])
def test_simulator_rejects_broken_plans(plan, mutation):
    text = schedule.PLAN_HEADER.read_text()
    assert mutation[0] in text
    text = text.replace(mutation[0], mutation[1])
    if "LoadA, kPrefetch" not in text:  # the A prefetch moved to the first memory cluster
        text = text.replace("    // memory: this tile's B fragments and A half 0\n", "    // memory: this tile's B "
                            "fragments and A half 0\n    {Op::LoadA, kPrefetch, 0},\n    {Op::LoadA, kPrefetch, 1},\n")
        # with A half 1 retired after the barrier (as the compute cluster's first step), not before it
        early = "    {Op::WaitLgkm, kLgkmAll, 0},  // A half 1 is back before the barrier: the MFMAs start right after it\n"
        assert early in text
        text = text.replace(early, "").replace("    // compute: A half 1 x both B halves\n",
                                                "    // compute: A half 1 x both B halves\n    {Op::WaitLgkm, kLgkmAll, 0},\n")
    broken = schedule.parse_plan_text(text)
    assert schedule.check_all(broken, 8), f"simulator accepted a broken plan: {mutation}"


# ---------------------------------------------------------------------------------------------------------------
# (c) assembly check
# ---------------------------------------------------------------------------------------------------------------
def test_main_loop_matches_plan(compiled, plan):
    """The compiled loop is the plan's iteration (s_setprio included), repeated for the unroll period and
    possibly rotated: compared modulo the period."""
    loop = hipcheck.main_loop(compiled.asm, compiled.kernel)
    assert loop, "no inner loop found"
    got = hipcheck.loop_events(loop)
    want = schedule.expected_loop_events(plan)
    m = hipcheck.periodic_match(got, want)
    assert m is not None, _diff(got, want * max(1, len(got) // max(1, len(want))))
    period, rotation = m
    print(f"\nmain loop: {period} K tile(s) per trip, rotated by {rotation} events; "
          f"MFMA clusters {schedule.mfma_clusters(got)}; barriers per K tile {got.count(('barrier',)) // period}")


def test_periodic_match_finds_unroll_and_rotation(plan):
    """The comparison the loop check uses: a body unrolled twice and rotated by 3 events matches with period 2,
    rotation 3; a body with one event dropped or two swapped does not."""
    unit = schedule.expected_loop_events(plan)
    assert hipcheck.periodic_match(unit, unit) == (1, 0)
    twice = (unit * 3)[3:3 + 2 * len(unit)]
    assert hipcheck.periodic_match(twice, unit) == (2, 3)
    assert hipcheck.periodic_match(twice[:-1], unit) is None
    i = twice.index(("barrier",))
    swapped = twice[:i - 1] + [twice[i], twice[i - 1]] + twice[i + 1:]
    assert hipcheck.periodic_match(swapped, unit) is None


def test_barrier_counts_on_both_sides_of_the_stagger(compiled, plan):
    """Group g passes the prologue's barriers plus g * kStagger before the loop and (kGroups-1-g) * kStagger
    after it: on the control-flow graph, the counts reachable before the loop header and after the loop exit
    are exactly these sets (and the loop itself has the plan's barriers per K tile, above)."""
    problems = _stagger_problems(compiled, plan)
    assert not problems, problems


def test_barrier_check_fails_without_the_exit_stagger(tmp_path):
    compiled, plan = _compile_mutated(tmp_path, kernel_edit=(
        "    stagger_barriers((plan::kGroups - 1 - group) * plan::kStagger);\n", ""))
    assert any("after the loop" in p for p in _stagger_problems(compiled, plan))


def _stagger_problems(compiled, plan) -> list[str]:
    blocks, header, exit_ = _loop_blocks(compiled)
    pro = sum(s.op == "Barrier" for s in plan.prologue)
    G, S = plan.groups, plan.stagger
    entry = hipcheck.barrier_counts(blocks, 0, lambda i: i == header)
    after = hipcheck.barrier_counts(blocks, exit_)
    print(f"\nbarriers before the loop {sorted(entry)}, after it {sorted(after)}")
    problems = []
    if entry != {pro + g * S for g in range(G)}:
        problems.append(f"barriers before the loop {sorted(entry)}, want {sorted(pro + g * S for g in range(G))}")
    if after != {(G - 1 - g) * S for g in range(G)}:
        problems.append(f"barriers after the loop {sorted(after)}, want {sorted((G - 1 - g) * S for g in range(G))}")
    return problems


def _loop_blocks(compiled):
    """(basic blocks, index of the main loop's header block, index of the block the loop exits to)."""
    body = hipcheck.function_body(compiled.asm, compiled.kernel)
    labels = {x.split(":")[0] for x in body.splitlines() if "Inner Loop Header" in x}
    blocks = hipcheck.basic_blocks(hipcheck._instructions(body))
    best = None  # (MFMAs in the loop, header, latch): the main loop is the inner loop with the most MFMAs
    for h, b in enumerate(blocks):
        if b.label not in labels:
            continue
        latch = max(i for i, x in enumerate(blocks) if h in x.successors and i >= h)
        n = sum(ins.startswith("v_mfma") for x in blocks[h:latch + 1] for ins in x.instructions)
        if best is None or n > best[0]:
            best = (n, h, latch)
    return blocks, best[1], best[2] + 1


# ---------------------------------------------------------------------------------------------------------------
# (d) performance guards: fail CI when a change splits the MFMA clusters or puts VALU work back into the loop
# ---------------------------------------------------------------------------------------------------------------
VALU_PER_TILE_BUDGET = 2  # one v_add per operand: the stage's LDS address for the ds_reads (all else is SALU)


def _mfma_per_cluster(plan) -> int:
    return 2 * schedule.mfma_per_mma(plan)  # two 64x32 fragment products: 16 v_mfma_f32_16x16x32_bf16


def _loop_guard_problems(compiled, plan) -> list[str]:
    loop = hipcheck.main_loop(compiled.asm, compiled.kernel)
    events = hipcheck.loop_events(loop)
    per_tile = len(schedule.expected_loop_events(plan))
    period = max(1, len(events) // per_tile) if per_tile else 1
    problems = schedule.mfma_cluster_problems(events, _mfma_per_cluster(plan))
    valu = [i for i in loop if not i.endswith(":") and hipcheck.is_valu(i)]
    if len(valu) > VALU_PER_TILE_BUDGET * period:
        problems.append(f"{len(valu)} VALU instructions in a loop of {period} K tile(s), budget "
                        f"{VALU_PER_TILE_BUDGET} per tile: {valu[:12]}")
    return problems


def test_guard_mfma_clusters_and_valu_budget(compiled, plan):
    loop = hipcheck.main_loop(compiled.asm, compiled.kernel)
    valu = [i for i in loop if not i.endswith(":") and hipcheck.is_valu(i)]
    print(f"\nloop VALU: {len(valu)} {valu}")
    assert not schedule.mfma_cluster_problems(schedule.expected_loop_events(plan), _mfma_per_cluster(plan))
    problems = _loop_guard_problems(compiled, plan)
    assert not problems, "\n".join(problems)


def _compile_mutated(tmp_path, plan_edit=None, kernel_edit=None):
    """The kernel compiled from a copy of kernels/ with one edit to the plan or the kernel source."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    for name in ("gemm_gfx950.hip", "gemm_gfx950_plan.h", "hkjit_gemm.h"):
        (tmp_path / name).write_text((REPO / "kernels" / name).read_text())
    for name, edit in (("gemm_gfx950_plan.h", plan_edit), ("gemm_gfx950.hip", kernel_edit)):
        if edit:
            text = (tmp_path / name).read_text()
            assert edit[0] in text, edit[0]
            (tmp_path / name).write_text(text.replace(edit[0], edit[1]))
    tc = _toolchain()
    compiled = hipcheck.compile_device(tmp_path / "gemm_gfx950.hip", "gfx950", tc / "HipKittens" / "include", tc,
                                       extra_flags=["-DHKJIT_NOGPULIB_SHIMS", f"-I{tmp_path}"])
    return compiled, schedule.load_plan(tmp_path / "gemm_gfx950_plan.h")


def test_guard_fails_when_a_cluster_is_split(tmp_path):
    """Lowering the priority between the two fragment products of a cluster (a plan still right, slower)."""
    compiled, plan = _compile_mutated(tmp_path, plan_edit=(
        "    {Op::Mma, 0, 0},\n    {Op::Mma, 0, 1},\n", "    {Op::Mma, 0, 0},\n    {Op::SetPrio, 0, 0},\n"
        "    {Op::WaitLgkm, kLgkmAll, 0},\n    {Op::SetPrio, 1, 0},\n    {Op::Mma, 0, 1},\n"))
    assert not schedule.check_all(plan, 8), "the mutation should keep the plan right"
    problems = _loop_guard_problems(compiled, plan)
    assert any("8 MFMAs" in p for p in problems), problems


def test_guard_fails_when_valu_work_returns_to_the_loop(tmp_path):
    """Column masks on every DMA (what the loop had before): the VALU budget catches it."""
    compiled, plan = _compile_mutated(tmp_path, kernel_edit=(
        "if constexpr (MASK_COLS) v =", "if (MASK_COLS || t >= 0) v ="))
    problems = _loop_guard_problems(compiled, plan)
    assert any("VALU instructions" in p for p in problems), problems


def test_no_mfma_reads_unwaited_lds_data(compiled):
    loop = hipcheck.main_loop(compiled.asm, compiled.kernel)
    problems = hipcheck.lds_read_hazards(loop)
    assert not problems, "\n".join(problems[:10])


def test_prologue_and_epilogue_match_plan(compiled, plan):
    body = hipcheck.function_body(compiled.asm, compiled.kernel)
    ins = hipcheck._instructions(body)
    header = next(i for i, line in enumerate(body.splitlines()) if "Inner Loop Header" in line)
    head_label = body.splitlines()[header].split(":")[0]
    idx = ins.index(head_label + ":")
    before = hipcheck.loop_events(ins[:idx])
    n_loads = sum(plan.loads_per[s.op[-1]] // plan.consts["kHalves"] for s in plan.prologue if s.op.startswith("Load"))
    assert before.count(("load",)) == n_loads, before
    assert [e for e in before if e[0] == "vmcnt"] == [("vmcnt", s.a) for s in plan.prologue if s.op == "WaitVm"]
    after = hipcheck.loop_events(ins[idx:])
    # after the loop: the first vm wait before any store is the plan's drain
    first_store = after.index(("store",))
    tail = [e for e in after[:first_store] if e[0] == "vmcnt"]
    drain = [s.a for s in plan.epilogue if s.op == "WaitVm"]
    assert tail and tail[-1] == ("vmcnt", drain[-1]), tail


def _diff(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"first difference at event {i}: asm {g} vs plan {w}\nasm:  {got}\nplan: {want}"
    return f"lengths differ: asm {len(got)} vs plan {len(want)}"


# ---------------------------------------------------------------------------------------------------------------
# (e) the kernel on the instruction-level emulator: the K cases the ping-pong and the loop without masks add
#     (tests/test_gfx950_emulate.py runs the general ones)
# ---------------------------------------------------------------------------------------------------------------
EMU_SEEDS = (1, 2, 3)  # latency / interleaving seeds of the emulator's adversarial scheduler
# (M, N, K, block): K % 32 in {16, 24} (the partial tile 0 masked in the prologue), K = 0 (every DMA out of
# range), one partial tile only (the prefetch issues three tiles past the end), and 5 tiles with the last
# block row and column ragged.
EMU_CASES = [(300, 260, 16, (1, 1)), (300, 260, 24, (0, 1)), (300, 260, 0, (1, 0)), (260, 300, 56, (1, 1)),
             (300, 260, 152, (1, 1))]


@pytest.fixture(scope="module")
def emulated_kernel(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        from hkjit.gfx950.emulate_gemm import GemmKernel, build_code_object
    except ImportError as e:
        pytest.skip(f"the gfx950 emulator is not in this tree ({e})")
    co = build_code_object(KERNEL, out=tmp_path_factory.mktemp("co") / "gemm_gfx950.co", toolchain_dir=_toolchain())
    return GemmKernel.from_code_object(co, KERNEL)


@pytest.mark.parametrize("seed", EMU_SEEDS)
@pytest.mark.parametrize("case", EMU_CASES, ids=[f"{m}x{n}x{k}" for m, n, k, _ in EMU_CASES])
def test_kernel_on_emulator_edge_k(emulated_kernel, case, seed):
    from hkjit.gfx950.emulate_gemm import GemmCase, run_case
    m, n, k, block = case
    out = run_case(emulated_kernel, GemmCase(m, n, k, blocks=(block,)), seed)
    print(out.summary())
    assert not out.hazards, out.summary() + "\n" + "\n".join(out.hazards[:10])
    assert out.passed, out.summary()


# ---------------------------------------------------------------------------------------------------------------
# GPU (MI350X / MI355X): numeric truth
# ---------------------------------------------------------------------------------------------------------------
def _gfx950_device():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or getattr(torch.version, "hip", None) is None:
        return None
    for i in range(torch.cuda.device_count()):
        if "gfx950" in getattr(torch.cuda.get_device_properties(i), "gcnArchName", ""):
            return torch.device("cuda", i)
    return None


GPU_SHAPES = [(256, 256, 64), (256, 256, 128), (256, 256, 192), (512, 512, 256), (256, 512, 4160),
              (1000, 777, 192), (1, 1, 64), (300, 4097, 128), (257, 255, 72), (129, 33, 4160), (64, 64, 0)]


@pytest.mark.gpu
@pytest.mark.parametrize("M,N,K", GPU_SHAPES)
def test_gpu_matches_float64(M, N, K):
    dev = _gfx950_device()
    if dev is None:
        pytest.skip("no gfx950 device visible to torch")
    import torch

    import hkjit

    g = torch.Generator(device="cpu").manual_seed(M * 1000003 + N * 1009 + K)
    A = torch.randn(M, K, generator=g).to(torch.bfloat16).to(dev)
    B = torch.randn(K, N, generator=g).to(torch.bfloat16).to(dev)
    # poison the caching allocator so a missed element shows up as NaN
    torch.full((M * N * 2 + 1024,), float("nan"), dtype=torch.bfloat16, device=dev)
    C = hkjit.gemm(A, B)
    torch.cuda.synchronize(dev)
    assert C.shape == (M, N) and C.dtype == torch.bfloat16 and C.is_contiguous()
    ref = A.double() @ B.double()
    err = (C.double() - ref).abs()
    tol = 2e-2 * ref.abs() + 1e-2 * max(1.0, K ** 0.5)
    assert not torch.isnan(C).any(), "unwritten (NaN) elements"
    assert bool((err <= tol).all()), f"max abs err {err.max().item():.4g}"
