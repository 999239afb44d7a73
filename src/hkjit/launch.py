"""Running a routed call: the copies the plan names, the cached module, the launch, the result tensor.

The route (routing.py) was decided once by the caller (hkjit.gemm, or the op's implementation under the
dispatcher) and is passed in: nothing here decides a path again. A kernel route gets its module from the loader
(memoized per configuration), has its first use on this device validated (validation.py), copies an operand only
where ``plan.operand_copies`` says so (a B copy is kept while B is unchanged: prepared.py), and launches through
the module's ``gemm_out`` on the current stream (the binding checks the launch).
"""
from __future__ import annotations

import itertools
import math

import torch

from .loader import load
from .plan import operand_copies, rows_ok
from .prepared import PREPARED
from .routing import Route
from .specs import round_up
from .validation import ensure_validated


def out_shape(a: torch.Tensor, b: torch.Tensor) -> tuple[int, ...]:
    """The shape of a @ b: a's leading dims with N when b is 2-D, else the broadcast batch dims with M x N."""
    if b.dim() == 2:
        return (*a.shape[:-1], b.shape[1])
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return (*batch, a.shape[-2], b.shape[-1])


def to_rows(t: torch.Tensor, align: int, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
    """A copy of t (2-D) as kernel rows, zero-padded to rows x cols, row stride a multiple of align."""
    r, c = t.shape
    rows, cols = rows or r, cols or c
    ld = round_up(cols, align)
    buf = torch.empty((rows, ld), dtype=t.dtype, device=t.device)
    buf[:r, :c].copy_(t)
    if rows > r:
        buf[r:].zero_()
    if ld > c:
        buf[:r, c:].zero_()
    return buf[:, :cols]


def _written(out: torch.Tensor) -> torch.Tensor:
    """Bump the version counter of `out`, which the kernel wrote through its data pointer (torch did not see it).

    The prepared-weight cache (prepared.py) trusts the version counter: without this, ``gemm(A, B, out=W)`` then
    ``gemm(X, W)`` reused W's old kernel-layout copy (relative error 1.02 in issue #13)."""
    if not out.is_inference():                  # inference tensors have no version counter (and are never cached)
        torch.autograd.graph.increment_version(out)
    return out


def run_kernel(r: Route, a2d: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """C = a2d @ b on the kernel of route `r`, with the copies the plan names; writes `out` (M x N) if given."""
    spec, m, n, kp = r.kernel_spec, r.m, r.n, r.k_padded
    c = spec.constraints
    loaded = load(spec, call_site=True)
    module = loaded.module
    assert module is not None                   # load() imports it
    ensure_validated(spec.arch, spec.name, loaded.key, module, a2d.device)
    copy_a, copy_b = operand_copies(r, a2d, b)
    if copy_a:
        a2d = to_rows(a2d, c.align, m, kp)
    bt = b.t()
    if copy_b:
        bt, _ = PREPARED.get(b, ("bt", c.align, kp), lambda: to_rows(bt, c.align, n, kp))
    if out is not None and rows_ok(out, c.align_c, r.max_ld):
        module.gemm_out(a2d, bt, out)
        return _written(out)
    if out is None and n % c.align_c == 0:
        out = torch.empty((m, n), dtype=a2d.dtype, device=a2d.device)
        module.gemm_out(a2d, bt, out)
        return out
    buf = torch.empty((m, round_up(n, c.align_c)), dtype=a2d.dtype, device=a2d.device)[:, :n]
    module.gemm_out(a2d, bt, buf)
    if out is None:
        return buf.contiguous()
    return out.copy_(buf)


def matmul2d(a2d: torch.Tensor, b: torch.Tensor, r: Route, out: torch.Tensor | None = None) -> torch.Tensor:
    """One 2-D product on route `r`. `out`, if given, is an M x N bf16 tensor to fill."""
    if r.path == "torch":
        return torch.mm(a2d, b) if out is None else torch.mm(a2d, b, out=out)
    if r.path == "empty":
        result = out if out is not None else torch.empty((r.m, r.n), dtype=a2d.dtype, device=a2d.device)
        return result.zero_()
    return run_kernel(r, a2d, b, out)


def compute(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, r: Route) -> torch.Tensor:
    """Fill `out` (contiguous, of out_shape) with a @ b on route `r`."""
    if b.dim() == 2:                                    # (..., M, K) @ (K, N): leading dims flattened into M
        matmul2d(a.reshape(r.m, r.k), b, r, out.view(r.m, r.n))   # a view of a whenever the strides allow it
        return out
    batch = out.shape[:-2]                              # broadcast batch: one 2-D product per matrix
    a_e = a.expand(*batch, *a.shape[-2:])
    b_e = b.expand(*batch, *b.shape[-2:])
    for idx in itertools.product(*map(range, batch)):
        matmul2d(a_e[idx], b_e[idx], r, out[idx])
    return out


def gemm(a: torch.Tensor, b: torch.Tensor, r: Route) -> torch.Tensor:
    """a @ b on route `r`, into a fresh contiguous tensor."""
    if b.dim() == 2:                                    # the common case: one 2-D product, no extra output copy
        if a.dim() == 2:
            return matmul2d(a, b, r)
        return matmul2d(a.reshape(math.prod(a.shape[:-1]), b.shape[0]), b, r).view(*a.shape[:-1], b.shape[1])
    return compute(a, b, torch.empty(out_shape(a, b), dtype=a.dtype, device=a.device), r)


def gemm_out(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, r: Route) -> None:
    """a @ b on route `r`, written into `out` (of out_shape; any strides)."""
    if out.is_contiguous():
        compute(a, b, out, r)
    else:
        out.copy_(compute(a, b, torch.empty(out.shape, dtype=out.dtype, device=out.device), r))
