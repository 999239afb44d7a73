"""Memory instructions: scalar loads (SMEM), buffer loads/stores (MUBUF, incl. the LDS-DMA `lds` form), LDS
(DS) reads and writes, and the synchronisation ones (s_waitcnt, s_barrier, s_endpgm).

Every memory instruction only *issues* here: its effect (register write, memory/LDS write, LDS sample) is a
closure handed to `Wave.issue`, which the machine runs at a seeded random time no later than the s_waitcnt that
requires it (machine.py).  Operand layout and address rules from AMD's CDNA3/CDNA4 ISA (tinygrad's cdna
str_pcode.py: CalcBufferAddr, CalcDsAddr; "Buffer Resource", "Range checking", "Global load to LDS"):

- MUBUF address: base + (idxen ? index * stride : 0) + (offen ? vgpr offset : 0) + inst_offset + soffset.
  Range check, raw buffer (stride 0, no idxen): a component (dword, or the whole short/byte) is in range iff
  offset + component end <= num_records, with offset = vgpr offset + inst_offset -- soffset is excluded from
  the check (LLVM AMDGPU docs, llvm.amdgcn.raw.buffer.load.lds: "%voffset ... included in bounds checking,
  %soffset ... excluded from bounds checking, %offset imm ... included"); structured (idxen): in range iff
  index < num_records and offset + component end <= stride.  Out-of-range loads return 0, out-of-range stores
  are dropped.  Swizzled and add-tid resources are rejected (not modelled).
- LDS DMA (`buffer_load_* ... lds`): lane l's data goes to LDS byte M0 + inst_offset + 4 l for sizes up to a
  dword and M0 + inst_offset + 16 l for gfx950's dwordx3 / dwordx4 (LLVM "AMDGPU DMA Operations": "The LDS
  address is implicitly offset by 4 * lane_id bytes for sizes up to 4 bytes, and by 16 * lane_id bytes for
  larger sizes"; the immediate offset "applied to both global and LDS address"); M0 taken whole,
  bounds-checked against the allocation.  Counted in vmcnt (LLVM's SIInsertWaitcnts waits for it with vmcnt).
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

    w.issue("lgkm", complete, regs, ins, smem=True)


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
    off = voff + m.get("offset", 0)                                            # (64,) range-checked part
    comp = off[:, None] + np.arange(ncomp, dtype=np.int64)[None, :] * csize    # (64, ncomp)
    soff = w.sval(soffset)                                                     # not range-checked
    if idxen:
        ok = (index < rs.num_records)[:, None] & (comp + csize <= rs.stride)
        addr = rs.base + index[:, None] * rs.stride + comp + soff
    else:
        ok = comp + csize <= rs.num_records
        addr = rs.base + comp + soff
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
    if csize == 4 and not (rel & 3).any():
        v = arr[:arr.size & ~3].view(U32)[rel >> 2]
        v[~ok] = 0
        return v
    idx = rel[:, :, None] + np.arange(csize)[None, None, :]
    raw = arr[idx]                                                             # (64, ncomp, csize) uint8
    raw[~ok] = 0
    if csize == 4:
        return np.ascontiguousarray(raw).view(U32)[:, :, 0]
    if csize == 2:
        return np.ascontiguousarray(raw).view(np.uint16)[:, :, 0].astype(U32)
    return raw[:, :, 0].astype(U32)


def _lds_dma(w, ins, addr, ok, ncomp, csize):
    """Global -> LDS DMA of one wave: lane l's data at M0 + offset + 4 l (sizes up to a dword) or 16 l (x3, x4)."""
    exec_mask = w.exec_mask.copy()
    wg = w.wg
    size = ncomp * csize
    lds_base = (w.m0 + ins.mods.get("offset", 0)) & 0xFFFFFFFF
    stride = 4 if size <= 4 else 16             # LDS bytes per lane: 4 up to a dword, 16 for x3 / x4
    if lds_base & 3 and csize == 4:
        raise EmulatorError(f"{ins.text} at 0x{ins.addr:x}: dword LDS DMA to an unaligned LDS address "
                            f"(M0 + offset = 0x{lds_base:x}) is not modelled")
    first = lds_base + LANE * stride                                            # (64,) bytes
    if not exec_mask.any():
        w.issue("vm", lambda: None, (), ins)
        return
    last = int(first[exec_mask].max()) + size
    if int(first[exec_mask].min()) < 0 or last > wg.lds_limit:
        wg.hazard("lds-out-of-bounds", w, ins, f"LDS DMA to 0x{lds_base:x}..0x{last - 1:x} past the "
                                               f"{wg.lds_limit}-byte allocation")
    if csize == 4:   # whole dwords: lane l's at (lds_base + stride l) / 4 + k
        dw = (first >> 2)[:, None] + np.arange(ncomp)[None, :]                  # (64, ncomp)
        act = exec_mask[:, None] & (dw < wg.lds_limit >> 2)
        where = slice(int(dw[0, 0]), int(dw[-1, -1]) + 1) if act.all() and stride == 4 * ncomp else dw[act]
        tgt = dw[act]

        def complete():
            arr, rel, okk = _global_span(w, ins, addr, ok, csize)
            vals = _gather(arr, rel, okk, csize) if arr is not None else np.zeros((64, ncomp), U32)
            wg.lds32[tgt] = vals[act]
    else:            # a byte or a short per lane, at M0 + offset + 4 l
        bt = first[:, None] + np.arange(csize)[None, :]                           # (64, csize) bytes
        act = exec_mask[:, None] & (bt < wg.lds_limit)
        where = np.unique((bt[act] >> 2))
        tgt = bt[act]

        def complete():
            arr, rel, okk = _global_span(w, ins, addr, ok, csize)
            vals = _gather(arr, rel, okk, csize) if arr is not None else np.zeros((64, 1), U32)
            raw = np.ascontiguousarray(vals[:, 0]).view(np.uint8).reshape(64, 4)[:, :csize]
            wg.lds[tgt] = raw[act]
    wg.check_lds_write(w, ins, where, dma=True)
    w.issue("vm", complete, (), ins, lds_write=where)


