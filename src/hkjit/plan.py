"""What one call does, in full, before it runs: the route plus the operand layout (hkjit.explain returns it).

The kernel consumes A as rows (M x K, unit column stride) and B as Bᵀ rows (N x K): a B given as ``W.t()`` of a
contiguous (N, K) weight — the nn.Linear layout — is used as it is; any other B is copied once into that layout
and the copy is reused while B is unchanged (prepared.py). Row strides and base pointers must be multiples of the
spec's ``align`` elements (else the operand is copied), K is zero-padded to the spec's ``pad_k_to``; ragged M and N
cost nothing (every kernel masks its edges). The output is always a fresh contiguous M x N tensor (or the caller's
``out``), computed with a padded row stride when N is not a multiple of the spec's ``align_c``.

Pure: it reads metadata only and imports no loader, so explaining a call never builds or loads anything. The
launch (launch.py) asks ``operand_copies`` the same question, so explain reports exactly what gemm then does.
"""
from __future__ import annotations


import torch

from .checks import check_operands
from .records import Record
from .routing import Route, route, route_tensors
from .specs import KernelSpec, round_up


def rows_ok(t: torch.Tensor, align: int, max_ld: int | None = None) -> bool:
    """Whether t (2-D) is usable as kernel rows: unit column stride, aligned row stride and base pointer, and a row
    stride under max_ld (the arch's bound, policy.MAX_LEADING_DIM) where there is one."""
    rows, cols = t.shape
    unit = cols <= 1 or t.stride(1) == 1
    ld = t.stride(0) if rows > 1 else round_up(max(cols, 1), align)
    return (unit and ld >= cols and ld % align == 0 and t.data_ptr() % (2 * align) == 0
            and (max_ld is None or ld < max_ld))


def operand_copies(r: Route, a2d: torch.Tensor, b: torch.Tensor) -> tuple[bool, bool]:
    """(copy A, copy B): whether the kernel route `r` must copy a2d to rows / b to the Bᵀ layout first."""
    c = r.kernel_spec.constraints
    pad = r.k_padded != r.k
    return pad or not rows_ok(a2d, c.align, r.max_ld), pad or not rows_ok(b.t(), c.align, r.max_ld)


class Plan(Record):
    """What hkjit.gemm does for one call (returned by hkjit.explain): the route's fields, the copies it makes."""
    __slots__ = ("path", "arch", "rule", "reason", "m", "n", "k", "kernel", "tile", "copies", "batch", "spec",
                 "k_padded", "copy_a", "copy_b", "max_ld", "config", "config_rule", "config_reason")
    _defaults = {"kernel": None, "tile": None, "copies": (), "batch": (), "spec": None, "k_padded": 0,
                 "copy_a": False, "copy_b": False, "max_ld": None, "config": None, "config_rule": "",
                 "config_reason": ""}
    path: str                 # "kernel" | "torch" | "empty"
    arch: str
    rule: str
    reason: str
    m: int
    n: int
    k: int
    kernel: str | None
    tile: tuple[int, int, int] | None
    copies: tuple[str, ...]
    batch: tuple[int, ...]
    spec: KernelSpec | None
    k_padded: int
    copy_a: bool
    copy_b: bool
    max_ld: int | None  # the kernel's bound on row strides (policy.MAX_LEADING_DIM), if any
    config: str | None  # the kernel configuration (specs.CONFIGS) the call uses
    config_rule: str  # "tuned", "forced" or the policy.SELECTION rule that chose it
    config_reason: str

    def __str__(self) -> str:
        head = f"hkjit.gemm M={self.m} N={self.n} K={self.k}" + (f" batch={self.batch}" if self.batch else "")
        if self.path == "kernel" and self.tile is not None:
            body = (f" -> kernel {self.kernel} for {self.arch}, tile {self.tile[0]}x{self.tile[1]}x{self.tile[2]} "
                    f"(rule {self.rule}: {self.reason}); configuration {self.config}: {self.config_reason}; "
                    f"copies: {'; '.join(self.copies) or 'none'}")
        elif self.path == "torch":
            body = f" -> torch.matmul on {self.arch} (rule {self.rule}: {self.reason})"
        else:
            body = f" -> no kernel ({self.reason})"
        return head + body


def _describe_copies(r: Route, copy_a: bool, copy_b: bool) -> tuple[str, ...]:
    c, n, kp = r.kernel_spec.constraints, r.n, r.k_padded
    copies = []
    if kp != r.k:
        copies.append(f"A zero-padded to K={kp} (the kernel needs K % {c.pad_k_to} == 0)")
        copies.append(f"B transposed and zero-padded to {n}x{kp} (cached while B is unchanged)")
    else:
        if copy_a:
            copies.append(f"A copied to rows (needs unit column stride and {c.align}-element aligned rows"
                          + (f", row stride < {r.max_ld}" if r.max_ld else "") + ")")
        if copy_b:
            copies.append("B copied to the Bᵀ (N x K) layout (cached while B is unchanged; pass W.t() of a "
                          "contiguous (N, K) weight, or hkjit.prepare(B), to skip it)")
    if n % c.align_c:
        copies.append(f"C computed with a row stride padded to {c.align_c} elements, then copied out "
                      f"contiguous (N % {c.align_c} != 0)")
    return tuple(copies)


def make_plan(a2d: torch.Tensor, b: torch.Tensor, r: Route | None = None, arch: str | None = None) -> Plan:
    """The plan for a2d @ b (2-D): `r` is the call's route where the caller has it (else routed here; `arch`
    overrides the device's, for what-if planning)."""
    (m, k), n = a2d.shape, b.shape[1]
    r = r or route(a2d.device, m, n, k, arch)
    if r.path != "kernel":
        return Plan(r.path, r.arch, r.rule, r.reason, m, n, k)
    copy_a, copy_b = operand_copies(r, a2d, b)
    spec = r.kernel_spec
    c = spec.constraints
    return Plan("kernel", r.arch, r.rule, r.reason, m, n, k, spec.name, (c.block_m, c.block_n, c.block_k),
                _describe_copies(r, copy_a, copy_b), (), spec, r.k_padded, copy_a, copy_b, r.max_ld, spec.config,
                r.config_rule, r.config_reason)


def explain(a: torch.Tensor, b: torch.Tensor) -> Plan:
    """Which path hkjit.gemm(a, b) takes and why: kernel (tile, copies made) or torch (the rule that chose it).

    ``print(hkjit.explain(A, B))`` gives one line; the Plan's fields give the same programmatically."""
    check_operands(a, b)
    r = route_tensors(a, b)                       # the same memoized route hkjit.gemm takes
    if b.dim() == 2:
        return make_plan(a.reshape(r.m, r.k), b, r)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    first = (0,) * len(batch)
    plan = make_plan(a.expand(*batch, *a.shape[-2:])[first], b.expand(*batch, *b.shape[-2:])[first], r)
    return plan.replace(batch=tuple(batch))
