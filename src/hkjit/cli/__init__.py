"""`python -m hkjit` / `hkjit`: warmup, cache management, doctor, selftest, bench, tune, configs.

Exit codes: 0 ok; 1 a check failed (a kernel failed to build, a bad cache entry, a selftest failure, a refused
archive entry, doctor found a blocking problem, a tuned shape with no correct configuration); 2 usage or
environment error (bad arguments, no GPU and no --arch, a missing compiler or header library, an unusable
archive, a cache that cannot be written), printed as one message without a traceback.
Reports go to stdout (``--json``: one JSON document), progress and logging to stderr.

Heavy imports (torch) happen inside the commands, so ``--help`` is instant.

A package: one module per command (warmup, cache, doctor, selftest, bench, tune, configs), each with its argparse setup
(``add_parser(subparsers)``), its handler and its text report; what they share is in ``_common``. This module
builds the parser from them and turns an HkjitError into one line and exit 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import HkjitError
from ..version import CACHE_FORMAT, __version__
from . import bench, cache, configs, doctor, selftest, tune, warmup
from ._common import KNOWN_ARCHS, err

__all__ = ["KNOWN_ARCHS", "build_parser", "main"]

log = logging.getLogger("hkjit")

#: the commands in the order --help lists them
COMMANDS = (warmup, cache, doctor, selftest, bench, tune, configs)


def build_parser() -> argparse.ArgumentParser:
    """The whole parser, each command's part from its module; importing no torch (`--help` stays instant)."""
    p = argparse.ArgumentParser(
        prog="python -m hkjit", description="hkjit: build ahead of time, manage the kernel cache, diagnose, test "
        "and benchmark.", epilog="exit codes: 0 ok, 1 a check failed, 2 usage or environment error")
    p.add_argument("--version", action="version", version=f"hkjit {__version__} (cache format {CACHE_FORMAT})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (the console script and `python -m hkjit` exit with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(getattr(args, "quiet", False))
    if getattr(args, "cache_dir", None):
        os.environ["HKJIT_CACHE_DIR"] = os.path.abspath(os.path.expanduser(args.cache_dir))
    if getattr(args, "jobs", 1) is not None and getattr(args, "jobs", 1) < 1:
        parser.error("--jobs must be at least 1")
    if getattr(args, "repeat", None) is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        return args.func(args)
    except HkjitError as e:            # UsageError and ConfigError included: one line, exit 2
        err(f"hkjit: error: {e}")
        return 2
    except KeyboardInterrupt:
        err("hkjit: interrupted")
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0

