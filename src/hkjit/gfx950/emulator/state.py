"""Per-wave architectural state (SGPRs, VGPRs, AGPRs, EXEC, VCC, SCC, M0, PC) and operand access.

Why one place: every handler reads and writes operands the same way (inline constants, literals, SGPR pairs,
EXEC masking of VALU writes), so that logic lives here and handlers stay one-liners over numpy rows.
"""
from __future__ import annotations

import numpy as np

from .decode import EXEC, M0, SGPR_FILE, VCC, Operand
from .errors import EmulatorError, UnknownInstructionError

LANES = 64
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
_ALL = np.ones(LANES, bool)


_SHIFTS = np.arange(LANES, dtype=np.uint64)
_ONE = np.uint64(1)


def mask_to_int(m: np.ndarray) -> int:
    return int(np.packbits(m, bitorder="little").view("<u8")[0])


def int_to_mask(x: int) -> np.ndarray:
    return ((np.uint64(x & M64) >> _SHIFTS) & _ONE).astype(bool)


class Pending:
    """An issued, not yet completed memory operation of one wave (see machine.py for the timing model)."""

    __slots__ = ("counter", "complete", "regs", "ins", "lds_read", "lds_write", "done", "seq", "ds", "smem")

    def __init__(self, counter, complete, regs, ins, lds_read=None, lds_write=None, seq=0, ds=False):
        self.counter = counter      # 'vm' or 'lgkm'
        self.seq = seq              # issue number within its counter
        self.ds = ds                # an LDS (DS) instruction: these complete in order within the wave
        self.smem = False           # a scalar memory load: out of order, covered only by lgkmcnt(0)
        self.complete = complete    # callable(): applies the operation's effect
        self.regs = regs            # registers it will write (hazard tracking)
        self.ins = ins
        self.lds_read = lds_read    # dword indices it samples at completion (ds_read)
        self.lds_write = lds_write  # dword indices it writes at completion (DMA, ds_write)
        self.done = False


