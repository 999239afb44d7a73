"""Run a kernel: initial execution state, the adversarial scheduler, and the hazard record.

Timing model (seeded, adversarial; why: a schedule bug shows up only under some orders, so every run draws a
different legal order and the checks hold for all of them):
- waves of a workgroup interleave: each step picks a random runnable wave and runs a random burst of 1..burst
  instructions of it;
- each vector-memory (vmcnt) and LDS/scalar-memory (lgkmcnt) operation takes effect at a random time after its
  issue: after every burst, each in-flight operation of every wave completes with probability `complete_prob`
  (drawn up front as a geometric number of bursts), so they land out of program order too (except that one
  wave's LDS instructions land in order, as its single LDS pipe executes them); `s_waitcnt` forces every
  operation of its counter issued before the N newest (scalar loads: only lgkmcnt(0), they return out of
  order); an operation is *outstanding* from issue until such a wait covers it, even if it landed earlier.
  A wave's s_endpgm leaves its outstanding operations to land at their own times; the workgroup drains what
  is left when every wave has ended.  An LDS read samples LDS at its completion, a load writes its registers
  then;
- starvation (every third seed, `seed % 3 == 2`, or Launch.starve): the run is a chain of episodes, each
  starving a random subset of the waves (a random set, or a contiguous run of wave ids such as one wave row)
  for a random stretch of 100..4000 instructions of the others (some episodes starve nobody): a starved wave
  runs only while no other wave can, as hardware may deschedule a wave for that long.  Why: with bursts alone
  no wave falls more than a few instructions behind, so a missing barrier between wave groups stays hidden;
- s_barrier blocks a wave until every wave of the workgroup that has not ended has arrived (gfx9: a wave
  that ended no longer counts).
Workgroups run one after another (in a seeded random order) on their own LDS, sharing global memory.
Not modelled: instruction latencies and the s_nop wait states the ISA requires between dependent VALU/MFMA
instructions (the compiler's business; every instruction's result is available to the next one), caches,
and any ordering between workgroups.

Hazards, each reported once per (kind, workgroup, wave, pc):
- "reg-in-flight": an instruction names (reads or overwrites) a VGPR/AGPR/SGPR that an outstanding load
  writes: one no s_waitcnt has covered yet (whether or not it happened to land already in this run);
- "lds-read-during-write": an LDS read issued while a DMA / ds_write into those bytes is outstanding (not yet
  covered by its wave's s_waitcnt);
- "lds-write-during-read": a DMA / ds_write into LDS bytes that an outstanding LDS read covers (it may land
  before the read samples);
- "lds-write-during-write": two outstanding writes to the same LDS bytes (DMAs of any wave, vector memory
  being unordered; a ds_write against another wave's);
- "lds-out-of-bounds": an LDS access past the workgroup's allocation (group segment + dynamic LDS);
- "global-fault": a buffer/scalar access (in the buffer's range) outside every allocation.
"""
from __future__ import annotations

import heapq
import math
import random
import struct
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from . import mfma, ops_memory, ops_scalar, ops_vector
from .codeobject import CodeObject, KernelInfo
from .decode import EXEC, Instruction
from .errors import EmulatorError, UnknownInstructionError
from .memory import GlobalMemory
from .state import LANES, Wave

LDS_BYTES = 160 * 1024  # gfx950 LDS per workgroup

HANDLERS: dict = {}
for _t in (ops_scalar.HANDLERS, ops_vector.HANDLERS, ops_memory.HANDLERS, mfma.HANDLERS):
    HANDLERS.update(_t)


def supported_opcodes() -> list[str]:
    """Every opcode (mnemonic without _e32/_e64) the emulator executes."""
    return sorted(HANDLERS)


