"""Memory instructions: scalar loads (SMEM), buffer loads/stores (MUBUF, incl. the LDS-DMA `lds` form), LDS
(DS) reads and writes, and the synchronisation ones (s_waitcnt, s_barrier, s_endpgm).

Every memory instruction only *issues* here: its effect (register write, memory/LDS write, LDS sample) is a
closure handed to `Wave.issue`, which the machine runs at a seeded random time no later than the s_waitcnt that
requires it (machine.py).  Operand layout and address rules from AMD's CDNA3/CDNA4 ISA (tinygrad's cdna
str_pcode.py: CalcBufferAddr, CalcDsAddr; "Buffer Resource", "Range checking", "Global load to LDS"):

- MUBUF address: base + (idxen ? index * stride : 0) + (offen ? vgpr offset : 0) + inst_offset + soffset.
  Range check, raw buffer (stride 0, no idxen): a component (dword, or the whole short/byte) is in range iff
  offset + component end <= num_records, with offset = vgpr offset + inst_offset + soffset; structured
  (idxen): in range iff index < num_records and offset + component end <= stride.  Out-of-range loads return 0,
  out-of-range stores are dropped.  Swizzled and add-tid resources are rejected (not modelled).
- LDS DMA (`buffer_load_* ... lds`): lane l's data goes to LDS byte M0 + inst_offset + l * size (size 4 for
  dword, 16 for gfx950's dwordx4; M0 taken whole, bounds-checked against the allocation).  Counted in vmcnt.
- DS: address = vaddr + offset (ds_read2/write2: offset0/offset1 in units of the element size).  Counted in
  lgkmcnt.  An access past the workgroup's allocation (group segment + dynamic LDS) is an "lds-out-of-bounds"
  hazard; such a read returns 0 and such a write is dropped.
"""
from __future__ import annotations

import numpy as np

from .decode import SGPR_BASE, waitcnt_fields
from .errors import EmulatorError, UnknownInstructionError
from .memory import BufferResource
from .ops_scalar import sx32

U32 = np.uint32
LANE = np.arange(64)

# ------------------------------------------------------------------------------------------------ scalar loads
SMEM_LOADS = {"s_load_dword": 1, "s_load_dwordx2": 2, "s_load_dwordx4": 4, "s_load_dwordx8": 8,
              "s_load_dwordx16": 16}


def h_s_load(w, ins):
    n = SMEM_LOADS[ins.op]
    d, base, off = ins.operands
    # SMEM offset: an SGPR, or a signed immediate; an extra `offset:` modifier adds to an SGPR offset
    addr = (w.sval64(base) & ~3) + (w.sval(off) if off.kind == "s" else sx32(off.v32)) + ins.mods.get("offset", 0)
    addr &= (1 << 64) - 1
    mem = w.wg.mem
    regs = tuple(SGPR_BASE + d.index + k for k in range(n))

    def complete():
        try:
            raw = mem.read(addr, 4 * n)
        except EmulatorError:
            w.wg.hazard("global-fault", w, ins, f"s_load of {4 * n} bytes at 0x{addr:x}: outside every allocation")
            raw = bytes(4 * n)
        vals = np.frombuffer(raw, U32)
        for k in range(n):
            w.s[d.index + k] = int(vals[k])

    w.issue("lgkm", complete, regs, ins)


# ------------------------------------------------------------------------------------------------ buffer
# name -> (components, bytes per component, kind): kind 'u' zero-extend, 's' sign-extend, 'hi' d16_hi half
BUF_LOADS = {"buffer_load_dword": (1, 4, "u"), "buffer_load_dwordx2": (2, 4, "u"),
             "buffer_load_dwordx3": (3, 4, "u"), "buffer_load_dwordx4": (4, 4, "u"),
             "buffer_load_ubyte": (1, 1, "u"), "buffer_load_sbyte": (1, 1, "s"),
             "buffer_load_ushort": (1, 2, "u"), "buffer_load_sshort": (1, 2, "s")}
