"""The public functions on the call path: hkjit.gemm, hkjit.prepare, hkjit.Linear.

The call path runs one way: check the arguments (checks.py, on a new shape only) -> route once (routing.py,
memoized) -> launch (launch.py: copies, the cached module, the kernel), or torch.matmul when routed there.
hkjit.explain is plan.py's (it never loads a module), hkjit.dispatch policy.py's, hkjit.warmup warmup.py's.
"""
from __future__ import annotations

import torch
from torch import nn

from . import launch, ops
from .checks import check_operands
from .launch import out_shape, to_rows
from .plan import rows_ok
from .routing import Route, lookup, route_tensors
from .specs import get_spec
from .targets import detect_target

__all__ = ["gemm", "prepare", "Linear"]


def _eager(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the call may skip the custom-op dispatcher (~35 us): plain eager inference, nothing to trace,
    differentiate or intercept. torch.compile, autograd and dispatch modes always see the hkjit::gemm op."""
    return (type(a) is torch.Tensor and type(b) is torch.Tensor and not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
            and torch._C._len_torch_dispatch_stack() == 0)


def _route(a: torch.Tensor, b: torch.Tensor) -> Route:
    """The call's route: a memo hit (one dict lookup) for a shape seen before; else the arguments are checked
    (a clear error for bad input) and routed once (routing.py)."""
    r = lookup(a, b)
    if r is None:
        check_operands(a, b)
        r = route_tensors(a, b)
    return r


def gemm(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` for bfloat16: a (..., M, K), b (K, N) or broadcastable (..., K, N) -> (..., M, N), contiguous.

    fp32 accumulation, bf16 result, on a's device. Runs hkjit's kernel where the dispatch policy expects it to
    win, else torch.matmul (see hkjit.explain). ``out``: a bf16 tensor of the result's shape to write into
    (no autograd through it, as with torch's out= functions).

    The call is routed once (routing.py), and the route is handed to the launch (launch.py). A call routed to
    torch is handed to torch.matmul *before* the custom op: no op dispatch, torch's own autograd, tensor subclasses
    and dispatch modes see a plain matmul. Under torch.compile the op stays in the graph and routes at run time
    (dynamo hides whether a size is symbolic, so the choice cannot be made safely at trace time)."""
    if out is None:
        if torch.compiler.is_compiling():
            check_operands(a, b)
            return ops.gemm_op(a, b)
        r = _route(a, b)
        if r.path == "torch":
            return torch.matmul(a, b)
        if _eager(a, b):
            return launch.gemm(a, b, r)
        return ops.gemm_op(a, b)
    check_operands(a, b)
    expected = out_shape(a, b)
    if out.dtype != torch.bfloat16 or tuple(out.shape) != tuple(expected) or out.device != a.device:
        raise ValueError(f"hkjit.gemm: out must be a bfloat16 tensor of shape {tuple(expected)} on {a.device}, got "
                         f"{out.dtype} {tuple(out.shape)} on {out.device}")
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        raise RuntimeError("hkjit.gemm(out=...) does not support automatic differentiation; call it without out=")
    if _eager(a, b) and type(out) is torch.Tensor:
        launch.gemm_out(a, b, out, route_tensors(a, b))
    else:
        ops.gemm_out_op(a, b, out)
    return out


def prepare(b: torch.Tensor) -> torch.Tensor:
    """B (K, N) in the layout the kernel reads without a copy: a (K, N) view of Bᵀ rows.

    The explicit form of what hkjit.gemm does implicitly: gemm reuses its own kernel-layout copy of a B while B's
    version counter is unchanged, which sees every write made through torch (in-place ops, ``out=``, optimizer
    steps, ``load_state_dict``) and every write hkjit makes, but not writes that bypass the counter: through
    ``B.data``, the storage, a NumPy/DLPack view or a foreign kernel. For a weight written that way, prepare it
    yourself after each such write (or keep it as ``W.t()`` of a contiguous (N, K) weight, read with no copy at
    all). Mathematically the result equals b; it is a copy, so prepare again after changing the original."""
    if b.dim() != 2 or b.dtype != torch.bfloat16:
        raise ValueError(f"hkjit.prepare: expects a 2-D bfloat16 tensor, got {b.dim()}-D {b.dtype}")
    if b.device.type == "meta":                 # no data to lay out (a model built on meta)
        return b
    align = get_spec(detect_target(b.device).arch).constraints.align
    if rows_ok(b.t(), align):
        return b
    return to_rows(b.detach().t(), align).t().requires_grad_(b.requires_grad)


class Linear(nn.Linear):
    """Drop-in nn.Linear whose product runs through hkjit.gemm (bf16 parameters by default).

    ``hkjit.Linear.from_linear(layer)`` converts an existing layer, sharing its parameters."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=torch.bfloat16) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_linear(cls, layer: nn.Linear) -> "Linear":
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = layer.in_features, layer.out_features
        new.weight = layer.weight
        new.bias = layer.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = gemm(x, self.weight.t())        # (out, in) contiguous weight: its .t() is read with no copy
        return y if self.bias is None else y + self.bias
