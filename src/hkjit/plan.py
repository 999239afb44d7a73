"""Planning and running one 2-D product C = A @ B on the kernel or on torch: layouts, copies and padding.

``make_plan`` decides everything (path, rule, copies) from the operands' metadata alone, so ``hkjit.explain``
reports exactly what ``hkjit.gemm`` then does. The kernel consumes A as rows (M x K, unit column stride) and B
as Bᵀ rows (N x K): a B given as ``W.t()`` of a contiguous (N, K) weight — the nn.Linear layout — is used as it
is; any other B is copied once into that layout and the copy is reused while B is unchanged (prepared.py).
Row strides and base pointers must be multiples of the spec's ``align`` elements (else the operand is copied),
K is zero-padded to the spec's ``pad_k_to``; ragged M and N cost nothing (every kernel masks its edges). The
output is always a fresh contiguous M x N tensor (or the caller's ``out``).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .loader import load
from .policy import MAX_LEADING_DIM, Decision, decide
from .prepared import PREPARED
from .specs import Constraints, KernelSpec, config_spec
from .targets import detect_target
from .tuning import choose_config
from .validation import ensure_validated


#: Meta tensors (a model built under ``torch.device("meta")``) carry shapes only: torch.matmul computes the result's.
META = Decision("torch", "meta", "meta tensors hold no data: torch.matmul gives the result's shape and dtype")


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def rows_ok(t: torch.Tensor, align: int, max_ld: int | None = None) -> bool:
    """Whether t (2-D) is usable as kernel rows: unit column stride, aligned row stride and base pointer, and a row
    stride under max_ld (the arch's bound, policy.MAX_LEADING_DIM) where there is one."""
    rows, cols = t.shape
    unit = cols <= 1 or t.stride(1) == 1
    ld = t.stride(0) if rows > 1 else _round_up(max(cols, 1), align)
    return (unit and ld >= cols and ld % align == 0 and t.data_ptr() % (2 * align) == 0
            and (max_ld is None or ld < max_ld))


def to_rows(t: torch.Tensor, align: int, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
    """A copy of t (2-D) as kernel rows, zero-padded to rows x cols, row stride a multiple of align."""
    r, c = t.shape
    rows, cols = rows or r, cols or c
    ld = _round_up(cols, align)
    buf = torch.empty((rows, ld), dtype=t.dtype, device=t.device)
    buf[:r, :c].copy_(t)
    if rows > r:
        buf[r:].zero_()
    if ld > c:
        buf[:r, c:].zero_()
    return buf[:, :cols]


class Plan(NamedTuple):
    """What hkjit.gemm does for one call (returned by hkjit.explain)."""
    path: str                 # "kernel" | "torch" | "empty"
    arch: str
    rule: str
    reason: str
    m: int
    n: int
    k: int
    kernel: str | None = None
    tile: tuple[int, int, int] | None = None
    copies: tuple[str, ...] = ()
    batch: tuple[int, ...] = ()
    spec: KernelSpec | None = None   # what run_kernel needs, decided once here
    k_padded: int = 0
    copy_a: bool = False
    copy_b: bool = False
    max_ld: int | None = None        # the kernel's bound on row strides (policy.MAX_LEADING_DIM), if any
    config: str | None = None        # the kernel configuration (specs.CONFIGS) the call uses
    config_rule: str = ""            # "tuned", "forced" or the policy.SELECTION rule that chose it
    config_reason: str = ""

    def __str__(self) -> str:
        head = f"hkjit.gemm M={self.m} N={self.n} K={self.k}" + (f" batch={self.batch}" if self.batch else "")
        if self.path == "kernel":
            body = (f" -> kernel {self.kernel} for {self.arch}, tile {self.tile[0]}x{self.tile[1]}x{self.tile[2]} "
                    f"(rule {self.rule}: {self.reason}); configuration {self.config}: {self.config_reason}; "
                    f"copies: {'; '.join(self.copies) or 'none'}")
        elif self.path == "torch":
            body = f" -> torch.matmul on {self.arch} (rule {self.rule}: {self.reason})"
        else:
            body = f" -> no kernel ({self.reason})"
        return head + body


def _padded_k(c: Constraints, k: int) -> int:
    return _round_up(k, c.pad_k_to)


def make_plan(a2d: torch.Tensor, b: torch.Tensor, arch: str | None = None, decision: Decision | None = None) -> Plan:
    """The plan for a2d @ b; arch and decision are passed by a caller that has already routed the call."""
    m, k = a2d.shape
    n = b.shape[1]
    if a2d.device.type == "meta":
        return Plan(META.path, "meta", META.rule, META.reason, m, n, k)
    arch = arch or detect_target(a2d.device).arch
    decision = decision or decide(arch, m, n, k)
    if decision.path != "kernel":
        return Plan(decision.path, arch, decision.rule, decision.reason, m, n, k)
    choice = choose_config(arch, a2d.device, m, n, k)
    spec = config_spec(arch, choice.config)
    c = spec.constraints
    kp = _padded_k(c, k)
    max_ld = MAX_LEADING_DIM.get(arch)
    copy_a = kp != k or not rows_ok(a2d, c.align, max_ld)
    copy_b = kp != k or not rows_ok(b.t(), c.align, max_ld)
    copies = []
    if kp != k:
        copies.append(f"A zero-padded to K={kp} (the kernel needs K % {c.pad_k_to} == 0)")
        copies.append(f"B transposed and zero-padded to {n}x{kp} (cached while B is unchanged)")
    else:
        if copy_a:
            copies.append(f"A copied to rows (needs unit column stride and {c.align}-element aligned rows"
                          + (f", row stride < {max_ld}" if max_ld else "") + ")")
        if copy_b:
            copies.append("B copied to the Bᵀ (N x K) layout (cached while B is unchanged; pass W.t() of a "
                          "contiguous (N, K) weight, or hkjit.prepare(B), to skip it)")
    if n % c.align_c:
        copies.append(f"C computed with a row stride padded to {c.align_c} elements, then copied out "
                      f"contiguous (N % {c.align_c} != 0)")
    return Plan("kernel", arch, decision.rule, decision.reason, m, n, k, spec.name, (c.block_m, c.block_n, c.block_k),
                tuple(copies), (), spec, kp, copy_a, copy_b, max_ld, spec.config, choice.rule, choice.reason)


def _written(out: torch.Tensor) -> torch.Tensor:
    """Bump the version counter of `out`, which the kernel wrote through its data pointer (torch did not see it).

    The prepared-weight cache (prepared.py) trusts the version counter: without this, ``gemm(A, B, out=W)`` then
    ``gemm(X, W)`` reused W's old kernel-layout copy (relative error 1.02 in issue #13)."""
    if not out.is_inference():                  # inference tensors have no version counter (and are never cached)
        torch.autograd.graph.increment_version(out)
    return out


def run_kernel(plan: Plan, a2d: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """C = a2d @ b on the kernel, with the copies `plan` decided; writes `out` (M x N) if given."""
    spec, c, m, n, kp = plan.spec, plan.spec.constraints, plan.m, plan.n, plan.k_padded
    loaded = load(spec, call_site=True)
    ensure_validated(spec.arch, spec.name, loaded.key, loaded.module, a2d.device)
    if plan.copy_a:
        a2d = to_rows(a2d, c.align, m, kp)
    bt = b.t()
    if plan.copy_b:
        bt, _ = PREPARED.get(b, ("bt", c.align, kp), lambda: to_rows(bt, c.align, n, kp))
    if out is not None and rows_ok(out, c.align_c, plan.max_ld):
        loaded.module.gemm_out(a2d, bt, out)
        return _written(out)
    if out is None and n % c.align_c == 0:
        out = torch.empty((m, n), dtype=a2d.dtype, device=a2d.device)
        loaded.module.gemm_out(a2d, bt, out)
        return out
    buf = torch.empty((m, _round_up(n, c.align_c)), dtype=a2d.dtype, device=a2d.device)[:, :n]
    loaded.module.gemm_out(a2d, bt, buf)
    if out is None:
        return buf.contiguous()
    return out.copy_(buf)


def matmul2d(a2d: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """One 2-D product on the path the policy picks. `out`, if given, is an M x N bf16 tensor to fill.

    Routing comes first and is a few dict lookups (policy.decide memoizes per shape): a call the policy sends to
    torch costs little more than torch.mm itself; only the kernel path builds a full Plan."""
    (m, k), n = a2d.shape, b.shape[1]
    if a2d.device.type == "meta":               # no data, no kernel: torch gives the shape (hkjit.Linear on meta)
        return torch.mm(a2d, b) if out is None else torch.mm(a2d, b, out=out)
    arch = detect_target(a2d.device).arch
    decision = decide(arch, m, n, k)
    if decision.path == "torch":
        return torch.mm(a2d, b) if out is None else torch.mm(a2d, b, out=out)
    if decision.path == "empty":
        result = out if out is not None else torch.empty((m, n), dtype=a2d.dtype, device=a2d.device)
        return result.zero_()
    return run_kernel(make_plan(a2d, b, arch, decision), a2d, b, out)