BUF_STORES = {"buffer_store_dword": (1, 4, "u"), "buffer_store_dwordx2": (2, 4, "u"),
              "buffer_store_dwordx3": (3, 4, "u"), "buffer_store_dwordx4": (4, 4, "u"),
              "buffer_store_byte": (1, 1, "u"), "buffer_store_short": (1, 2, "u"),
              "buffer_store_byte_d16_hi": (1, 1, "hi"), "buffer_store_short_d16_hi": (1, 2, "hi")}
_BUF_MODS = {"offen", "idxen", "offset", "lds", "glc", "slc", "sc0", "sc1", "nt", "dlc"}


def _buf_layout(ins):
    """(vdata, vaddr, srsrc, soffset) operands, cached on the instruction."""
    lay = ins.__dict__.get("_buf")
    if lay is None:
        bad = [k for k in ins.mods if k not in _BUF_MODS]
        if bad:
            raise UnknownInstructionError(f"{ins.mnemonic}: modifier {bad[0]} is not supported (at 0x{ins.addr:x}:"
                                          f" {ins.text})", ins.mnemonic, ins.text, ins.addr)
        ops = ins.operands
        ri = next(i for i, o in enumerate(ops) if o.kind == "s" and o.count == 4)
        lds = ins.mods.get("lds", False)
        vdata = None if lds else ops[0]
        first_addr = 0 if lds else 1
        vaddr = ops[ri - 1] if ri - 1 >= first_addr and ops[ri - 1].kind == "v" else None
        lay = (vdata, vaddr, ops[ri], ops[ri + 1])
        ins.__dict__["_buf"] = lay
    return lay


def _buf_addresses(w, ins, ncomp, csize):
    """Per lane and component: global address (uint64 (64, ncomp)) and the in-range & active mask."""
    vdata, vaddr, srsrc, soffset = _buf_layout(ins)
    rs = BufferResource(w.s[srsrc.index:srsrc.index + 4])
    if rs.swizzle or rs.add_tid:
        raise EmulatorError(f"{ins.text} at 0x{ins.addr:x}: swizzled / add-tid buffer resources are not modelled")
    m = ins.mods
    offen, idxen = m.get("offen", False), m.get("idxen", False)
    voff = np.zeros(64, np.int64)
    index = np.zeros(64, np.int64)
    if vaddr is not None:
        if offen and idxen:
            index = w.v[vaddr.index].astype(np.int64)
            voff = w.v[vaddr.index + 1].astype(np.int64)
        elif offen:
            voff = w.v[vaddr.index].astype(np.int64)
        elif idxen:
            index = w.v[vaddr.index].astype(np.int64)
    off = voff + m.get("offset", 0) + w.sval(soffset)                           # (64,)
    comp = off[:, None] + np.arange(ncomp, dtype=np.int64)[None, :] * csize    # (64, ncomp)
    if idxen:
        ok = (index < rs.num_records)[:, None] & (comp + csize <= rs.stride)
        addr = rs.base + index[:, None] * rs.stride + comp
    else:
        ok = comp + csize <= rs.num_records
        addr = rs.base + comp
    ok &= w.exec_mask[:, None]
    return addr, ok, rs


def _global_span(w, ins, addr, ok, csize):
    """Map the in-range addresses to one allocation: (byte array, index array); lanes outside it -> fault."""
    if not ok.any():
        return None, None, ok
    mem = w.wg.mem
    first = int(addr[ok].min())
    hit = mem.find(first)
    if hit is None:
        w.wg.hazard("global-fault", w, ins, f"address 0x{first:x}: outside every allocation")
        return None, None, np.zeros_like(ok)
    base, arr = hit
    rel = addr - base
    inside = (rel >= 0) & (rel + csize <= arr.size)
    if (ok & ~inside).any():
        bad = int(addr[ok & ~inside].min())
        w.wg.hazard("global-fault", w, ins, f"address 0x{bad:x}: outside the allocation at 0x{base:x} "
                                           f"(+{arr.size} bytes)")
        ok = ok & inside
    return arr, np.where(ok, rel, 0), ok