def handler_for(ins: Instruction):
    if ins.error:
        raise UnknownInstructionError(f"{ins.error} (at 0x{ins.addr:x}: {ins.text})", ins.mnemonic, ins.text, ins.addr)
    h = HANDLERS.get(ins.op)
    if h is None:
        raise UnknownInstructionError(f"unknown instruction {ins.mnemonic!r} at 0x{ins.addr:x} ({ins.text}): the "
                                      f"emulator has no semantics for it", ins.mnemonic, ins.text, ins.addr)
    return h


COMPILERS: dict = dict(ops_vector.COMPILERS)


def _bind(ins: Instruction):
    """The function that executes `ins`: a pre-bound closure where a compiler exists, else the generic handler;
    None when the opcode is unknown (raised when executed).  A modifier the compiler rejects raises when the
    instruction executes too, not at load."""
    if ins.error:
        return None
    comp = COMPILERS.get(ins.op)
    if comp is not None:
        try:
            return comp(ins)
        except UnknownInstructionError as e:
            err = e

            def fail(w, i):
                raise err
            return fail
    return HANDLERS.get(ins.op)


def unsupported(kernel: KernelInfo) -> list[Instruction]:
    """The kernel's instructions the emulator cannot execute (empty when it can run all of them)."""
    return [i for i in kernel.instructions if i.error or i.op not in HANDLERS]


@dataclass(frozen=True)
class Hazard:
    kind: str
    workgroup: tuple
    wave: int
    pc: int
    instruction: str
    location: str

    def __str__(self) -> str:
        return (f"{self.kind}: workgroup {self.workgroup} wave {self.wave} pc 0x{self.pc:x} `{self.instruction}`: "
                f"{self.location}")


@dataclass
class Launch:
    kernel: str
    grid: tuple = (1, 1, 1)           # in workgroups
    block: tuple = (64, 1, 1)         # in work-items
    kernarg: bytes = b""
    dynamic_lds: int = 0
    workgroups: Optional[Sequence[tuple]] = None  # None = all of the grid
    seed: int = 0
    max_instructions: Optional[int] = None       # per workgroup; None = 5 million
    burst: int = 8                                # longest run of one wave between switches
    complete_prob: Optional[float] = None         # per op per burst; None = drawn from the seed
    starve: Optional[bool] = None                 # starvation episodes; None = for seeds with seed % 3 == 2
    max_hazards: int = 1000


@dataclass
class Report:
    hazards: list = field(default_factory=list)
    instructions: int = 0
    workgroups: int = 0
    waves: int = 0
    seconds: float = 0.0
    seed: int = 0
    opcodes: dict = field(default_factory=dict)  # opcode -> times executed (all waves)

    @property
    def ok(self) -> bool:
        return not self.hazards

    def summary(self) -> str:
        head = (f"{self.instructions} instructions, {self.workgroups} workgroup(s), {self.waves} waves, "
                f"{self.seconds:.2f} s, seed {self.seed}: ")
        if self.ok:
            return head + "no hazards"
        return head + f"{len(self.hazards)} hazard(s):\n" + "\n".join(f"  {h}" for h in self.hazards[:20])


class LdsFootprints:
    """Counts of in-flight LDS accesses per dword, per kind ('r' DS reads, 'w_ds' DS writes, 'w_dma' DMA writes),
    per wave and in total (the total makes the common no-conflict check one gather).  `where` is a slice (a
    contiguous DMA) or an index array; an index repeated in one array counts once, both on add and on remove."""

    KINDS = ("r", "w_ds", "w_dma")

    def __init__(self, nwaves: int, ndwords: int) -> None:
        self.per = {k: np.zeros((nwaves, ndwords), np.int16) for k in self.KINDS}
        self.tot = {k: np.zeros(ndwords, np.int16) for k in self.KINDS}

    def add(self, kind: str, wave: int, where, delta: int) -> None:
        row = self.per[kind][wave]
        row[where] += delta
        self.tot[kind][where] += delta

    def conflict(self, kind: str, where, skip_wave: Optional[int]):
        """(first conflicting LDS byte, [waves]) of in-flight `kind` accesses covering `where`, or None."""
        t = self.tot[kind][where]
        if skip_wave is not None:
            t = t - self.per[kind][skip_wave, where]
        if not t.any():
            return None
        hit = self.per[kind][:, where].copy()
        if skip_wave is not None:
            hit[skip_wave] = 0
        ws, ks = np.nonzero(hit)
        first = int(ks.min())
        dword = (where.start + first) if isinstance(where, slice) else int(np.asarray(where).reshape(-1)[first])
        return dword * 4, sorted(set(ws.tolist()))


