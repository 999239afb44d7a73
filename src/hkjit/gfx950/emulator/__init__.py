"""An instruction-level emulator of gfx950 (CDNA4, wave64) machine code: it runs the kernel *as compiled* (the
disassembled code object of the real build), for one or more workgroups, with adversarial seeded timing of
memory operations and wave interleaving, and reports synchronisation hazards.

    co = CodeObject.from_elf(open("kernel.co", "rb").read())
    mem = GlobalMemory(); a = mem.alloc(nbytes); mem.write(a, data)
    rep = run(co, Launch(kernel="...", grid=(1, 1, 1), block=(512, 1, 1), kernarg=..., dynamic_lds=...), mem)
    rep.ok, rep.hazards, rep.instructions

Pure Python + numpy (imported here only).  Semantics: AMD's CDNA3/CDNA4 ISA pseudocode (as shipped,
machine-readable, in tinygrad's autogen/amd/cdna/str_pcode.py, read while writing this, not imported), AMD's
Matrix Instruction Calculator for the MFMA lane layouts, LLVM's AMDGPUUsage for the code object.  Timing model
and hazard kinds: machine.py.  Nothing on the `hkjit.gemm` path imports this package.
"""
from __future__ import annotations

from .codeobject import CodeObject, KernelDescriptor, KernelInfo, find_objdump
from .errors import EmulatorError, UnknownInstructionError
from .machine import Hazard, Launch, Report, run, supported_opcodes, unsupported
from .memory import GlobalMemory

__all__ = ["CodeObject", "KernelInfo", "KernelDescriptor", "GlobalMemory", "Launch", "run", "Report", "Hazard",
           "EmulatorError", "UnknownInstructionError", "supported_opcodes", "unsupported", "find_objdump"]