def h_buffer_load(w, ins):
    ncomp, csize, kind = BUF_LOADS[ins.op]
    vdata, vaddr, srsrc, soffset = _buf_layout(ins)
    addr, ok, rs = _buf_addresses(w, ins, ncomp, csize)
    exec_mask = w.exec_mask.copy()
    lds = ins.mods.get("lds", False)
    if lds:
        _lds_dma(w, ins, addr, ok, ncomp, csize)
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
    w.issue("vm", lambda: _store(w, ins, addr, ok, csize, ncomp, data), (), ins)


def _store(w, ins, addr, ok, csize, ncomp, data):
    """Write the in-range, active lanes' components (data: (64, ncomp), sampled at issue) to global memory."""
    if not ok.any():
        return
    arr, rel, okk = _global_span(w, ins, addr, ok, csize)
    if arr is None:
        return
    src = np.ascontiguousarray(data.astype({4: U32, 2: np.uint16, 1: np.uint8}[csize])).view(np.uint8)
    src = src.reshape(64, ncomp, csize)
    idx = rel[:, :, None] + np.arange(csize)[None, None, :]
    arr[idx[okk]] = src[okk]


# ------------------------------------------------------------------------------------------------ global (FLAT)
# GLOBAL_*: address = (saddr is off ? the 64-bit VGPR pair : saddr (SGPR pair) + the 32-bit VGPR) + offset
# (tinygrad's cdna CalcGlobalAddr).  No range check: an address outside every allocation is a global-fault.
GLOBAL_LOADS = {k.replace("buffer_", "global_"): v for k, v in BUF_LOADS.items()}
GLOBAL_STORES = {k.replace("buffer_", "global_"): v for k, v in BUF_STORES.items()}
GLOBAL_LDS = {"global_load_lds_dword": (1, 4), "global_load_lds_dwordx3": (3, 4), "global_load_lds_dwordx4": (4, 4),
              "global_load_lds_ubyte": (1, 1), "global_load_lds_sbyte": (1, 1), "global_load_lds_ushort": (1, 2),
              "global_load_lds_sshort": (1, 2)}
_GLOBAL_MODS = {"offset", "glc", "slc", "sc0", "sc1", "nt", "dlc"}


def _global_addresses(w, ins, vaddr, saddr, ncomp, csize):
    bad = [k for k in ins.mods if k not in _GLOBAL_MODS]
    if bad:
        raise UnknownInstructionError(f"{ins.mnemonic}: modifier {bad[0]} is not supported (at 0x{ins.addr:x}: "
                                      f"{ins.text})", ins.mnemonic, ins.text, ins.addr)
    if saddr.kind == "off":
        base = w.v[vaddr.index].astype(np.int64) | (w.v[vaddr.index + 1].astype(np.int64) << 32)
    else:
        base = w.sval64(saddr) + w.v[vaddr.index].astype(np.int64)
    addr = (base + ins.mods.get("offset", 0))[:, None] + np.arange(ncomp, dtype=np.int64)[None, :] * csize
    return addr, np.repeat(w.exec_mask[:, None], ncomp, axis=1)