class Wave:
    def __init__(self, wg, wave_id: int, nvgpr: int, nagpr: int) -> None:
        self.wg = wg
        self.id = wave_id
        self.s = [0] * SGPR_FILE
        self.scc = 0
        self.v = np.zeros((nvgpr, LANES), np.uint32)
        self.a = np.zeros((max(nagpr, 1), LANES), np.uint32)
        self.pc = 0                 # index into the kernel's instruction list
        self.ended = False
        self.at_barrier = False
        self.exec_mask = np.zeros(LANES, bool)
        self.exec_full = False
        self.queue: list[Pending] = []          # issue order
        self.pending_regs: dict[int, int] = {}  # register id -> number of in-flight writers
        self.issued = {"vm": 0, "lgkm": 0}      # operations issued so far, per counter
        self._masks: dict[int, tuple] = {}      # SGPR pair -> (value, lane mask) last written by a VOPC
        self.instructions = 0

    # ---------------------------------------------------------------- scalar registers
    def set_s(self, i: int, val: int) -> None:
        if i >= SGPR_FILE:
            raise EmulatorError(f"write to SGPR {i}, outside the modelled scalar file")
        self.s[i] = val & M32
        if i == EXEC or i == EXEC + 1:
            self._exec_changed()

    def set_s64(self, i: int, val: int) -> None:
        self.s[i] = val & M32
        self.s[i + 1] = (val >> 32) & M32
        if i in (EXEC, EXEC - 1, EXEC + 1):
            self._exec_changed()

    def get_s64(self, i: int) -> int:
        return self.s[i] | self.s[i + 1] << 32

    @property
    def exec(self) -> int:
        return self.s[EXEC] | self.s[EXEC + 1] << 32

    def set_exec(self, val: int) -> None:
        self.set_s64(EXEC, val)

    def _exec_changed(self) -> None:
        e = self.exec
        self.exec_full = e == M64
        self.exec_mask = _ALL if self.exec_full else int_to_mask(e)

    @property
    def vcc(self) -> int:
        return self.s[VCC] | self.s[VCC + 1] << 32

    @property
    def m0(self) -> int:
        return self.s[M0]

    # ---------------------------------------------------------------- scalar operand values
    def sval(self, o: Operand) -> int:
        """32-bit value of a scalar-ALU source."""
        k = o.kind
        if k == "s":
            return self.s[o.index]
        if k == "i":
            return o.v32
        if k == "scc":
            return self.scc
        raise UnknownInstructionError(f"operand {o.text!r} is not a scalar source", text=o.text)

    def sval64(self, o: Operand) -> int:
        k = o.kind
        if k == "s":
            return self.s[o.index] | self.s[o.index + 1] << 32
        if k == "i":
            return o.v64
        if k == "scc":
            return self.scc
        raise UnknownInstructionError(f"operand {o.text!r} is not a 64-bit scalar source", text=o.text)

    # ---------------------------------------------------------------- vector operand values
    def vval(self, o: Operand):
        """uint32 row (64,) of a VALU source; scalars come back as np.uint32 (numpy broadcasts them)."""
        k = o.kind
        if k == "v":
            return self.v[o.index]
        if k == "s":
            return np.uint32(self.s[o.index])
        if k == "i":
            return np.uint32(o.v32)
        if k == "a":
            return self.a[o.index]
        if k == "scc":
            return np.uint32(self.scc)
        raise UnknownInstructionError(f"operand {o.text!r} is not a vector source", text=o.text)

    def vval64(self, o: Operand):
        k = o.kind
        if k == "v":
            return self.v[o.index].astype(np.uint64) | self.v[o.index + 1].astype(np.uint64) << np.uint64(32)
        if k == "s":
            return np.uint64(self.get_s64(o.index))
        if k == "i":
            return np.uint64(o.v64)
        if k == "a":
            return self.a[o.index].astype(np.uint64) | self.a[o.index + 1].astype(np.uint64) << np.uint64(32)
        raise UnknownInstructionError(f"operand {o.text!r} is not a 64-bit vector source", text=o.text)

    def vrows(self, o: Operand) -> np.ndarray:
        """The (count, 64) register block of a VGPR/AGPR range operand (a view)."""
        if o.kind == "v":
            return self.v[o.index:o.index + o.count]
        if o.kind == "a":
            return self.a[o.index:o.index + o.count]
        raise UnknownInstructionError(f"operand {o.text!r} must be a VGPR/AGPR range", text=o.text)

    def lane_mask(self, o: Operand) -> np.ndarray:
        """A 64-lane condition held in an SGPR pair (or VCC / a constant)."""
        val = self.sval64(o)
        if o.kind == "s":
            hit = self._masks.get(o.index)
            if hit is not None and hit[0] == val:
                return hit[1]
        return int_to_mask(val)

    # ---------------------------------------------------------------- vector writes (EXEC-masked)
    def vwrite(self, o: Operand, val) -> None:
        row = self.v[o.index] if o.kind == "v" else self.a[o.index] if o.kind == "a" else None
        if row is None:
            raise UnknownInstructionError(f"operand {o.text!r} is not a vector destination", text=o.text)
        if self.exec_full:
            row[...] = val
        else:
            np.copyto(row, val, where=self.exec_mask, casting="unsafe")

    def vwrite64(self, o: Operand, val) -> None:
        val = np.asarray(val, np.uint64)
        lo = (val & np.uint64(M32)).astype(np.uint32)
        hi = (val >> np.uint64(32)).astype(np.uint32)
        f = self.v if o.kind == "v" else self.a
        if self.exec_full:
            f[o.index] = lo
            f[o.index + 1] = hi
        else:
            np.copyto(f[o.index], lo, where=self.exec_mask)
            np.copyto(f[o.index + 1], hi, where=self.exec_mask)

    def sdst_mask(self, o: Operand, m: np.ndarray) -> None:
        """Write a per-lane condition to an SGPR pair (inactive lanes read as 0, as VOPC results do)."""
        if not self.exec_full:
            m = m & self.exec_mask
        val = mask_to_int(m)
        self.set_s64(o.index, val)
        self._masks[o.index] = (val, m)

    # ---------------------------------------------------------------- asynchrony (timing model: machine.py)
    def issue(self, counter: str, complete, regs, ins, lds_read=None, lds_write=None, ds: bool = False,
              smem: bool = False) -> None:
        p = Pending(counter, complete, regs, ins, lds_read, lds_write, self.issued[counter], ds)
        p.smem = smem
        self.issued[counter] += 1
        self.queue.append(p)
        pr = self.pending_regs
        for r in regs:
            pr[r] = pr.get(r, 0) + 1
        self.wg.schedule_completion(self, p)
        fp = self.wg.inflight
        if lds_read is not None:
            fp.add("r", self.id, lds_read, 1)
        if lds_write is not None:
            fp.add("w_ds" if ds else "w_dma", self.id, lds_write, 1)

    def complete(self, p: Pending) -> None:
        """Apply one in-flight operation's effect now (register write, memory/LDS write, LDS sample).  LDS
        instructions of one wave execute in order (one LDS pipe), so a DS operation first completes the older
        ones.  The operation stays outstanding -- its registers and LDS bytes unsafe to touch -- until an
        s_waitcnt covers it (retire)."""
        if p.done:
            return
        if p.ds:
            for q in [q for q in self.queue if q.ds and not q.done and q.seq < p.seq and q.counter == p.counter]:
                self.complete(q)
        p.done = True
        p.complete()

    def retire(self, p: Pending) -> None:
        """An s_waitcnt (or s_endpgm) covered `p`: it has completed and its registers / LDS bytes are safe."""
        self.complete(p)
        self.queue.remove(p)
        pr = self.pending_regs
        for r in p.regs:
            n = pr[r] - 1
            if n:
                pr[r] = n
            else:
                del pr[r]
        fp = self.wg.inflight
        if p.lds_read is not None:
            fp.add("r", self.id, p.lds_read, -1)
        if p.lds_write is not None:
            fp.add("w_ds" if p.ds else "w_dma", self.id, p.lds_write, -1)

    def wait(self, counter: str, n: int) -> None:
        """s_waitcnt <counter>(n): every operation of that counter issued before the n most recently issued
        ones completes now (if it has not landed already) and is retired.  (The counter decrements in issue
        order for LDS and for vector memory on gfx9, so this is what the count guarantees, even when newer
        operations landed out of order.)  Scalar memory loads return out of order, so only lgkmcnt(0) covers
        them.  Their order among themselves is shuffled."""
        limit = self.issued[counter] - n
        due = [p for p in self.queue if p.counter == counter and p.seq < limit and not (n and p.smem)]
        if not due:
            return
        self.wg.rng.shuffle(due)
        for p in due:
            self.complete(p)
        for p in due:
            self.retire(p)

    def drain(self) -> None:
        due = list(self.queue)
        self.wg.rng.shuffle(due)
        for p in due:
            self.complete(p)
        for p in due:
            self.retire(p)

    def jump(self, addr: int) -> None:
        i = self.wg.index_of.get(addr)
        if i is None:
            raise EmulatorError(f"wave {self.id}: branch to 0x{addr:x}, which is not an instruction of the kernel")
        self.pc = i
