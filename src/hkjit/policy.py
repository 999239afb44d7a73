"""The dispatch policy: when hkjit.gemm runs its kernel and when it hands the product to torch.matmul.

The policy is a table (data): per arch, rules tried in order, the first whose metric is below its bound sends
the call where it says; no rule matched means the kernel. The bounds are where the kernel is expected to win
(measured on the H100 for sm_90a; from HipKittens' published MI355X numbers for gfx950). ``HKJIT_DISPATCH``
(auto|kernel|torch) or ``with hkjit.dispatch("torch"):`` override it; the context manager wins over the variable.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

from .config import env_str

MODES = ("auto", "kernel", "torch")


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str      # "mnk" (M*N*K), "m", "n" or "k"
    below: float     # the rule applies when metric < below
    path: str        # "torch" or "kernel"
    why: str


_GPU_SMALL = (
    Rule("tiny", "mnk", 512 ** 3, "torch", "under 512^3 multiply-adds the launch and tile waste dominate"),
    Rule("skinny-m", "m", 128, "torch", "M < 128 fills under half a 256-row block: memory-bound, torch's GEMV paths win"),
    Rule("skinny-n", "n", 128, "torch", "N < 128 fills under half a block: memory-bound, torch wins"),
    Rule("shallow-k", "k", 128, "torch", "K < 128 gives under two K steps: no pipeline to hide loads behind"),
)

@dataclass(frozen=True)
class ArchPolicy:
    rules: tuple[Rule, ...]
    default_reason: str


POLICY: dict[str, ArchPolicy] = {
    # The CPU kernel is hkjit's portable reference: it runs every non-empty product so that the whole path is
    # exercised wherever hkjit is installed. For CPU speed, HKJIT_DISPATCH=torch.
    "cpu": ArchPolicy((), "the CPU runs hkjit's reference kernel (for speed on CPU set HKJIT_DISPATCH=torch)"),
    "gfx950": ArchPolicy(_GPU_SMALL, "large enough for the kernel to win"),
    "sm_90a": ArchPolicy(_GPU_SMALL, "large enough for the kernel to win"),
}

_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar("hkjit_dispatch", default=None)


def current_mode() -> str:
    mode = _mode.get() or env_str("HKJIT_DISPATCH", "auto").lower()
    if mode not in MODES:
        raise ValueError(f"HKJIT_DISPATCH={mode!r}: use one of {', '.join(MODES)}")
    return mode


@contextlib.contextmanager
def dispatch(mode: str):
    """``with hkjit.dispatch("torch"): ...`` forces a path for the calls inside (auto, kernel or torch)."""
    if mode not in MODES:
        raise ValueError(f"hkjit.dispatch({mode!r}): use one of {', '.join(MODES)}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


@dataclass(frozen=True)
class Decision:
    path: str     # "kernel" | "torch" | "empty"
    rule: str
    reason: str


def decide(arch: str, m: int, n: int, k: int) -> Decision:
    if m == 0 or n == 0 or k == 0:
        return Decision("empty", "empty", "a zero-size dimension: the result is empty or all zeros, no kernel needed")
    mode = current_mode()
    if mode != "auto":
        return Decision(mode, f"forced-{mode}", f"forced by {'hkjit.dispatch' if _mode.get() else 'HKJIT_DISPATCH'}")
    metrics = {"mnk": m * n * k, "m": m, "n": n, "k": k}
    policy = POLICY[arch]
    for rule in policy.rules:
        if metrics[rule.metric] < rule.below:
            return Decision(rule.path, rule.name, rule.why)
    return Decision("kernel", "default", policy.default_reason)
