"""Every environment variable hkjit reads, once: name, type, default, meaning, and whether it goes into the key.

hkjit reads the environment only through this module (tests/test_config.py fails on an ``os.environ`` or
``getenv`` read anywhere else in src/hkjit). From ``VARS`` come the cache key's build-environment inputs
(``BUILD_ENV_VARS``, toolchain.py), `doctor`'s listing of what is set, and README's environment table::

    python -m hkjit.config --markdown     # the table README shows (tests/test_config.py compares the two)

A value that cannot be used raises ConfigError (an HkjitError, also a ValueError) naming the variable, the value
and what is accepted; the CLI prints it as one line and exits 2. Names follow torch/triton conventions (HKJIT_*);
variables of the compilers and of torch that hkjit only hashes or reports keep their own names.

This module is imported on every warm start: the registry is plain slotted objects, no dataclass machinery.
"""
from __future__ import annotations

import math
import os
import re
import sys

from .cache.layout import FORMAT_DIR, LOCKS
from .errors import ConfigError
from .records import Record


class Var(Record):
    """One environment variable. kind: "string" | "path" | "paths" (os.pathsep-separated) | "number" | "size"
    (bytes, or 500M, 2G) | "choice" | "flags" (whitespace-separated); default: as documented (an empty value is
    the default); build: a key input (a change gives another cache entry); group: "hkjit" (hkjit's own settings),
    "build" (read by the compilers, hashed into the key), "tools" (where compilers and libraries are), "checks"
    (test and check tools only), "reported" (hkjit never reads it, doctor shows it: it changes torch or the
    compilers), "platform" (standard variables behind a default), "internal" (fault injection, the build worker;
    not documented for users)."""
    __slots__ = ("name", "kind", "default", "meaning", "build", "group")
    _defaults = {"build": False, "group": "hkjit"}
    name: str
    kind: str
    default: str
    meaning: str
    build: bool
    group: str

    def __repr__(self) -> str:
        return f"Var({self.name!r})"


