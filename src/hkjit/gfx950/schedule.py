"""The gfx950 GEMM's software pipeline as data, and a simulator that proves it right for every K.

`load_plan()` parses kernels/gemm_gfx950_plan.h (the header the kernel executes: its `constexpr int` values and
its step tables), `simulate()` runs a plan for a number of K tiles and reports every hazard, and `seed_plan()`
is the user's seed kernel's schedule written in the same terms (it must fail at 3 tiles, K = 192).

Model (per wave; all 8 waves run the same program, so one trace with barrier epochs stands for all of them):
  * a load step issues `n` buffer_load ... lds instructions per thread (vmcnt counts instructions, in order);
    `s_waitcnt vmcnt(n)` retires all but the newest n; a load's data is visible to *every* wave only after each
    wave waited for its own part and then passed a barrier: wait epoch < read epoch.
  * a read step issues ds_read instructions (lgkmcnt, in order); the read is finished at the wait that retires
    it. The next load into the same stage/operand may be issued only in a later barrier epoch than that wait
    (another wave can still be reading until it reaches the barrier).
  * every read must see, as the last load issued into its stage/operand, the tile it expects; every MMA must
    use fragments of its own tile that were waited for; each tile gets every MMA exactly once; the wave ends
    with no load in flight.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Optional

from ..specs import kernels_dir

PLAN_HEADER = kernels_dir() / "gemm_gfx950_plan.h"

OPS = ("WaitVm", "WaitLgkm", "Barrier", "LoadA", "LoadB", "ReadA", "ReadB", "Mma")


@dataclasses.dataclass(frozen=True)
class Step:
    op: str
    a: int = 0
    b: int = 0
    # Only the seed needs these (our plan has no tail special cases):
    guard: Optional[Callable[[int, int], bool]] = None  # Load: issued only if guard(t, T)
    stage: Optional[Callable[[int], int]] = None  # Load: stage written, as a function of t (default stage_of(t+a))
    count: Optional[Callable[[int, int], int]] = None  # WaitVm/WaitLgkm: count as a function of (t, T)


@dataclasses.dataclass
class Plan:
    name: str
    consts: dict
    prologue: list
    iteration: list
    epilogue: list
    stages: int
    loads_per: dict  # "A"/"B" -> buffer-load instructions per thread per load step
    reads_per: dict  # "A"/"B" -> ds_read instructions per lane per read step

    def stage_of(self, t: int) -> int:
        return t % self.stages


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
    return Plan(
        name=name,
        consts=consts,
        prologue=tables["kPrologue"],
        iteration=tables["kIter"],
        epilogue=tables["kEpilogue"],
        stages=consts["kStages"],
        loads_per={"A": consts["kLoadsPerA"], "B": consts["kLoadsPerB"]},
        reads_per={"A": consts["kReadsPerA"], "B": consts["kReadsPerB"]},
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
        Step("LoadA", 0, stage=lambda t: 0), Step("LoadB", 0, stage=lambda t: 0),
        Step("WaitVm", 0), Step("Barrier"),
        Step("LoadA", 1, guard=lambda t, T: T > 1, stage=lambda t: 1),
        Step("LoadB", 1, guard=lambda t, T: T > 1, stage=lambda t: 1),
        Step("WaitVm", 4), Step("Barrier"),
    ]
    iteration = [
        Step("ReadA", 0), Step("ReadB", 0), Step("ReadB", 1),
        Step("LoadA", 2, guard=two, stage=lambda t: (t + 1) % 2),
        Step("LoadB", 2, guard=two, stage=lambda t: (t + 1) % 2),
        Step("WaitLgkm", 0), Step("Mma", 0, 0), Step("Mma", 0, 1),
        Step("ReadA", 1), Step("WaitLgkm", 0), Step("Mma", 1, 0), Step("Mma", 1, 1),
        Step("WaitVm", 0, count=lambda t, T: 4 if t + 2 < T else 0), Step("Barrier"),
    ]
    return Plan("seed", {"kBlockK": 64}, prologue, iteration, [], 2, {"A": 4, "B": 4}, {"A": 1, "B": 1})


# ---------------------------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Load:
    tile: int
    stage: int
    operand: str
    issue_epoch: int
    left: int  # instructions not yet retired
    done_epoch: Optional[int] = None


@dataclasses.dataclass
class _Read:
    tile: int
    stage: int
    operand: str
    half: int
    epoch: int
    source: Optional[_Load]
    left: int
    done_epoch: Optional[int] = None


def simulate(plan: Plan, num_tiles: int) -> list[str]:
    """Run `plan` for `num_tiles` K tiles; return the list of violations (empty: the schedule is right)."""
    T = num_tiles
    errors: list[str] = []
    epoch = 0
    vm_fifo: list[tuple[_Load, int]] = []  # (load, instruction index), oldest first
    lgkm_fifo: list[_Read] = []
    last_load: dict = {}  # (stage, operand) -> most recent _Load
    reads: list[_Read] = []
    frags: dict = {}  # ("A"|"B", half) -> _Read
    mmas: dict = {}
    loads: list[_Load] = []

    def err(where, msg):
        if len(errors) < 50:
            errors.append(f"T={T} {where}: {msg}")

    def retire_vm(n):
        while len(vm_fifo) > n:
            ld, _ = vm_fifo.pop(0)
            ld.left -= 1
            if ld.left == 0:
                ld.done_epoch = epoch

    def run(steps, t, where):
        nonlocal epoch
        for i, s in enumerate(steps):
            w = f"{where}[{i}] {s.op}"
            if s.op == "WaitVm":
                retire_vm(s.count(t, T) if s.count else s.a)
            elif s.op == "WaitLgkm":
                n = s.count(t, T) if s.count else s.a
                while len(lgkm_fifo) > n:  # one FIFO entry per ds_read instruction
                    rd = lgkm_fifo.pop(0)
                    rd.left -= 1
                    if rd.left == 0:
                        rd.done_epoch = epoch
            elif s.op == "Barrier":
                epoch += 1
            elif s.op in ("LoadA", "LoadB"):
                if s.guard is not None and not s.guard(t, T):
                    continue
                operand = s.op[-1]
                tile = t + s.a
                stage = s.stage(t) if s.stage else plan.stage_of(tile)
                ld = _Load(tile, stage, operand, epoch, plan.loads_per[operand])
                # every earlier read of this stage/operand must be finished, in an earlier epoch
                for rd in reads:
                    if rd.stage == stage and rd.operand == operand and rd.source is not None:
                        if rd.done_epoch is None or rd.done_epoch >= epoch:
                            if not getattr(rd, "_flagged", False):
                                err(w, f"load of tile {tile} into stage {stage}{operand} while tile {rd.tile} "
                                       f"may still be read there (read finished in epoch {rd.done_epoch}, "
                                       f"load issued in epoch {epoch})")
                                rd._flagged = True
                last_load[(stage, operand)] = ld
                loads.append(ld)
                for k in range(ld.left):
                    vm_fifo.append((ld, k))
            elif s.op in ("ReadA", "ReadB"):
                operand = s.op[-1]
                stage = plan.stage_of(t)
                src = last_load.get((stage, operand))
                if src is None or src.tile != t:
                    err(w, f"reads stage {stage}{operand} expecting tile {t}, sees "
                           f"{'nothing' if src is None else 'tile %d' % src.tile}")
                elif src.done_epoch is None or src.done_epoch >= epoch:
                    err(w, f"reads tile {t} from stage {stage}{operand} before every wave's load of it was waited "
                           f"for and a barrier passed (wait epoch {src.done_epoch}, read epoch {epoch})")
                rd = _Read(t, stage, operand, s.a, epoch, src, plan.reads_per[operand])
                reads.append(rd)
                lgkm_fifo.extend([rd] * rd.left)
                frags[(operand, s.a)] = rd
            elif s.op == "Mma":
                for key in (("A", s.a), ("B", s.b)):
                    rd = frags.get(key)
                    if rd is None or rd.tile != t:
                        err(w, f"MMA({s.a},{s.b}) of tile {t} uses fragment {key} of "
                               f"{'nothing' if rd is None else 'tile %d' % rd.tile}")
                    elif rd.done_epoch is None:
                        err(w, f"MMA({s.a},{s.b}) of tile {t} uses fragment {key} before its ds_read was waited for")
                mmas[(t, s.a, s.b)] = mmas.get((t, s.a, s.b), 0) + 1

    run(plan.prologue, 0, "prologue")
    for t in range(T):
        run(plan.iteration, t, f"iter t={t}")
    run(plan.epilogue, T, "epilogue")
    for t in range(T):
        for i in (0, 1):
            for j in (0, 1):
                if mmas.get((t, i, j), 0) != 1:
                    err("end", f"tile {t} MMA({i},{j}) ran {mmas.get((t, i, j), 0)} times, expected once")
    if vm_fifo:
        err("end", f"{len(vm_fifo)} buffer-load instructions still in flight when the wave ends")
    for rd in reads:
        if rd.done_epoch is None:
            err("end", f"read of tile {rd.tile} stage {rd.stage}{rd.operand} never waited for")
            break
    return errors


def check_all(plan: Plan, max_tiles: int = 64) -> dict:
    """{num_tiles: errors} for 1..max_tiles (only the failing counts)."""
    out = {}
    for T in range(1, max_tiles + 1):
        e = simulate(plan, T)
        if e:
            out[T] = e
    return out


# ---------------------------------------------------------------------------------------------------------------
# What the compiled main loop must look like (used by the assembly check)
# ---------------------------------------------------------------------------------------------------------------
def expected_loop_events(plan: Plan, mfma_per_mma: Optional[int] = None) -> list[tuple]:
    """The main loop body as the ordered events the assembly parser extracts: ("load",) per buffer_load...lds,
    ("read",) per ds_read, ("mfma",), ("vmcnt", n), ("lgkmcnt", n), ("barrier",)."""
    c = plan.consts
    if mfma_per_mma is None:
        frag_m = c["kBlockM"] // c["kWavesM"] // 2
        frag_n = c["kBlockN"] // c["kWavesN"] // 2
        mfma_per_mma = (frag_m // 16) * (frag_n // 16) * (c["kBlockK"] // 32)  # v_mfma_f32_16x16x32_bf16
    ev: list[tuple] = []
    for s in plan.iteration:
        if s.op == "WaitVm":
            ev.append(("vmcnt", s.a))
        elif s.op == "WaitLgkm":
            ev.append(("lgkmcnt", s.a))
        elif s.op == "Barrier":
            ev.append(("barrier",))
        elif s.op in ("LoadA", "LoadB"):
            ev += [("load",)] * plan.loads_per[s.op[-1]]
        elif s.op in ("ReadA", "ReadB"):
            ev += [("read",)] * plan.reads_per[s.op[-1]]
        elif s.op == "Mma":
            ev += [("mfma",)] * mfma_per_mma
    return ev


if __name__ == "__main__":  # pragma: no cover
    p = load_plan()
    bad = check_all(p)
    print(f"{p.name}: stages={p.stages} loads/tile={p.loads_per} -> "
          f"{'OK for 1..64 tiles' if not bad else bad}")
    s = simulate(seed_plan(), 3)
    print("seed at 3 tiles:", s[:3])
