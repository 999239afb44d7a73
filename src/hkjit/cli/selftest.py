"""`hkjit selftest`: hkjit.gemm against float64 on this device, or (--emulate) the gfx950 code object on the
emulator. hkjit.selftest runs the cases and returns their results; this module formats them: one row per case as
it finishes, then a summary line (or, with --json, the report's JSON document)."""
from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from ..errors import UsageError
from ._common import add_arch_option, emit_json, parents, say_unless, shape_arg

if TYPE_CHECKING:       # the library modules import torch: only inside the commands (`--help` stays instant)
    from ..selftest import CaseResult, EmulatedReport, EmulatedResult, SelftestReport


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("selftest", parents=parents(), help="hkjit.gemm vs a float64 reference on this device",
                       description="Run hkjit.gemm (kernel forced) over edge-case shapes with fresh random inputs "
                       "and poisoned outputs against float64; record the outcome for this (device, toolchain). "
                       "Exit 1 on any failure.")
    s.add_argument("--shapes", nargs="+", type=shape_arg, metavar="MxNxK", help="shapes instead of the default grid")
    s.add_argument("--layouts", default="rows,bt", help="layouts for --shapes, comma-separated (rows, bt, a-strided, "
                   "a-t, batched; default: %(default)s)")
    add_arch_option(s, "the device to test: cpu, or the GPU's arch (default: the GPU if any)")
    s.add_argument("--seed", type=int, help="random seed (default: from the clock; printed)")
    s.add_argument("--no-record", action="store_true", help="do not write the validation record")
    s.add_argument("--emulate", action="store_true", help="gfx950 only, no GPU needed: run the cached entry's code "
                   "object on hkjit's gfx950 emulator (hazards and numbers over edge-case blocks); recorded as an "
                   "'emulated' validation, never as a device's")
    s.add_argument("--module", metavar="PATH", help="with --emulate: the code object to run instead of the cached "
                   "entry's: a cache entry folder (recorded there), a built HIP module (.so), an offload bundle or "
                   "a code object (.o/.co)")
    s.add_argument("--seeds", type=int, default=3, metavar="N", help="with --emulate: run every case under the "
                   "latency/interleaving seeds 1..N (seed 1: no memory operation lands before a wait forces it; "
                   "default: %(default)s)")
    s.set_defaults(func=cmd_selftest)


HEADER = f"{'shape (MxNxK)':<16} {'layout':<10} {'rel err':>9} {'time':>10}  result"


def _verdict(r: CaseResult | EmulatedResult) -> str:
    return "pass" if r.passed else "FAIL" + (f" ({r.error})" if r.error else "")


def _summary(head: str, recorded: str | None, note: str | None) -> str:
    """Both selftests' summaries: the verdict line, then where the result was recorded and a note, if any."""
    return "\n".join([head] + ([recorded] if recorded else []) + ([f"note: {note}"] if note else []))


def format_row(r: CaseResult) -> str:
    err = f"{r.rel_err:.2e}" if r.rel_err is not None else "-"
    tm = f"{r.seconds * 1e3:.1f} ms" if r.seconds else "-"
    return f"{r.shape:<16} {r.layout:<10} {err:>9} {tm:>10}  {_verdict(r)}"


def format_summary(rep: SelftestReport) -> str:
    return _summary(f"selftest: {'PASSED' if rep.passed else 'FAILED'}: {rep.n_passed}/{len(rep.results)} shapes, "
                    f"worst relative error {rep.worst:.2e} (tolerance {rep.tolerance:.0e}), seed {rep.seed}",
                    rep.record and f"recorded for {rep.device}, key {rep.key[:12]}…: {rep.record}", rep.note)


EMULATED_HEADER = f"{'case':<44} {'seed':>4} {'wg':<10} {'worst/bound':>11} {'hazards':>7} {'time':>8}  result"


def format_emulated_row(r: EmulatedResult) -> str:
    wg = ",".join(str(w) for w in r.workgroups)
    return f"{r.case:<44} {r.seed:>4} {wg:<10} {r.worst:>11.3f} {r.hazards:>7} {r.seconds:>6.1f} s  {_verdict(r)}"


def format_emulated_summary(rep: EmulatedReport) -> str:
    return _summary(f"selftest --emulate: {'PASSED' if rep.passed else 'FAILED'}: {rep.n_passed}/{len(rep.results)} "
                    f"runs on the gfx950 emulator (not a device), input seed {rep.input_seed}; code object from "
                    f"{rep.source}", rep.record and f"recorded as an emulated validation, key "
                    f"{(rep.key or '')[:12]}…: {rep.record}", rep.note)


def _finish(rep, as_json: bool, summary) -> int:
    """Both selftests end alike: the JSON document or the summary line; exit 0 when every case passed, else 1."""
    if as_json:
        emit_json(rep.to_json())
    else:
        print(summary(rep))
    return 0 if rep.passed else 1


def _row_printer(streamed: bool, header: str, fmt):
    """The on_case callback of both selftests: the table header before the first case, one row per case as it
    finishes (nothing under --json, which prints one document at the end)."""
    def on_case(i, total, r):
        if streamed:
            if i == 0:
                print(header)
            print(fmt(r), flush=True)
    return on_case


def cmd_selftest_emulate(args: argparse.Namespace) -> int:
    if args.arch not in (None, "gfx950"):
        raise UsageError(f"--emulate: the emulator runs gfx950 code objects only (got --arch {args.arch})")
    if args.shapes:
        raise UsageError("--emulate runs its own grid of cases (one or two workgroups each); drop --shapes")
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    from ..selftest import emulated_selftest
    on_case = _row_printer(not args.json, EMULATED_HEADER, format_emulated_row)
    rep = emulated_selftest(args.module, seeds=tuple(range(1, args.seeds + 1)), input_seed=args.seed,
                            record=not args.no_record,
                            say=say_unless(args.quiet), on_case=on_case)
    return _finish(rep, args.json, format_emulated_summary)


def cmd_selftest(args: argparse.Namespace) -> int:
    if args.emulate:
        return cmd_selftest_emulate(args)
    if args.module:
        raise UsageError("--module only goes with --emulate (the device selftest runs the cached module itself)")
    from ..selftest import LAYOUTS, Case, selftest
    cases = None
    if args.shapes:
        layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
        bad = [x for x in layouts if x not in LAYOUTS]
        if bad:
            raise UsageError(f"--layouts: unknown {', '.join(bad)}; choose from {', '.join(LAYOUTS)}")
        cases = [Case(m, n, k, lay) for (m, n, k) in args.shapes for lay in layouts]
    on_case = _row_printer(not args.json, HEADER, format_row)
    rep = selftest(cases, arch=args.arch, seed=args.seed, record=not args.no_record,
                   say=say_unless(args.quiet), on_case=on_case)
    return _finish(rep, args.json, format_summary)
