"""`hkjit doctor`: what hkjit finds here (hkjit.doctor gathers and formats), exit 1 when a build is blocked."""
from __future__ import annotations

import argparse

from ._common import ARCHS, add_arch_option, emit_json, parents


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("doctor", parents=parents(), help="what hkjit finds here, and what blocks a build",
                       description="Report torch, device, compilers, header libraries, cache and locks, env vars; "
                       "each problem with its fix. Exit 1 when something blocks a build for the checked archs.")
    add_arch_option(d, f"check building for this arch (repeatable; {ARCHS}); default: this device's", repeat=True)
    d.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import diagnose, format_report
    if args.arch:
        from ..targets import target_for_arch
        for a in args.arch:
            target_for_arch(a)
    report = diagnose(args.arch)
    if args.json:
        emit_json(report)
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1
