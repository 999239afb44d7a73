"""The gfx950 GEMM's software pipeline as data, and a model that proves it right for every K.

`load_plan()` parses kernels/gemm_gfx950_plan.h (the header the kernel executes: its `constexpr int` values and
its step tables), `simulate()` runs a plan for a number of K tiles and reports every hazard. Two other schedules
are written in the same terms, as things the model must reject: `seed_plan()` (the user's seed kernel; fails at
3 tiles, K = 192) and `upstream_plan()` (HipKittens' published MI355X 256x256 kernel; fails for >= 4 tiles).

Model. The waves of a workgroup form `groups` wave groups (ours: the two wave rows); every group runs the same
program except for `stagger` extra barriers per group index at entry (group g: g * stagger) and the balancing
ones at exit (group g: (groups - 1 - g) * stagger), so group g runs g * stagger barriers behind group 0 and one
group's MFMA cluster overlaps the other's loads and LDS reads (ping-pong). s_barrier instances are numbered
globally: after its n-th s_barrier a wave is in epoch n, whatever its group, and everything a wave does in
epoch n happens after everything any wave did in an epoch < n. One trace per group, in that numbering:
  * a load step issues buffer_load ... lds instructions per thread (vmcnt counts instructions, in order) into a
    slot (stage, operand, half); `s_waitcnt vmcnt(n)` retires all but the newest n. A read of a slot in epoch e
    needs *every* group's share of the load of its tile retired (waited for) in an epoch < e: the group's other
    waves and the other groups only see the data after each wave waited for its part and a barrier passed.
  * a read step issues ds_read instructions (lgkmcnt, in order), finished at the wait that retires it. A reload
    of a slot in epoch e needs *every* group's reads of the earlier tiles there retired in an epoch < e.
  * within a trace: every read sees, as the last load its group issued into the slot, the tile it expects;
    every MMA uses fragments of its own tile that were waited for; each tile gets every MMA exactly once per
    group; every group runs the same number of barriers; no load is in flight when a wave ends.
`simulate(plan, T, groups=1)` is the single-trace model (all waves in lock step, stagger ignored): a plan that
passes it can still race across groups, which is why the kernel's check uses the plan's own group count.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Optional

from ..specs import kernels_dir

PLAN_HEADER = kernels_dir() / "gemm_gfx950_plan.h"

OPS = ("WaitVm", "WaitLgkm", "Barrier", "LoadA", "LoadB", "ReadA", "ReadB", "Mma", "SetPrio")
BOTH = -1  # half of a load step that writes both halves of its operand (the seed's, upstream's are per half)


@dataclasses.dataclass(frozen=True)
class Step:
    """One plan step. Load: a = tile offset (tile t+a), b = half (BOTH: the whole operand). Read: a = half,
    b = tile offset. Mma: C[a][b] += A half a * B half b. WaitVm/WaitLgkm: a = count. SetPrio: a = level."""
    op: str
    a: int = 0
    b: int = 0
    # Only the seed and upstream need these (our plan has no special cases):
    guard: Optional[Callable[[int, int], bool]] = None  # Load: issued only if guard(t, T)
    stage: Optional[Callable[[int], int]] = None  # Load: stage written, as a function of t (default stage_of(t+a))
    count: Optional[Callable[[int, int], int]] = None  # WaitVm/WaitLgkm: count as a function of (t, T)
    reg: Optional[str] = None  # Read: destination register tile (default "A0" / "B1": operand and half)
    regs: Optional[tuple] = None  # Mma: (A register, B register) (default ("A<a>", "B<b>"))


@dataclasses.dataclass
class Plan:
    name: str
    consts: dict
    prologue: list
    iteration: list
    epilogue: list
    stages: int
    loads_per: dict  # "A"/"B" -> buffer-load instructions per thread per tile (both halves)
    reads_per: dict  # "A"/"B" -> ds_read instructions per lane per read step
    groups: int = 1
    stagger: int = 0
    custom_traces: Optional[Callable[[int, int], list]] = None  # (group, T) -> [(Step, t, where)]

    def stage_of(self, t: int) -> int:
        return t % self.stages

    def traces(self, num_tiles: int, groups: Optional[int] = None) -> list[list[tuple]]:
        """Per group, the steps it executes for `num_tiles` K tiles, as (Step, t, where)."""
        n = self.groups if groups is None else groups
        stagger = self.stagger if n == self.groups else 0
        out = []
        for g in range(n):
            if self.custom_traces is not None:
                out.append(self.custom_traces(g, num_tiles))
                continue
            tr = [(s, 0, f"prologue[{i}]") for i, s in enumerate(self.prologue)]
            tr += [(Step("Barrier"), 0, "entry stagger")] * (g * stagger)
            for t in range(num_tiles):
                tr += [(s, t, f"iter t={t}[{i}]") for i, s in enumerate(self.iteration)]
            tr += [(Step("Barrier"), num_tiles, "exit stagger")] * ((n - 1 - g) * stagger)
            tr += [(s, num_tiles, f"epilogue[{i}]") for i, s in enumerate(self.epilogue)]
            out.append(tr)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Parsing the header
# ---------------------------------------------------------------------------------------------------------------
_CONST = re.compile(r"constexpr\s+int\s+(\w+)\s*=\s*([^;]+);")
_TABLE = re.compile(r"constexpr\s+Step\s+(\w+)\[\]\s*=\s*\{(.*?)\n\};", re.S)
_STEP = re.compile(r"\{\s*Op::(\w+)\s*,\s*([^,{}]+?)\s*,\s*([^,{}]+?)\s*\}")
_EXPR_OK = re.compile(r"^[\w\s+\-*/%()]+$")


def _eval(expr: str, env: dict) -> int:
    expr = expr.strip()
    if not _EXPR_OK.match(expr):
        raise ValueError(f"plan expression outside the supported grammar: {expr!r}")
    py = re.sub(r"(?<!/)/(?!/)", "//", expr)  # C integer division (all operands are non-negative)
    names = set(re.findall(r"[A-Za-z_]\w*", py))
    unknown = names - env.keys()
    if unknown:
        raise ValueError(f"undefined name(s) {sorted(unknown)} in {expr!r}")
    return int(eval(py, {"__builtins__": {}}, dict(env)))  # noqa: S307 - grammar checked above


def parse_plan_text(text: str, name: str = "gemm_gfx950_plan.h") -> Plan:
    body = re.sub(r"//[^\n]*", "", text)
    consts: dict = {}
    for m in _CONST.finditer(body):
        consts[m.group(1)] = _eval(m.group(2), consts)
    if not re.search(r"constexpr\s+int\s+stage_of\s*\(\s*int\s+t\s*\)\s*\{\s*return\s+t\s*%\s*kStages\s*;\s*\}", body):
        raise ValueError("stage_of(t) must be `return t % kStages;` (the simulator models exactly that)")
    tables = {}
    for m in _TABLE.finditer(body):
        steps = []
        for s in _STEP.finditer(m.group(2)):
            op = s.group(1)
            if op not in OPS:
                raise ValueError(f"unknown op {op} in {m.group(1)}")
            steps.append(Step(op, _eval(s.group(2), consts), _eval(s.group(3), consts)))
        tables[m.group(1)] = steps
    for t in ("kPrologue", "kIter", "kEpilogue"):
        if t not in tables:
            raise ValueError(f"plan table {t} missing")
    for k in ("kGroups", "kStagger"):
        if k not in consts:
            raise ValueError(f"plan constant {k} missing (wave groups and their barrier stagger)")
    return Plan(
        name=name,
        consts=consts,
        prologue=tables["kPrologue"],
        iteration=tables["kIter"],
        epilogue=tables["kEpilogue"],
        stages=consts["kStages"],
        loads_per={"A": consts["kLoadsPerA"], "B": consts["kLoadsPerB"]},
        reads_per={"A": consts["kReadsPerA"], "B": consts["kReadsPerB"]},
        groups=consts["kGroups"],
        stagger=consts["kStagger"],
    )


def load_plan(path: Path | str = PLAN_HEADER) -> Plan:
    p = Path(path)
    return parse_plan_text(p.read_text(), p.name)


# ---------------------------------------------------------------------------------------------------------------
# The seed kernel's schedule (../shared/seed/hipkittens_gemm_level2_prompt.md), in the same terms
# ---------------------------------------------------------------------------------------------------------------
def seed_plan() -> Plan:
    """K_STEP 64, two stages (tic/toc), each G::load of a 128x64 half = 2 buffer_load instructions per thread,
    so A or B of one tile = 4; prologue loads tiles 0 and 1; the loop prefetches tile k+2 into `toc`, the stage
    that holds tile k+1, with `s_waitcnt vmcnt(4)` (or 0 when nothing was prefetched)."""
    two = lambda t, T: t + 2 < T  # noqa: E731
    prologue = [
        Step("LoadA", 0, BOTH, stage=lambda t: 0), Step("LoadB", 0, BOTH, stage=lambda t: 0),
        Step("WaitVm", 0), Step("Barrier"),
        Step("LoadA", 1, BOTH, guard=lambda t, T: T > 1, stage=lambda t: 1),
        Step("LoadB", 1, BOTH, guard=lambda t, T: T > 1, stage=lambda t: 1),
        Step("WaitVm", 4), Step("Barrier"),
    ]
    iteration = [
        Step("ReadA", 0), Step("ReadB", 0), Step("ReadB", 1),
        Step("LoadA", 2, BOTH, guard=two, stage=lambda t: (t + 1) % 2),
        Step("LoadB", 2, BOTH, guard=two, stage=lambda t: (t + 1) % 2),
        Step("WaitLgkm", 0), Step("Mma", 0, 0), Step("Mma", 0, 1),
        Step("ReadA", 1), Step("WaitLgkm", 0), Step("Mma", 1, 0), Step("Mma", 1, 1),
        Step("WaitVm", 0, count=lambda t, T: 4 if t + 2 < T else 0), Step("Barrier"),
    ]
    return Plan("seed", {"kBlockK": 64}, prologue, iteration, [], 2, {"A": 4, "B": 4}, {"A": 1, "B": 1})


# ---------------------------------------------------------------------------------------------------------------
# Upstream HipKittens' MI355X kernel (kernels/gemm/bf16fp32/mi350x/256_256_64_32_with16x32.cpp), in the same terms
# ---------------------------------------------------------------------------------------------------------------
def upstream_plan() -> Plan:
    """HipKittens' published 256x256 MI355X GEMM, read from its source (not copied): K_STEP 64, two stages, A
    and B each in two 128-row halves (one G::load = 2 buffer_load ... lds per thread per half); one A register
    tile (64x64: 8 ds_read_b128) reused for both A halves, two B register tiles (32x64: 4 each); the two wave
    rows are the groups, row 1 one barrier behind (an extra s_barrier at entry, row 0's at exit). The loop body
    covers two tiles in 16 barrier-separated clusters, followed by the two peeled last tiles; it is written for
    an even tile count (its K is a compile-time 8192), so traces exist for even T only."""
    L = lambda op, half, tile: Step("Load" + op, tile, half)  # noqa: E731
    R = lambda op, half, tile, reg: Step("Read" + op, half, tile, reg=reg)  # noqa: E731
    M = lambda i, j: Step("Mma", i, j, regs=("A", f"B{j}"))  # noqa: E731
    B_, VM, LG, P = Step("Barrier"), lambda n: Step("WaitVm", n), lambda n: Step("WaitLgkm", n), Step("SetPrio", 1)
    P0 = Step("SetPrio", 0)

    def trace(g: int, T: int) -> list:
        if T % 2 or T < 2:
            raise ValueError(f"upstream's schedule is written for an even tile count >= 2, not {T}")
        out: list = []

        def emit(where, *steps, mma_tile=0):
            # loads and reads name absolute tiles in their offset field (t = 0); MMAs name theirs through t
            out.extend((s, mma_tile if s.op == "Mma" else 0, where) for s in steps)

        emit("prologue", L("B", 0, 0), L("A", 0, 0), L("B", 1, 0), L("A", 1, 0))
        if g == 1:
            emit("entry stagger", B_)
        emit("prologue", VM(4), B_, L("B", 0, 1), L("A", 0, 1), L("B", 1, 1), VM(6), B_)
        for t in range(0, T - 2, 2):
            u, w = t + 1, f"loop tile={t}"
            emit(w, R("B", 0, t, "B0"), R("A", 0, t, "A"), L("A", 1, u), LG(8), B_)
            emit(w, LG(0), P, M(0, 0), P0, B_, mma_tile=t)
            emit(w, R("B", 1, t, "B1"), L("B", 0, t + 2), B_)
            emit(w, LG(0), P, M(0, 1), P0, B_, mma_tile=t)
            emit(w, R("A", 1, t, "A"), L("A", 0, t + 2), B_)
            emit(w, LG(0), P, M(1, 0), P0, B_, mma_tile=t)
            emit(w, R("B", 0, u, "B0"), L("B", 1, t + 2), VM(6), B_)
            emit(w, P, M(1, 1), P0, B_, mma_tile=t)
            emit(w, R("A", 0, u, "A"), L("A", 1, t + 2), LG(8), B_)
            emit(w, LG(0), P, M(0, 0), P0, B_, mma_tile=u)
            emit(w, R("B", 1, u, "B1"), L("B", 0, t + 3), B_)
            emit(w, LG(0), P, M(0, 1), P0, B_, mma_tile=u)
            emit(w, R("A", 1, u, "A"), L("A", 0, t + 3), B_)
            emit(w, LG(0), P, M(1, 0), P0, B_, mma_tile=u)
            emit(w, L("B", 1, t + 3), VM(6), B_)
            emit(w, P, M(1, 1), P0, B_, mma_tile=u)
        t = T - 2
        emit("peeled T-2", R("B", 0, t, "B0"), R("A", 0, t, "A"), L("A", 1, t + 1), B_, LG(0))
        emit("peeled T-2", P, M(0, 0), P0, B_, R("B", 1, t, "B1"), B_, LG(0), P, M(0, 1), P0, B_, mma_tile=t)
        emit("peeled T-2", R("A", 1, t, "A"), VM(4), B_, LG(0), P, M(1, 0), M(1, 1), P0, B_, mma_tile=t)
        t = T - 1
        emit("peeled T-1", R("B", 0, t, "B0"), R("A", 0, t, "A"), VM(2), B_, LG(0), P, M(0, 0), P0, B_,
             R("B", 1, t, "B1"), VM(0), B_, LG(0), P, M(0, 1), P0, B_,
             R("A", 1, t, "A"), B_, LG(0), P, M(1, 0), M(1, 1), P0, B_, mma_tile=t)
        if g == 0:
            emit("exit stagger", B_)
        return out

    return Plan("upstream", {"kBlockK": 64}, [], [], [], 2, {"A": 4, "B": 4}, {"A": 8, "B": 4},
                groups=2, stagger=1, custom_traces=trace)


# ---------------------------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(eq=False)
class _Load:
    group: int
    tile: int
    stage: int
    operand: str
    halves: tuple
    issue_epoch: int
    left: int  # instructions not yet retired
    done_epoch: Optional[int] = None


@dataclasses.dataclass(eq=False)
class _Read:
    group: int
    tile: int
    stage: int
    operand: str
    half: int
    epoch: int
    where: str
    left: int
    done_epoch: Optional[int] = None


def _run_group(plan: Plan, g: int, trace: list, T: int, err) -> tuple[list, list, int]:
    """Run one group's trace; check what one trace can see on its own; return (loads, reads, barriers)."""
    epoch = 0
    vm_fifo: list[_Load] = []  # one entry per buffer_load instruction, oldest first
    lgkm_fifo: list[_Read] = []  # one entry per ds_read instruction
    last_load: dict = {}  # (stage, operand, half) -> this group's most recent _Load
    loads: list[_Load] = []
    reads: list[_Read] = []
    frags: dict = {}  # register -> _Read that filled it
    mmas: dict = {}
    for s, t, where in trace:
        w = f"group {g} {where} {s.op}"
        if s.op == "WaitVm":
            n = s.count(t, T) if s.count else s.a
            while len(vm_fifo) > n:
                ld = vm_fifo.pop(0)
                ld.left -= 1
                if ld.left == 0:
                    ld.done_epoch = epoch
        elif s.op == "WaitLgkm":
            n = s.count(t, T) if s.count else s.a
            while len(lgkm_fifo) > n:
                rd = lgkm_fifo.pop(0)
                rd.left -= 1
                if rd.left == 0:
                    rd.done_epoch = epoch
        elif s.op == "Barrier":
            epoch += 1
        elif s.op in ("LoadA", "LoadB"):
            if s.guard is not None and not s.guard(t, T):
                continue
            operand, tile = s.op[-1], t + s.a
            halves = (0, 1) if s.b == BOTH else (s.b,)
            n = plan.loads_per[operand] * len(halves) // 2
            ld = _Load(g, tile, s.stage(t) if s.stage else plan.stage_of(tile), operand, halves, epoch, n)
            for h in halves:
                last_load[(ld.stage, operand, h)] = ld
            loads.append(ld)
            vm_fifo += [ld] * n
        elif s.op in ("ReadA", "ReadB"):
            operand, tile = s.op[-1], t + s.b
            stage = plan.stage_of(tile)
            src = last_load.get((stage, operand, s.a))
            if src is None or src.tile != tile:
                err(w, f"reads stage {stage}{operand} half {s.a} expecting tile {tile}, sees "
                       f"{'nothing' if src is None else 'tile %d' % src.tile}")
            rd = _Read(g, tile, stage, operand, s.a, epoch, w, plan.reads_per[operand])
            reads.append(rd)
            lgkm_fifo += [rd] * rd.left
            frags[s.reg or f"{operand}{s.a}"] = rd
        elif s.op == "Mma":
            for operand, half, reg in (("A", s.a, (s.regs or ())[:1] or (f"A{s.a}",)),
                                       ("B", s.b, (s.regs or ())[1:] or (f"B{s.b}",))):
                frag = frags.get(reg[0])
                if frag is None or frag.tile != t or frag.operand != operand or frag.half != half:
                    err(w, f"MMA({s.a},{s.b}) of tile {t} uses register {reg[0]} holding "
                           f"{'nothing' if frag is None else f'{frag.operand} half {frag.half} of tile {frag.tile}'}")
                elif frag.done_epoch is None:
                    err(w, f"MMA({s.a},{s.b}) of tile {t} uses {reg[0]} before its ds_read was waited for")
            mmas[(t, s.a, s.b)] = mmas.get((t, s.a, s.b), 0) + 1
        elif s.op == "SetPrio":
            pass  # a scheduling hint: no effect on what is right
    for t in range(T):
        for i in (0, 1):
            for j in (0, 1):
                if mmas.get((t, i, j), 0) != 1:
                    err(f"group {g} end", f"tile {t} MMA({i},{j}) ran {mmas.get((t, i, j), 0)} times, "
                                          f"expected once")
    if vm_fifo:
        err(f"group {g} end", f"{len(vm_fifo)} buffer-load instructions still in flight when the wave ends")
    for rd in reads:
        if rd.done_epoch is None:
            err(f"group {g} end", f"read of tile {rd.tile} stage {rd.stage}{rd.operand} never waited for")
            break
    return loads, reads, epoch


def simulate(plan: Plan, num_tiles: int, groups: Optional[int] = None) -> list[str]:
    """Run `plan` for `num_tiles` K tiles; return the list of violations (empty: the schedule is right).
    `groups=1` is the single-trace model (every wave in lock step); default: the plan's own groups."""
    T = num_tiles
    errors: list[str] = []

    def err(where, msg):
        if len(errors) < 50:
            errors.append(f"T={T} {where}: {msg}")

    loads, reads, barriers = [], [], []
    for g, trace in enumerate(plan.traces(T, groups)):
        ld, rd, nb = _run_group(plan, g, trace, T, err)
        loads += ld
        reads += rd
        barriers.append(nb)
    if len(set(barriers)) > 1:
        err("end", f"the groups run different numbers of s_barrier ({barriers}): the workgroup would hang")
    ngroups = len(barriers)
    # a read needs every group's share of its tile's load retired in an earlier epoch
    by_slot: dict = {}
    for ld in loads:
        for h in ld.halves:
            by_slot.setdefault((ld.stage, ld.operand, h), []).append(ld)
    for rd in reads:
        slot = (rd.stage, rd.operand, rd.half)
        for h in range(ngroups):
            mine = [ld for ld in by_slot.get(slot, []) if ld.group == h and ld.tile == rd.tile]
            if not mine:
                err(rd.where, f"reads tile {rd.tile} from stage {rd.stage}{rd.operand} half {rd.half}, which "
                              f"group {h} never loaded there")
            elif mine[-1].done_epoch is None or mine[-1].done_epoch >= rd.epoch:
                err(rd.where, f"reads tile {rd.tile} from stage {rd.stage}{rd.operand} half {rd.half} in epoch "
                              f"{rd.epoch} before group {h}'s share of its load was retired in an earlier epoch "
                              f"(retired in epoch {mine[-1].done_epoch})")
    # a reload needs every group's reads of the earlier tiles there retired in an earlier epoch
    flagged: set = set()
    reads_by_slot: dict = {}
    for rd in reads:
        reads_by_slot.setdefault((rd.stage, rd.operand, rd.half), []).append(rd)
    for ld in loads:
        for h in ld.halves:
            for rd in reads_by_slot.get((ld.stage, ld.operand, h), []):
                if rd.tile >= ld.tile:
                    continue
                if (rd.done_epoch is None or rd.done_epoch >= ld.issue_epoch) and id(rd) not in flagged:
                    flagged.add(id(rd))
                    err(f"group {ld.group} load", f"load of tile {ld.tile} into stage {ld.stage}{ld.operand} half "
                        f"{h} in epoch {ld.issue_epoch} while group {rd.group} may still read tile {rd.tile} there "
                        f"(read retired in epoch {rd.done_epoch})")
    return errors


def check_all(plan: Plan, max_tiles: int = 64, groups: Optional[int] = None) -> dict:
    """{num_tiles: errors} for 1..max_tiles (only the failing counts)."""
    out = {}
    for T in range(1, max_tiles + 1):
        e = simulate(plan, T, groups)
        if e:
            out[T] = e
    return out


# ---------------------------------------------------------------------------------------------------------------
# What the compiled main loop must look like (used by the assembly check)
# ---------------------------------------------------------------------------------------------------------------
def mfma_per_mma(plan: Plan) -> int:
    """v_mfma_f32_16x16x32_bf16 instructions per Mma step (one 64x32 fragment pair, K = kBlockK)."""
    c = plan.consts
    frag_m = c["kBlockM"] // c["kWavesM"] // 2
    frag_n = c["kBlockN"] // c["kWavesN"] // 2
    return (frag_m // 16) * (frag_n // 16) * (c["kBlockK"] // 32)


def expected_loop_events(plan: Plan, mfma_per_mma_: Optional[int] = None) -> list[tuple]:
    """The main loop body as the ordered events the assembly parser extracts: ("load",) per buffer_load...lds,
    ("read",) per ds_read, ("mfma",), ("vmcnt", n), ("lgkmcnt", n), ("barrier",), ("setprio", n)."""
    per = mfma_per_mma(plan) if mfma_per_mma_ is None else mfma_per_mma_
    ev: list[tuple] = []
    for s in plan.iteration:
        if s.op == "WaitVm":
            ev.append(("vmcnt", s.a))
        elif s.op == "WaitLgkm":
            ev.append(("lgkmcnt", s.a))
        elif s.op == "Barrier":
            ev.append(("barrier",))
        elif s.op == "SetPrio":
            ev.append(("setprio", s.a))
        elif s.op in ("LoadA", "LoadB"):
            n = plan.loads_per[s.op[-1]]
            ev += [("load",)] * (n if s.b == BOTH else n // 2)
        elif s.op in ("ReadA", "ReadB"):
            ev += [("read",)] * plan.reads_per[s.op[-1]]
        elif s.op == "Mma":
            ev += [("mfma",)] * per
    return ev


def mfma_clusters(events: list[tuple]) -> list[int]:
    """MFMA counts of the runs between ("setprio", n > 0) and the next ("setprio", 0), in order; MFMAs outside
    such a run count as clusters of their own, so a split cluster shows as two small ones."""
    out: list[int] = []
    inside, n, loose = False, 0, 0
    for e in events:
        if e[0] == "setprio":
            if loose:
                out.append(loose)
                loose = 0
            if e[1] > 0:
                inside, n = True, 0
            elif inside:
                out.append(n)
                inside = False
        elif e[0] == "mfma":
            if inside:
                n += 1
            else:
                loose += 1
        elif e[0] == "barrier" and loose:
            out.append(loose)
            loose = 0
    if loose:
        out.append(loose)
    return out


def mfma_cluster_problems(events: list[tuple], size: int) -> list[str]:
    """The performance guard on MFMA clusters: every MFMA of the loop inside a s_setprio-raised window, each
    window exactly `size` MFMAs with nothing else among them (no wait, load, read or barrier splitting it)."""
    problems = []
    inside = False
    run: list[tuple] = []
    for i, e in enumerate(events):
        if e[0] == "setprio" and e[1] > 0:
            inside, run = True, []
        elif e[0] == "setprio":
            if inside and (len(run) != size or any(x != ("mfma",) for x in run)):
                problems.append(f"cluster ending at event {i}: {sum(x == ('mfma',) for x in run)} MFMAs, "
                                f"{[x for x in run if x != ('mfma',)]} among them (want {size} MFMAs only)")
            inside = False
        elif inside:
            run.append(e)
        elif e == ("mfma",):
            problems.append(f"event {i}: MFMA outside a raised-priority cluster")
    return problems


if __name__ == "__main__":  # pragma: no cover
    p = load_plan()
    bad = check_all(p)
    print(f"{p.name}: groups={p.groups} stagger={p.stagger} stages={p.stages} loads/tile={p.loads_per} -> "
          f"{'OK for 1..64 tiles' if not bad else bad}")
    print("single-trace model:", "OK" if not check_all(p, 64, groups=1) else "rejects")
    print("seed at 3 tiles:", simulate(seed_plan(), 3)[:3])
    print("upstream at 4 tiles:", simulate(upstream_plan(), 4)[:3])