def _gather(arr, rel, ok, csize):
    """uint32 (64, ncomp) of the bytes at rel (zero where not ok)."""
    idx = rel[:, :, None] + np.arange(csize)[None, None, :]
    raw = arr[idx]                                                             # (64, ncomp, csize) uint8
    raw[~ok] = 0
    if csize == 4:
        return np.ascontiguousarray(raw).view(U32)[:, :, 0]
    if csize == 2:
        return np.ascontiguousarray(raw).view(np.uint16)[:, :, 0].astype(U32)
    return raw[:, :, 0].astype(U32)


def h_buffer_load(w, ins):
    ncomp, csize, kind = BUF_LOADS[ins.op]
    vdata, vaddr, srsrc, soffset = _buf_layout(ins)
    addr, ok, rs = _buf_addresses(w, ins, ncomp, csize)
    exec_mask = w.exec_mask.copy()
    lds = ins.mods.get("lds", False)
    wg = w.wg
    if lds:
        size = ncomp * csize
        lds_base = w.m0 + ins.mods.get("offset", 0)
        lds_addr = lds_base + LANE * size                                     # (64,) bytes
        lanes = np.nonzero(exec_mask)[0]
        dst_bytes = (lds_addr[lanes, None] + np.arange(size)[None, :]).reshape(-1)
        dwords = np.unique(dst_bytes >> 2)
        if dst_bytes.size and (dst_bytes.min() < 0 or dst_bytes.max() >= wg.lds_limit):
            wg.hazard("lds-out-of-bounds", w, ins, f"LDS DMA to 0x{int(dst_bytes.min()):x}..0x{int(dst_bytes.max()):x}"
                                                   f" past the {wg.lds_limit}-byte allocation")
        inb = (dst_bytes >= 0) & (dst_bytes < wg.lds_limit)
        wg.check_lds_write(w, ins, dwords[(dwords >= 0) & (dwords < wg.lds_limit // 4)], dma=True)

        def complete():
            arr, rel, okk = _global_span(w, ins, addr, ok, csize)
            vals = _gather(arr, rel, okk, csize) if arr is not None else np.zeros((64, ncomp), U32)
            if csize == 4:
                data = np.ascontiguousarray(vals[lanes]).view(np.uint8).reshape(-1)
            elif csize == 2:
                data = vals[lanes].astype(np.uint16).view(np.uint8).reshape(-1)
            else:
                data = vals[lanes].astype(np.uint8).reshape(-1)
            wg.lds[dst_bytes[inb]] = data[inb]

        w.issue("vm", complete, (), ins, lds_write=dwords)
        return

    regs = vdata.regs()[:ncomp]
    if vdata.count < ncomp:
        raise UnknownInstructionError(f"{ins.text}: destination has {vdata.count} registers, needs {ncomp}",
                                      ins.mnemonic, ins.text, ins.addr)
    rows = w.vrows(vdata)

    def complete():
        arr, rel, okk = _global_span(w, ins, addr, ok, csize)
        vals = _gather(arr, rel, okk, csize) if arr is not None else np.zeros((64, ncomp), U32)
        if kind == "s":
            bits = 8 * csize
            vals = ((vals.astype(np.int64) ^ (1 << (bits - 1))) - (1 << (bits - 1))).astype(np.int64).astype(U32)
        for k in range(ncomp):
            np.copyto(rows[k], vals[:, k], where=exec_mask)

    w.issue("vm", complete, regs, ins)


def h_buffer_store(w, ins):
    ncomp, csize, kind = BUF_STORES[ins.op]
    vdata, vaddr, srsrc, soffset = _buf_layout(ins)
    addr, ok, rs = _buf_addresses(w, ins, ncomp, csize)
    data = w.vrows(vdata)[:ncomp].T.copy()                                     # (64, ncomp), sampled at issue
    if kind == "hi":  # *_D16_HI: the high half (short: VDATA[31:16], byte: VDATA[23:16])
        data = data >> U32(16)
    if not ok.any():
        w.issue("vm", lambda: None, (), ins)
        return

    def complete():
        arr, rel, okk = _global_span(w, ins, addr, ok, csize)
        if arr is None:
            return
        src = np.ascontiguousarray(data.astype({4: U32, 2: np.uint16, 1: np.uint8}[csize])).view(np.uint8)
        src = src.reshape(64, ncomp, csize)
        idx = rel[:, :, None] + np.arange(csize)[None, None, :]
        arr[idx[okk]] = src[okk]

    w.issue("vm", complete, (), ins)


# ------------------------------------------------------------------------------------------------ LDS (DS)
# name -> (elements, bytes per element, kind, two addresses)
DS_READS = {"ds_read_b32": (1, 4, "u", False), "ds_read_b64": (2, 4, "u", False), "ds_read_b96": (3, 4, "u", False),
            "ds_read_b128": (4, 4, "u", False), "ds_read_u8": (1, 1, "u", False), "ds_read_i8": (1, 1, "s", False),
            "ds_read_u16": (1, 2, "u", False), "ds_read_i16": (1, 2, "s", False),
            "ds_read2_b32": (2, 4, "u", True), "ds_read2_b64": (4, 4, "u", True),
            "ds_read2st64_b32": (2, 4, "u", True), "ds_read2st64_b64": (4, 4, "u", True)}
DS_WRITES = {"ds_write_b32": (1, 4, False), "ds_write_b64": (2, 4, False), "ds_write_b96": (3, 4, False),
             "ds_write_b128": (4, 4, False), "ds_write_b8": (1, 1, False), "ds_write_b16": (1, 2, False),
             "ds_write2_b32": (2, 4, True), "ds_write2_b64": (4, 4, True),
             "ds_write2st64_b32": (2, 4, True), "ds_write2st64_b64": (4, 4, True)}
_DS_MODS = {"offset", "offset0", "offset1", "gds"}


def _ds_byte_addrs(w, ins, vaddr, nbytes_total, two, elem_bytes):
    """(64, nbytes) byte addresses of each lane's access."""
    m = ins.mods
    bad = [k for k in m if k not in _DS_MODS]
    if bad or m.get("gds"):
        raise UnknownInstructionError(f"{ins.mnemonic}: modifier {bad[0] if bad else 'gds'} is not supported "
                                      f"(at 0x{ins.addr:x}: {ins.text})", ins.mnemonic, ins.text, ins.addr)
    a = w.v[vaddr.index].astype(np.int64)
    if not two:
        return a[:, None] + m.get("offset", 0) + np.arange(nbytes_total)[None, :]
    half = nbytes_total // 2
    scale = half * (64 if "st64" in ins.op else 1)
    o0 = a + m.get("offset0", 0) * scale
    o1 = a + m.get("offset1", 0) * scale
    r = np.arange(half)[None, :]
    return np.concatenate([o0[:, None] + r, o1[:, None] + r], axis=1)


def h_ds_read(w, ins):
    n, esize, kind, two = DS_READS[ins.op]
    d, vaddr = ins.operands[:2]
    nbytes = n * esize
    ba = _ds_byte_addrs(w, ins, vaddr, nbytes, two, esize)
    wg = w.wg
    exec_mask = w.exec_mask.copy()
    act = ba[exec_mask]
    inb = (ba >= 0) & (ba < wg.lds_limit)
    if act.size and not inb[exec_mask].all():
        bad = int(act[~((act >= 0) & (act < wg.lds_limit))].min())
        wg.hazard("lds-out-of-bounds", w, ins, f"LDS read at 0x{bad:x} past the {wg.lds_limit}-byte allocation")
    dwords = np.unique(act[(act >= 0) & (act < wg.lds_limit)] >> 2)
    wg.check_lds_read(w, ins, dwords)
    nregs = (nbytes + 3) // 4
    rows = w.vrows(d)
    if d.count < nregs:
        raise UnknownInstructionError(f"{ins.text}: destination has {d.count} registers, needs {nregs}",
                                      ins.mnemonic, ins.text, ins.addr)
    safe = np.where(inb, ba, 0)

    def complete():  # samples LDS now, at its (random) completion time
        raw = wg.lds[safe]
        raw[~inb] = 0
        if esize == 4:
            vals = np.ascontiguousarray(raw).view(U32)                          # (64, n)
        elif esize == 2:
            vals = np.ascontiguousarray(raw).view(np.uint16).astype(np.int64)
            vals = ((vals ^ 0x8000) - 0x8000 if kind == "s" else vals).astype(U32)
        else:
            vals = raw.astype(np.int64)
            vals = ((vals ^ 0x80) - 0x80 if kind == "s" else vals).astype(U32)
        for k in range(nregs):
            np.copyto(rows[k], vals[:, k], where=exec_mask)

    w.issue("lgkm", complete, d.regs()[:nregs], ins, lds_read=dwords, ds=True)


def h_ds_write(w, ins):
    n, esize, two = DS_WRITES[ins.op]
    ops = ins.operands
    vaddr = ops[0]
    nbytes = n * esize
    ba = _ds_byte_addrs(w, ins, vaddr, nbytes, two, esize)
    if two:
        per = n // 2
        d0 = w.vrows(ops[1])[:per].T
        d1 = w.vrows(ops[2])[:per].T
        data = np.concatenate([d0, d1], axis=1)
    else:
        data = w.vrows(ops[1])[:max(1, nbytes // 4)].T
    data = data.copy()
    if esize == 4:
        raw = np.ascontiguousarray(data).view(np.uint8)                        # (64, nbytes)
    else:
        raw = data.astype({2: np.uint16, 1: np.uint8}[esize]).view(np.uint8).reshape(64, -1)[:, :nbytes]
    wg = w.wg
    exec_mask = w.exec_mask.copy()
    act = ba[exec_mask]
    inb = (ba >= 0) & (ba < wg.lds_limit) & exec_mask[:, None]
    if act.size and not ((act >= 0) & (act < wg.lds_limit)).all():
        bad = int(act[~((act >= 0) & (act < wg.lds_limit))].min())
        wg.hazard("lds-out-of-bounds", w, ins, f"LDS write at 0x{bad:x} past the {wg.lds_limit}-byte allocation")
    dwords = np.unique(ba[inb] >> 2)
    wg.check_lds_write(w, ins, dwords, dma=False)
    tgt, src = ba[inb], raw[inb]

    def complete():
        wg.lds[tgt] = src

    w.issue("lgkm", complete, (), ins, lds_write=dwords, ds=True)


# ------------------------------------------------------------------------------------------------ sync
def h_waitcnt(w, ins):
    vm, _exp, lgkm = waitcnt_fields(ins.mods["simm16"])
    w.wait("vm", vm)
    w.wait("lgkm", lgkm)


def h_barrier(w, ins):
    w.wg.arrive(w)


def h_endpgm(w, ins):
    w.wg.end(w)


HANDLERS = {}
HANDLERS.update({k: h_s_load for k in SMEM_LOADS})
HANDLERS.update({k: h_buffer_load for k in BUF_LOADS})
HANDLERS.update({k: h_buffer_store for k in BUF_STORES})
HANDLERS.update({k: h_ds_read for k in DS_READS})
HANDLERS.update({k: h_ds_write for k in DS_WRITES})
HANDLERS.update({"s_waitcnt": h_waitcnt, "s_barrier": h_barrier, "s_endpgm": h_endpgm})