_V = Var
VARS: dict[str, Var] = {v.name: v for v in (
    _V("HKJIT_CACHE_DIR", "path", '`platformdirs.user_cache_dir("hkjit")`', "writable cache root"),
    _V("HKJIT_CACHE_PATH", "paths", "none", "read-only cache roots, os.pathsep-separated, searched after the root"),
    _V("HKJIT_LOCK_DIR", "path", f"`<cache>/{FORMAT_DIR}/{LOCKS}`, or a local runtime dir on network filesystems",
       "where build locks live"),
    _V("HKJIT_LOCK_TIMEOUT", "number", "900", "seconds to wait for another process's build (>= 0, or `inf`)"),
    _V("HKJIT_TRUSTED_CACHE_DIRS", "paths", "none", "folders (os.pathsep-separated) whose caches are trusted whoever "
       "owns or can write them (see Reliability and security)"),
    _V("HKJIT_DISPATCH", "choice", "`auto`", "`auto`, `kernel` or `torch`, read once per process "
       "(`hkjit.dispatch()` changes it at run time)"),
    _V("HKJIT_PREPARED_CACHE_MB", "number", "1024", "memory bound of the prepared-weight cache"),
    _V("HKJIT_IMPORT_MAX_BYTES", "size", "2G", "`cache import`: most bytes an archive may unpack to (bytes, or "
       "`500M`, `4G`)"),
    _V("HKJIT_IMPORT_MAX_MEMBER_BYTES", "size", "512M", "`cache import`: most bytes of one file in an archive"),
    _V("HKJIT_EXTRA_CFLAGS", "flags", "none", "extra compiler flags for every build", build=True),
    _V("HIPCC_COMPILE_FLAGS_APPEND", "flags", "none", "hipcc: extra compile flags", build=True, group="build"),
    _V("HIPCC_LINK_FLAGS_APPEND", "flags", "none", "hipcc: extra link flags", build=True, group="build"),
    _V("HIP_PLATFORM", "string", "none", "hipcc: amd or nvidia", build=True, group="build"),
    _V("NVCC_APPEND_FLAGS", "flags", "none", "nvcc: flags appended to every command", build=True, group="build"),
    _V("NVCC_PREPEND_FLAGS", "flags", "none", "nvcc: flags prepended to every command", build=True, group="build"),
    _V("HIPKITTENS_ROOT", "path", "`~/HipKittens`, `/opt/HipKittens`", "HipKittens checkout (or its include dir)",
       group="tools"),
    _V("THUNDERKITTENS_ROOT", "path", "`~/ThunderKittens`, `/opt/ThunderKittens`",
       "ThunderKittens checkout (or its include dir)", group="tools"),
    _V("CXX", "path", "`c++`, `g++`, `clang++` on PATH", "the C++ compiler of CPU builds (as torch's cpp_extension "
       "finds it)", group="tools"),
    _V("ROCM_HOME", "path", "`ROCM_PATH`, else `/opt/rocm`", "ROCm install: hipcc for gfx950 builds", group="tools"),
    _V("ROCM_PATH", "path", "`/opt/rocm`", "ROCm install when ROCM_HOME is unset (also where the emulator looks for "
       "llvm-objdump and clang-offload-bundler)", group="tools"),
    _V("CUDA_HOME", "path", "`CUDA_PATH`, else `/usr/local/cuda`", "CUDA install: nvcc for sm_90a builds",
       group="tools"),
    _V("CUDA_PATH", "path", "`/usr/local/cuda`", "CUDA install when CUDA_HOME is unset", group="tools"),
    _V("HKJIT_TOOLCHAIN_DIR", "path", "`/opt/hkjit-toolchain`", "gfx950 compile checks only (tests): folder with "
       "`HipKittens/include` and `rocm/include/hip` (the test suite sets it to `../shared/toolchain` beside the "
       "checkout when that exists, and points unset `HIPKITTENS_ROOT` / `THUNDERKITTENS_ROOT` into it)",
       group="checks"),
    _V("HKJIT_HIP_CLANG", "path", "`/usr/lib/llvm-22/bin/clang++`", "gfx950 compile checks only (tests): the "
       "clang++ that compiles HIP device code", group="checks"),
    _V("HKJIT_LLVM_OBJDUMP", "path", "ROCm's `llvm/bin`, then `/usr/lib/llvm-22/bin`, then PATH", "gfx950 emulator "
       "(`selftest --emulate`, tests): the llvm-objdump (LLVM >= 18) that disassembles the code object",
       group="checks"),
    _V("HKJIT_OFFLOAD_BUNDLER", "path", "ROCm's `llvm/bin`, then `/usr/lib/llvm-22/bin`, then PATH", "gfx950 "
       "emulator: the clang-offload-bundler that unpacks a compressed offload bundle", group="checks"),
    _V("HIP_PATH", "path", "none", "reported by doctor (HIP install used by hipcc)", group="reported"),
    _V("CC", "path", "none", "reported by doctor (C compiler of torch's extension builds)", group="reported"),
    _V("PYTORCH_ROCM_ARCH", "string", "none", "reported by doctor (torch's ROCm arch list)", group="reported"),
    _V("TORCH_CUDA_ARCH_LIST", "string", "none", "reported by doctor (torch's CUDA arch list)", group="reported"),
    _V("MAX_JOBS", "string", "none", "reported by doctor (ninja's parallel jobs in torch's builds)", group="reported"),
    _V("TORCH_EXTENSIONS_DIR", "path", "none", "reported by doctor (torch's extension folder; hkjit never builds "
       "there)", group="reported"),
    _V("CUDA_VISIBLE_DEVICES", "string", "none", "reported by doctor (visible GPUs)", group="reported"),
    _V("HIP_VISIBLE_DEVICES", "string", "none", "reported by doctor (visible GPUs)", group="reported"),
    _V("ROCR_VISIBLE_DEVICES", "string", "none", "reported by doctor (visible GPUs)", group="reported"),
    _V("XDG_CACHE_HOME", "path", "`$HOME/.cache`", "where the default cache root is, on Linux", group="platform"),
    _V("HOME", "path", "none", "the default cache root's parent when XDG_CACHE_HOME is unset", group="platform"),
    _V("ANDROID_DATA", "string", "none", "set on Android: the default root is asked of platformdirs",
       group="platform"),
    _V("RANK", "string", "0", "`warmup`: the torch.distributed rank that prints (torchrun sets it)",
       group="platform"),
    _V("HKJIT_TEST_CRASH_AT", "string", "none", "fault injection (tests/reliability): SIGKILL the builder at a "
       "named step", group="internal"),
    _V("HKJIT_TEST_FAULT", "string", "none", "fault injection (tests): make an entry vanish before its "
       "import (vanish_before_import), or widen a tuning record's merge (pause_tuning_merge)", group="internal"),
    _V("HKJIT_BUILD_PARENT", "string", "none", "set by the builder for its worker: the pid it must outlive",
       group="internal"),
)}

