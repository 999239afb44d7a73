"""The emulator's errors: a subclass of hkjit's own base, so callers catch them with the rest."""
from __future__ import annotations

from hkjit.errors import HkjitError


class EmulatorError(HkjitError):
    """The emulator cannot run the code object (bad input, missing tool, unsupported feature, runaway kernel)."""


class UnknownInstructionError(EmulatorError):
    """An instruction (or an operand modifier) the emulator has no semantics for: never skipped, always named."""

    def __init__(self, message: str, mnemonic: str = "", text: str = "", pc: int | None = None) -> None:
        super().__init__(message)
        self.mnemonic = mnemonic
        self.text = text
        self.pc = pc
