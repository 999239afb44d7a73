"""Every error hkjit raises, in one place, so callers can catch them by kind.

Each message names the problem and the fix (the variable to set or the command to run)."""
from __future__ import annotations


class HkjitError(RuntimeError):
    """Base class of hkjit's own errors."""


class UnsupportedTargetError(HkjitError):
    """The device (or the requested --arch) has no hkjit kernel."""


class MissingLibraryError(HkjitError):
    """HipKittens/ThunderKittens headers or a compiler needed for a build were not found."""


class BuildError(HkjitError):
    """The compiler failed. ``log_path`` is the kept build log, ``tail`` its last lines."""

    def __init__(self, message: str, log_path: str | None = None, tail: str = "") -> None:
        super().__init__(message)
        self.log_path = log_path
        self.tail = tail


class LockTimeoutError(HkjitError):
    """Another process held the build lock for longer than HKJIT_LOCK_TIMEOUT."""


class CacheError(HkjitError):
    """The cache directory cannot be used (not a directory, not writable, full)."""


class CaptureError(HkjitError):
    """A kernel would have to be compiled or loaded during CUDA/HIP graph capture."""


class ToolchainRejectedError(HkjitError):
    """`python -m hkjit selftest` failed for this (device, toolchain); builds refuse it until cleared."""


class ConfigError(HkjitError, ValueError):
    """An environment variable (config.VARS) holds a value hkjit cannot use; the message names the variable, the
    value and what is accepted. Also a ValueError, as these were before they had a class of their own."""


class ArchiveError(HkjitError):
    """The archive cannot be imported at all (missing, not a tar file, not an hkjit archive, other format)."""


class UsageError(HkjitError):
    """Bad command-line input found after parsing (the CLI exits 2)."""