#: Environment variables that change what the compiler produces (key inputs); unset and empty are the same.
BUILD_ENV_VARS = tuple(v.name for v in VARS.values() if v.build)


def _var(name: str) -> Var:
    try:
        return VARS[name]
    except KeyError:
        raise KeyError(f"{name} is not in hkjit.config.VARS: register every environment variable hkjit reads "
                       f"there") from None


def env_raw(name: str) -> str | None:
    """The variable's value as set (None when unset)."""
    _var(name)
    return os.environ.get(name)


def env_set(name: str) -> bool:
    """Whether the variable is set at all (also to an empty value)."""
    return env_raw(name) is not None


def env_str(name: str, default: str = "") -> str:
    """The value, or `default` when unset or blank."""
    value = env_raw(name) or ""
    return value if value.strip() else default


def bad_value(name: str, raw: str, accepted: str) -> ConfigError:
    return ConfigError(f"{name}={raw!r} is not usable: {accepted} (or unset it for the default, "
                       f"{_var(name).default})")


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise bad_value(name, raw, "set a number") from None


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """The value, lower-cased, if it is one of `choices`; `default` when unset."""
    raw = env_str(name, default)
    if raw.lower() not in choices:
        raise bad_value(name, raw, f"use one of {', '.join(choices)}")
    return raw.lower()


def env_paths(name: str) -> list[str]:
    """An os.pathsep-separated list, blanks dropped."""
    return [p for p in env_str(name).split(os.pathsep) if p.strip()]


def parse_size(text: str) -> int:
    """'500M', '2G', '1.5GiB', '123456' -> bytes (K/M/G/T are powers of 1024): how a "size" variable and the CLI's
    size options (--max-size) are written."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text or "")
    if not m:
        raise ValueError(f"size {text!r} not understood: use bytes or a number with K, M, G or T (e.g. 500M, 2G)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def human_size(n: float) -> str:
    """Bytes as hkjit prints them (1.5 GiB), in the units parse_size reads."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def env_size(name: str, default: int) -> int:
    """A "size" variable in bytes (parse_size), `default` when unset or blank."""
    raw = env_str(name)
    if not raw:
        return default
    try:
        return parse_size(raw)
    except ValueError as e:
        raise bad_value(name, raw, str(e)) from None


def lock_timeout() -> float:
    """HKJIT_LOCK_TIMEOUT in seconds: a finite number >= 0, or an explicit inf (wait forever).

    nan would compare false with every deadline, so a waiter would poll forever without timing out (and log on
    every poll); -inf or a negative number would give up before trying."""
    accepted = "set seconds >= 0 (e.g. 900), or inf to wait forever"
    raw = env_str("HKJIT_LOCK_TIMEOUT")
    try:
        value = float(raw) if raw else 900.0
    except ValueError:
        raise bad_value("HKJIT_LOCK_TIMEOUT", raw, accepted) from None
    if math.isnan(value) or value < 0:
        raise bad_value("HKJIT_LOCK_TIMEOUT", raw, accepted)
    return value


def build_env() -> dict[str, str]:
    """The build-affecting variables as key inputs: every one of BUILD_ENV_VARS, "" when unset."""
    return {name: os.environ.get(name, "") for name in BUILD_ENV_VARS}


def env_in_force() -> dict[str, str]:
    """What doctor reports: every HKJIT_* variable set (registered or not: a misspelt one shows), then every other
    registered variable set, except the platform's own."""
    names = sorted(n for n in os.environ if n.startswith("HKJIT_"))
    names += [v.name for v in VARS.values() if not v.name.startswith("HKJIT_") and v.group != "platform"
              and v.name in os.environ]
    return {n: os.environ[n] for n in names}


def unknown_hkjit_vars() -> list[str]:
    """HKJIT_* variables set that hkjit does not read (a typo, or one from another version)."""
    return sorted(n for n in os.environ if n.startswith("HKJIT_") and n not in VARS)


def markdown_table() -> str:
    """README's environment table: every variable but the internal ones, in registry order."""
    rows = ["| variable | meaning | default | in the key |", "| --- | --- | --- | --- |"]
    for v in VARS.values():
        if v.group == "internal":
            continue
        rows.append(f"| `{v.name}` | {v.meaning} | {v.default} | {'yes' if v.build else ''} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--markdown"]:
        print("usage: python -m hkjit.config --markdown   (README's environment table, from the registry)",
              file=sys.stderr)
        return 2
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
