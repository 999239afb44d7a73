"""What every command of the CLI shares: the parent parsers (--cache-dir, --quiet, --json), the --arch choices,
argument types, the JSON document and the small text formatters, and warmup's progress lines.

Nothing here imports torch, so that ``--help`` stays instant: the library modules are imported inside the
functions that need them.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time

#: targets.KNOWN_ARCHS, repeated here so that `--help` does not import torch (tests/test_cli.py checks they agree)
KNOWN_ARCHS = ("cpu", "gfx950", "sm_90a")
#: the arch list as the help texts print it
ARCHS = ", ".join(KNOWN_ARCHS)


# --------------------------------------------------------------------------------------------------- parsers
def parents() -> list[argparse.ArgumentParser]:
    """The options every command takes: --cache-dir and -q/--quiet, then --json."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", metavar="DIR",
                        help="the writable cache root (same as HKJIT_CACHE_DIR; read-only layers: HKJIT_CACHE_PATH)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress or log lines on stderr")
    js = argparse.ArgumentParser(add_help=False)
    js.add_argument("--json", action="store_true", help="print one machine-readable JSON document on stdout")
    return [common, js]


def arch_arg(text: str) -> str:
    """--arch's type: an arch hkjit has a kernel for (the option's choices), with targets.target_for_arch's
    message, so that a typo is told the list before any command runs."""
    if text not in KNOWN_ARCHS:
        raise argparse.ArgumentTypeError(f"unknown arch {text!r}; hkjit has kernels for {ARCHS}")
    return text


def add_arch_option(parser: argparse.ArgumentParser, help: str, repeat: bool = False) -> None:
    """The --arch option every command that takes one declares: a known arch (argparse choices, checked by
    arch_arg first for its message), once or repeatable."""
    parser.add_argument("--arch", action="append" if repeat else "store", type=arch_arg, choices=KNOWN_ARCHS,
                        metavar="ARCH", help=help)


def size_arg(text: str) -> int:
    from ..config import parse_size
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def shapes_arg(text: str) -> list[tuple[int, int, int]]:
    from ..shapes import parse_shapes
    try:
        return parse_shapes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def shape_arg(text: str) -> tuple[int, int, int]:
    from ..selftest import parse_shape
    try:
        return parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def config_names(values: list[str] | None) -> list[str] | None:
    """--config NAME|all, repeatable and comma-separated."""
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    return names or None


# --------------------------------------------------------------------------------------------------- output
def err(msg: str) -> None:
    """One line to stderr (progress and errors; reports go to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def say_unless(quiet: bool):
    """The `say` callback of the library commands: progress to stderr unless --quiet."""
    return (lambda m: None) if quiet else err


def emit_json(doc) -> None:
    """The --json report: one document on stdout."""
    print(json.dumps(doc, indent=1, sort_keys=False, default=str))


def dur(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def plural(count: int, word: str, many: str | None = None) -> str:
    """The count with its word: 1 entry, 2 entries."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def table(headers: list[str], rows: list[list[str]], right: frozenset[int] | set[int] = frozenset()) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    fmt = lambda r: "  ".join(str(v).rjust(w) if i in right else str(v).ljust(w)  # noqa: E731
                              for i, (v, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([fmt(headers)] + [fmt(r) for r in rows])


class Progress:
    """Progress lines for parallel builds: one line per finished kernel, and a note for builds still running."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet = total, quiet
        self.done = 0
        self.running: dict[str, float] = {}
        self.noted: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self):
        if not self.quiet:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()

    def _tick(self) -> None:
        while not self.stop.wait(1.0):
            now = time.monotonic()
            with self.lock:
                for name, t0 in self.running.items():
                    last = self.noted.get(name)
                    if (last is None and now - t0 >= 2) or (last is not None and now - last >= 15):
                        self.noted[name] = now
                        err(f"hkjit warmup: building {name} ... ({now - t0:.0f} s)")

    def start(self, spec) -> None:
        with self.lock:
            self.running[f"{spec.arch}/{spec.name}" + (f" {spec.config}" if spec.config else "")] = time.monotonic()

    def finish(self, r) -> None:
        with self.lock:
            self.running.pop(f"{r.arch}/{r.kernel}" + (f" {r.config}" if r.config else ""), None)
            self.done += 1
            if self.quiet:
                return
            what = {"hit": f"hit in {dur(r.seconds)}", "built": f"built in {dur(r.seconds)}",
                    "failed": f"FAILED after {dur(r.seconds)}: {r.error.splitlines()[0] if r.error else ''}"}[r.status]
            err(f"hkjit warmup: [{self.done}/{self.total}] {r.arch}/{r.kernel} {what}"
                 + (f" (configuration {r.config})" if r.config else ""))