def h_global_load(w, ins):
    ncomp, csize, kind = GLOBAL_LOADS[ins.op]
    d, vaddr, saddr = ins.operands[:3]
    addr, ok = _global_addresses(w, ins, vaddr, saddr, ncomp, csize)
    exec_mask = w.exec_mask.copy()
    rows = w.vrows(d)

    def complete():
        arr, rel, okk = _global_span(w, ins, addr, ok, csize)
        vals = _gather(arr, rel, okk, csize) if arr is not None else np.zeros((64, ncomp), U32)
        if kind == "s":
            bits = 8 * csize
            vals = ((vals.astype(np.int64) ^ (1 << (bits - 1))) - (1 << (bits - 1))).astype(U32)
        for k in range(ncomp):
            np.copyto(rows[k], vals[:, k], where=exec_mask)

    w.issue("vm", complete, d.regs()[:ncomp], ins)


def h_global_store(w, ins):
    ncomp, csize, kind = GLOBAL_STORES[ins.op]
    vaddr, data_op, saddr = ins.operands[:3]
    addr, ok = _global_addresses(w, ins, vaddr, saddr, ncomp, csize)
    data = w.vrows(data_op)[:ncomp].T.copy()
    if kind == "hi":
        data = data >> U32(16)
    w.issue("vm", lambda: _store(w, ins, addr, ok, csize, ncomp, data), (), ins)


def h_global_load_lds(w, ins):
    """GLOBAL_LOAD_LDS_*: like the buffer form's `lds` (M0 + offset + 4 l, or 16 l for x3 / x4)."""
    ncomp, csize = GLOBAL_LDS[ins.op]
    vaddr, saddr = ins.operands[:2]
    addr, ok = _global_addresses(w, ins, vaddr, saddr, ncomp, csize)
    _lds_dma(w, ins, addr, ok, ncomp, csize)


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


def _ds_dword_addrs(w, ins, vaddr, ndw, two):
    """(64, ndw) LDS dword indices of each lane's access, or None when some address is not dword aligned."""
    m = ins.mods
    bad = [k for k in m if k not in _DS_MODS]
    if bad or m.get("gds"):
        raise UnknownInstructionError(f"{ins.mnemonic}: modifier {bad[0] if bad else 'gds'} is not supported "
                                      f"(at 0x{ins.addr:x}: {ins.text})", ins.mnemonic, ins.text, ins.addr)
    a = w.v[vaddr.index].astype(np.int64)
    if not two:
        start = a + m.get("offset", 0)
        if (start & 3).any():
            return None
        return (start >> 2)[:, None] + np.arange(ndw)[None, :]
    half = ndw // 2
    scale = half * 4 * (64 if "st64" in ins.op else 1)
    o0, o1 = a + m.get("offset0", 0) * scale, a + m.get("offset1", 0) * scale
    if ((o0 | o1) & 3).any():
        return None
    r = np.arange(half)[None, :]
    return np.concatenate([(o0 >> 2)[:, None] + r, (o1 >> 2)[:, None] + r], axis=1)


def _ds_footprint(w, ins, dw, kind):
    """Bounds-check the active lanes' dwords; (in-bounds & active mask, tracking index)."""
    wg = w.wg
    limit = wg.lds_limit >> 2
    inb = (dw >= 0) & (dw < limit)
    act = inb & w.exec_mask[:, None]
    if not inb[w.exec_mask].all():
        bad = int(dw[w.exec_mask][~inb[w.exec_mask]].min()) * 4
        wg.hazard("lds-out-of-bounds", w, ins, f"LDS {kind} at 0x{bad & 0xFFFFFFFF:x} past the {wg.lds_limit}-byte "
                                               f"allocation")
    return act, dw[act]