class Workgroup:
    def __init__(self, machine: "Machine", wg_id: tuple, nwaves: int, lds_limit: int) -> None:
        self.machine = machine
        self.id = wg_id
        self.mem = machine.mem
        self.rng = machine.rng
        self.index_of = machine.index_of
        self.lds = np.zeros(LDS_BYTES, np.uint8)
        self.lds32 = self.lds.view(np.uint32)
        self.lds_limit = lds_limit
        self.inflight = LdsFootprints(nwaves, LDS_BYTES // 4)
        self.waves: list[Wave] = []
        self.tick = 0            # scheduler steps (bursts) so far
        self.due: list = []      # heap of (tick, n, wave, op): when an in-flight op completes on its own
        self.complete_prob = 0.3
        self._n = 0

    def schedule_completion(self, w: Wave, p) -> None:
        """Draw when `p` completes by itself: after each burst it does with probability complete_prob
        (a geometric number of bursts; never, for complete_prob 0: then only a wait or s_endpgm completes it)."""
        q = self.complete_prob
        if q <= 0:
            return
        k = 1 if q >= 1 else 1 + int(math.log(1.0 - self.rng.random()) / math.log(1.0 - q))
        self._n += 1
        heapq.heappush(self.due, (self.tick + k, self._n, w, p))

    # ------------------------------------------------------------------ hazards
    def hazard(self, kind: str, w: Wave, ins: Instruction, location: str) -> None:
        self.machine.hazard(kind, self.id, w.id, ins, location)

    def check_lds_read(self, w: Wave, ins: Instruction, where) -> None:
        """A DS read at issue: any in-flight DMA into those dwords (any wave: the DMA and the LDS pipe are not
        ordered), or any other wave's in-flight ds_write, is a race."""
        for kind, skip, what in (("w_dma", None, "DMA"), ("w_ds", w.id, "ds_write")):
            c = self.inflight.conflict(kind, where, skip)
            if c:
                self.hazard("lds-read-during-write", w, ins, f"LDS 0x{c[0]:x}: written by an outstanding {what} of "
                                                             f"wave {c[1]}")

    def check_lds_write(self, w: Wave, ins: Instruction, where, dma: bool) -> None:
        """A DMA or ds_write at issue: outstanding reads of those dwords (other waves'; for a DMA also this
        wave's own, which the LDS pipe does not order against it) and outstanding writes are races."""
        c = self.inflight.conflict("r", where, None if dma else w.id)
        if c:
            self.hazard("lds-write-during-read", w, ins, f"LDS 0x{c[0]:x}: still being read by an outstanding ds_read "
                                                         f"of wave {c[1]}")
        # a DMA's own earlier DMAs count too: vector memory may land out of order, so two outstanding writes of
        # the same bytes leave either value; a ds_write is ordered only against this wave's own ds_writes
        for kind, skip, what in (("w_dma", None, "DMA"), ("w_ds", None if dma else w.id, "ds_write")):
            c = self.inflight.conflict(kind, where, skip)
            if c:
                self.hazard("lds-write-during-write", w, ins, f"LDS 0x{c[0]:x}: also written by an outstanding "
                                                              f"{what} of wave {c[1]}")

    # ------------------------------------------------------------------ barrier
    def arrive(self, w: Wave) -> None:
        w.at_barrier = True
        self._maybe_release()

    def end(self, w: Wave) -> None:
        """s_endpgm: the wave stops; what it left outstanding still lands at its own time (nothing waits for
        it, so it retires as it completes) -- a race with another wave stays visible.  The workgroup drains
        the rest when every wave has ended."""
        w.ended = True
        for p in [p for p in w.queue if p.done]:
            w.retire(p)
        self._maybe_release()

    def _maybe_release(self) -> None:
        live = [x for x in self.waves if not x.ended]
        if live and all(x.at_barrier for x in live):
            for x in live:
                x.at_barrier = False


class Machine:
    def __init__(self, co: CodeObject, launch: Launch, mem: GlobalMemory) -> None:
        self.co = co
        self.launch = launch
        self.mem = mem
        self.kernel = co.kernel(launch.kernel)
        self.rng = random.Random(launch.seed)
        self.report = Report(seed=launch.seed)
        self._seen: set = set()
        prog = self.kernel.instructions
        self.prog = prog
        self.index_of = {ins.addr: i for i, ins in enumerate(prog)}
        self.handlers = [_bind(i) for i in prog]
        if not self.kernel.wave64:
            raise EmulatorError(f"kernel {self.kernel.name} is wave32; the emulator models wave64 (gfx950) only")

    def hazard(self, kind, wg, wave, ins, location) -> None:
        key = (kind, wg, wave, ins.addr)
        if key in self._seen or len(self.report.hazards) >= self.launch.max_hazards:
            return
        self._seen.add(key)
        self.report.hazards.append(Hazard(kind, wg, wave, ins.addr, ins.text, location))

    # ------------------------------------------------------------------ dispatch setup
    def _kernarg(self) -> int:
        k, L = self.kernel, self.launch
        size = max(k.kernarg_size, len(L.kernarg))
        buf = bytearray(size)
        buf[:len(L.kernarg)] = L.kernarg
        gx, gy, gz = L.grid
        bx, by, bz = L.block
        hidden = {"hidden_block_count_x": ("<I", gx), "hidden_block_count_y": ("<I", gy),
                  "hidden_block_count_z": ("<I", gz), "hidden_group_size_x": ("<H", bx),
                  "hidden_group_size_y": ("<H", by), "hidden_group_size_z": ("<H", bz),
                  "hidden_remainder_x": ("<H", 0), "hidden_remainder_y": ("<H", 0),
                  "hidden_remainder_z": ("<H", 0),
                  "hidden_grid_dims": ("<H", 1 + (gy * by > 1 or gz * bz > 1) + (gz * bz > 1))}
        for a in k.args:
            vk, off = a.get(".value_kind", ""), a.get(".offset", 0)
            if vk in hidden and off >= len(L.kernarg):
                fmt, val = hidden[vk]
                struct.pack_into(fmt, buf, off, val)
        # the segment is padded (zeros) to whole 256 bytes, as a runtime's kernarg pool is: a wide s_load of the
        # last arguments may read past the metadata's size
        addr = self.mem.alloc(-(-max(size, 4) // 256) * 256, 256)
        self.mem.write(addr, bytes(buf))
        return addr

    def _dispatch_packet(self, kernarg_addr: int, lds: int) -> int:
        L = self.launch
        pkt = bytearray(64)
        dims = 1 + (L.grid[1] * L.block[1] > 1 or L.grid[2] * L.block[2] > 1) + (L.grid[2] * L.block[2] > 1)
        struct.pack_into("<HHHHHH", pkt, 0, 0, dims, *L.block, 0)
        struct.pack_into("<III", pkt, 12, *(g * b for g, b in zip(L.grid, L.block)))
        struct.pack_into("<IIQQ", pkt, 24, self.kernel.private_segment_size, lds, 0, kernarg_addr)
        addr = self.mem.alloc(64, 64)
        self.mem.write(addr, bytes(pkt))
        return addr

    def _init_wave(self, w: Wave, wg_id: tuple, ptrs: dict) -> None:
        """Initial state per AMDGPUUsage "Initial Kernel Execution State": user SGPRs in descriptor order, then
        the enabled system SGPRs (workgroup ids x, y, z, workgroup info, private segment wave offset); v0 holds
        the work-item ids packed x | y << 10 | z << 20 (gfx90a+ packed work-item ids); EXEC the live lanes."""
        kd = self.kernel.descriptor
        for name, sgpr in kd.user_sgprs():
            if name in ("kernarg_segment_ptr", "dispatch_ptr", "queue_ptr"):
                w.set_s64(sgpr, ptrs[name])
            elif name == "private_segment_buffer":
                for k in range(4):
                    w.set_s(sgpr + k, 0)
        n = kd.user_sgpr_count
        for enabled, val in zip(kd.enable_workgroup_id, wg_id):
            if enabled:
                w.set_s(n, val)
                n += 1
        if kd.enable_workgroup_info:
            w.set_s(n, 0)
            n += 1
        if kd.enable_private_segment:
            w.set_s(n, 0)
            n += 1
        bx, by, bz = self.launch.block
        tid = w.id * LANES + np.arange(LANES)
        x, y, z = tid % bx, (tid // bx) % by, tid // (bx * by)
        mode = kd.enable_vgpr_workitem_id
        v0 = x | ((y << 10) if mode >= 1 else 0) | ((z << 20) if mode >= 2 else 0)
        w.v[0] = v0.astype(np.uint32)
        live = tid < bx * by * bz
        w.set_s64(EXEC, int.from_bytes(np.packbits(live, bitorder="little").tobytes(), "little"))

    # ------------------------------------------------------------------ execution
    def run(self) -> Report:
        L, k = self.launch, self.kernel
        t0 = time.perf_counter()
        if min(L.grid) < 1 or min(L.block) < 1:
            raise EmulatorError(f"grid {L.grid} and block {L.block} must be >= 1 in every dimension")
        threads = L.block[0] * L.block[1] * L.block[2]
        if threads > 1024:
            raise EmulatorError(f"block {L.block} has {threads} work-items; the hardware maximum is 1024")
        lds = k.group_segment_size + L.dynamic_lds
        if lds > LDS_BYTES:
            raise EmulatorError(f"LDS request {lds} bytes (group segment {k.group_segment_size} + dynamic "
                                f"{L.dynamic_lds}) exceeds gfx950's {LDS_BYTES} bytes per workgroup")
        kernarg = self._kernarg()
        ptrs = {"kernarg_segment_ptr": kernarg, "dispatch_ptr": self._dispatch_packet(kernarg, lds),
                "queue_ptr": self.mem.alloc(256, 64)}
        if L.workgroups is None:
            wgs = [(x, y, z) for z in range(L.grid[2]) for y in range(L.grid[1]) for x in range(L.grid[0])]
        else:
            wgs = [tuple(t) + (0,) * (3 - len(t)) for t in L.workgroups]
            for t in wgs:
                if not all(0 <= a < g for a, g in zip(t, L.grid)):
                    raise EmulatorError(f"workgroup {t} is outside the grid {L.grid}")
        self.rng.shuffle(wgs)
        nwaves = -(-threads // LANES)
        for wg_id in wgs:
            wg = Workgroup(self, wg_id, nwaves, lds)
            wg.waves = [Wave(wg, i, 256, 256) for i in range(nwaves)]  # architectural VGPRs / AGPRs
            for w in wg.waves:
                self._init_wave(w, wg_id, ptrs)
            self._run_workgroup(wg)
            self.report.workgroups += 1
            self.report.waves += nwaves
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def _run_workgroup(self, wg: Workgroup) -> None:
        L = self.launch
        rng = self.rng
        q = L.complete_prob if L.complete_prob is not None else rng.choice((0.02, 0.1, 0.3, 0.7))
        wg.complete_prob = q
        limit = L.max_instructions or 5_000_000
        prog, handlers, nprog = self.prog, self.handlers, len(self.prog)
        waves = wg.waves
        executed = 0
        counts = [0] * nprog
        starve = L.starve if L.starve is not None else L.seed % 3 == 2
        starved: frozenset = frozenset()
        stretch = 0     # instructions of the unstarved waves left in this starvation episode
        while True:
            runnable = [w for w in waves if not w.ended and not w.at_barrier]
            if not runnable:
                if all(w.ended for w in waves):
                    for x in waves:
                        x.drain()
                    break
                raise EmulatorError(f"workgroup {wg.id}: every live wave is blocked (deadlock)")
            if starve:
                if stretch <= 0:
                    starved, stretch = _starvation_episode(rng, len(waves))
                if starved:
                    favoured = [w for w in runnable if w.id not in starved]
                    runnable = favoured or runnable
            w = runnable[rng.randrange(len(runnable))] if len(runnable) > 1 else runnable[0]
            before = executed
            for _ in range(rng.randint(1, L.burst)):
                pc = w.pc
                if pc >= nprog:
                    raise EmulatorError(f"wave {w.id} ran past the end of kernel {self.kernel.name} without "
                                        f"s_endpgm")
                ins = prog[pc]
                if w.pending_regs and not ins.regs.isdisjoint(w.pending_regs):
                    regs = sorted(r for r in ins.regs if r in w.pending_regs)
                    writer = next(p.ins for p in w.queue if set(p.regs) & set(regs))
                    self.hazard("reg-in-flight", wg.id, w.id, ins,
                                f"{_reg_names(regs)} loaded by `{writer.text}` (pc 0x{writer.addr:x}), which no "
                                f"s_waitcnt has covered yet")
                h = handlers[pc]
                if h is None:
                    handler_for(ins)  # raises UnknownInstructionError naming it
                w.pc = pc + 1
                counts[pc] += 1
                h(w, ins)
                w.instructions += 1
                executed += 1
                if w.ended or w.at_barrier:
                    break
            if starve and w.id not in starved:
                stretch -= executed - before
            if executed > limit:
                raise EmulatorError(f"workgroup {wg.id}: more than {limit} instructions executed (runaway loop? "
                                    f"raise Launch.max_instructions)")
            wg.tick += 1
            due = wg.due
            while due and due[0][0] <= wg.tick:
                _, _, x, p = heapq.heappop(due)
                if x.ended:
                    if p in x.queue:
                        x.retire(p)
                elif not p.done:
                    x.complete(p)
        self.report.instructions += executed
        ops = self.report.opcodes
        for ins, n in zip(prog, counts):
            if n:
                ops[ins.op] = ops.get(ins.op, 0) + n


def _starvation_episode(rng: random.Random, nwaves: int) -> tuple[frozenset, int]:
    """(waves to starve, stretch in instructions of the others) of one starvation episode: a random proper
    subset (each wave with probability 1/2), or a contiguous run of wave ids (a wave row / group of a kernel
    that splits its waves that way), or (one episode in five) nobody, for a stretch of plain interleaving."""
    stretch = rng.randint(100, 4000)
    if nwaves < 2 or rng.random() < 0.2:
        return frozenset(), stretch
    if rng.random() < 0.5:
        lo = rng.randrange(nwaves)
        hi = rng.randint(lo + 1, nwaves if lo else nwaves - 1)
        return frozenset(range(lo, hi)), stretch
    while True:
        s = frozenset(i for i in range(nwaves) if rng.random() < 0.5)
        if 0 < len(s) < nwaves:
            return s, stretch


def _reg_names(regs) -> str:
    from .decode import AGPR_BASE, SGPR_BASE
    out = []
    for r in regs:
        if r >= SGPR_BASE:
            out.append(f"s{r - SGPR_BASE}")
        elif r >= AGPR_BASE:
            out.append(f"a{r - AGPR_BASE}")
        else:
            out.append(f"v{r}")
    return ",".join(out)


def run(co: CodeObject, launch: Launch, mem: GlobalMemory) -> Report:
    """Execute `launch` of a kernel of `co` against `mem`; returns the Report (hazards, instruction count)."""
    return Machine(co, launch, mem).run()
