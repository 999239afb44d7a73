"""The public functions: hkjit.gemm, hkjit.prepare, hkjit.explain, hkjit.dispatch, hkjit.Linear (hkjit.warmup is
in warmup.py).

Argument checks live here, in plain Python before the custom op, so that bad input fails with a message naming
the problem and the fix — also under torch.compile, where they run on fake tensors at trace time.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import ops
from .plan import Plan, make_plan, rows_ok, to_rows
from .policy import current_mode, decide, dispatch
from .specs import get_spec
from .targets import detect_target

__all__ = ["gemm", "prepare", "explain", "dispatch", "Linear"]
_BF16 = torch.bfloat16


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype is _BF16 and b.dtype is _BF16
            and b.dim() == 2 and a.dim() >= 2 and a.shape[-1] == b.shape[0] and a.device == b.device):
        return                      # the common case, in one expression: it runs on every call
    for name, t in (("A", a), ("B", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"hkjit.gemm: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != torch.bfloat16:
            raise TypeError(f"hkjit.gemm: {name} is {t.dtype}, hkjit computes in bfloat16: convert with "
                            f"{name}.bfloat16() (or use torch.matmul for other dtypes)")
        if t.dim() < 2:
            raise ValueError(f"hkjit.gemm: {name} is {t.dim()}-D; both operands must be at least 2-D "
                             f"(use {name}.unsqueeze(0) for a vector, as torch.matmul does implicitly)")
    if a.device != b.device:
        raise ValueError(f"hkjit.gemm: A is on {a.device} but B is on {b.device}: move both to one device, "
                         f"e.g. B.to(A.device)")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"hkjit.gemm: A and B shapes cannot be multiplied ({'x'.join(map(str, a.shape))} and "
                         f"{'x'.join(map(str, b.shape))}): A's last dim must equal B's second-to-last")
    if b.dim() > 2:
        try:
            torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except RuntimeError:
            raise ValueError(f"hkjit.gemm: batch dims {tuple(a.shape[:-2])} and {tuple(b.shape[:-2])} do not "
                             f"broadcast") from None


def _eager(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the call may skip the custom-op dispatcher (~35 us): plain eager inference, nothing to trace,
    differentiate or intercept. torch.compile, autograd and dispatch modes always see the hkjit::gemm op."""
    return (type(a) is torch.Tensor and type(b) is torch.Tensor and not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
            and torch._C._len_torch_dispatch_stack() == 0)


def _torch_routed(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the policy sends this eager product to torch.matmul.

    Such a call is handed to torch.matmul *before* the custom op: no op dispatch, torch's own autograd, tensor
    subclasses and dispatch modes see a plain matmul. Never asked under torch.compile (gemm keeps the op in the
    graph there: dynamo hides whether a size is symbolic, so the choice cannot be made safely at trace time)."""
    if a.device.type == "meta":                 # shapes only (a model built on meta): torch.matmul gives them
        return True
    if b.dim() != 2:
        return False
    k, n = b.shape
    m = a.shape[0] if a.dim() == 2 else math.prod(a.shape[:-1])
    return decide(detect_target(a.device).arch, m, n, k).path == "torch"


# (A shape, B shape, A dtype, B dtype, A device, B device, dispatch mode) -> whether the call goes to
# torch.matmul, for eager calls whose arguments passed _check. A model multiplies a few hundred shapes over and
# over: on a hit, the argument check and the policy cost one dict lookup (~1 us instead of ~3.5 us), which is what
# a host-bound (small) product sees of hkjit's wrapper next to torch.matmul.
_routes: dict[tuple, bool] = {}


def _route_key(a: torch.Tensor, b: torch.Tensor) -> tuple:
    return (a.shape, b.shape, a.dtype, b.dtype, a.device, b.device, current_mode())


def gemm(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` for bfloat16: a (..., M, K), b (K, N) or broadcastable (..., K, N) -> (..., M, N), contiguous.

    fp32 accumulation, bf16 result, on a's device. Runs hkjit's kernel where the dispatch policy expects it to
    win, else torch.matmul (see hkjit.explain). ``out``: a bf16 tensor of the result's shape to write into
    (no autograd through it, as with torch's out= functions)."""
    if out is None:
        if torch.compiler.is_compiling():
            _check(a, b)
            return ops.gemm_op(a, b)         # the op stays in the graph and decides at run time
        try:
            key = _route_key(a, b)
            routed = _routes.get(key)
        except (AttributeError, TypeError):  # not tensors, or unhashable attributes: _check names the problem
            key = routed = None
        if routed is None:
            _check(a, b)
            routed = _torch_routed(a, b)
            if key is not None:
                if len(_routes) > 4096:      # bounded: a sweep over shapes must not grow it without end
                    _routes.clear()
                _routes[key] = routed
        if routed:
            return torch.matmul(a, b)
        if _eager(a, b):
            return ops.gemm_eager(a, b)
        return ops.gemm_op(a, b)
    _check(a, b)
    expected = ops._out_shape(a, b)
    if out.dtype != torch.bfloat16 or tuple(out.shape) != tuple(expected) or out.device != a.device:
        raise ValueError(f"hkjit.gemm: out must be a bfloat16 tensor of shape {tuple(expected)} on {a.device}, got "
                         f"{out.dtype} {tuple(out.shape)} on {out.device}")
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        raise RuntimeError("hkjit.gemm(out=...) does not support automatic differentiation; call it without out=")
    if _eager(a, b) and type(out) is torch.Tensor:
        ops.gemm_out_eager(a, b, out)
    else:
        ops.gemm_out_op(a, b, out)
    return out


def explain(a: torch.Tensor, b: torch.Tensor) -> Plan:
    """Which path hkjit.gemm(a, b) takes and why: kernel (tile, copies made) or torch (the rule that chose it).

    ``print(hkjit.explain(A, B))`` gives one line; the Plan's fields give the same programmatically."""
    _check(a, b)
    if b.dim() == 2:
        return make_plan(a.reshape(math.prod(a.shape[:-1]), a.shape[-1]), b)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    plan = make_plan(a.expand(*batch, *a.shape[-2:])[(0,) * len(batch)], b.expand(*batch, *b.shape[-2:])[(0,) * len(batch)])
    return plan._replace(batch=tuple(batch))


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