def h_ds_read(w, ins):
    n, esize, kind, two = DS_READS[ins.op]
    d, vaddr = ins.operands[:2]
    if esize != 4:
        return _ds_read_bytes(w, ins, n, esize, kind, two)
    dw = _ds_dword_addrs(w, ins, vaddr, n, two)
    if dw is None:
        raise EmulatorError(f"{ins.text} at 0x{ins.addr:x}: unaligned LDS dword access (the hardware's "
                            f"unaligned mode is not modelled)")
    if d.count < n:
        raise UnknownInstructionError(f"{ins.text}: destination has {d.count} registers, needs {n}",
                                      ins.mnemonic, ins.text, ins.addr)
    wg = w.wg
    act, where = _ds_footprint(w, ins, dw, "read")
    wg.check_lds_read(w, ins, where)
    rows = w.vrows(d)
    exec_mask = w.exec_mask.copy()
    safe = np.where(act, dw, 0)

    def complete():  # samples LDS now, at its (random) completion time
        vals = wg.lds32[safe]
        vals[~act] = 0
        for k in range(n):
            np.copyto(rows[k], vals[:, k], where=exec_mask)

    regs = ins.__dict__.get("_dregs")
    if regs is None:
        regs = ins.__dict__["_dregs"] = d.regs()[:n]
    w.issue("lgkm", complete, regs, ins, lds_read=where, ds=True)


def _ds_read_bytes(w, ins, n, esize, kind, two):
    """ds_read_u8/i8/u16/i16: byte-granular; footprint tracked by the dwords touched."""
    d, vaddr = ins.operands[:2]
    m = ins.mods
    a = w.v[vaddr.index].astype(np.int64) + m.get("offset", 0)
    wg = w.wg
    ba = a[:, None] + np.arange(esize)[None, :]
    act, where = _ds_footprint(w, ins, ba >> 2, "read")
    wg.check_lds_read(w, ins, where)
    row = w.v[d.index] if d.kind == "v" else w.a[d.index]
    exec_mask = w.exec_mask.copy()
    safe = np.where(act, ba, 0)

    def complete():
        raw = wg.lds[safe].astype(np.int64)
        raw[~act] = 0
        v = raw[:, 0] | (raw[:, 1] << 8 if esize == 2 else 0)
        if kind == "s":
            v = (v ^ (1 << (8 * esize - 1))) - (1 << (8 * esize - 1))
        np.copyto(row, v.astype(np.int64).astype(U32), where=exec_mask)

    w.issue("lgkm", complete, d.regs()[:1], ins, lds_read=where, ds=True)


def h_ds_write(w, ins):
    n, esize, two = DS_WRITES[ins.op]
    ops = ins.operands
    vaddr = ops[0]
    wg = w.wg
    if esize != 4:
        m = ins.mods
        ba = w.v[vaddr.index].astype(np.int64)[:, None] + m.get("offset", 0) + np.arange(esize)[None, :]
        act, where = _ds_footprint(w, ins, ba >> 2, "write")
        data = w.vrows(ops[1])[0].copy()
        raw = data.view(np.uint8).reshape(64, 4)[:, :esize]
        tgt, src = ba[act], raw[act]
        wg.check_lds_write(w, ins, where, dma=False)
        w.issue("lgkm", lambda: wg.lds.__setitem__(tgt, src), (), ins, lds_write=where, ds=True)
        return
    dw = _ds_dword_addrs(w, ins, vaddr, n, two)
    if dw is None:
        raise EmulatorError(f"{ins.text} at 0x{ins.addr:x}: unaligned LDS dword access (the hardware's "
                            f"unaligned mode is not modelled)")
    if two:
        per = n // 2
        data = np.concatenate([w.vrows(ops[1])[:per].T, w.vrows(ops[2])[:per].T], axis=1)
    else:
        data = w.vrows(ops[1])[:n].T
    act, where = _ds_footprint(w, ins, dw, "write")
    wg.check_lds_write(w, ins, where, dma=False)
    tgt, src = dw[act], data[act]           # data sampled at issue

    def complete():
        wg.lds32[tgt] = src

    w.issue("lgkm", complete, (), ins, lds_write=where, ds=True)


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
HANDLERS.update({k: h_global_load for k in GLOBAL_LOADS})
HANDLERS.update({k: h_global_store for k in GLOBAL_STORES})
HANDLERS.update({k: h_global_load_lds for k in GLOBAL_LDS})
HANDLERS.update({k: h_ds_read for k in DS_READS})
HANDLERS.update({k: h_ds_write for k in DS_WRITES})
HANDLERS.update({"s_waitcnt": h_waitcnt, "s_barrier": h_barrier, "s_endpgm": h_endpgm})
