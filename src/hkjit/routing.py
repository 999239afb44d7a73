"""The routing decision of one call: which path (kernel, torch or empty) and, for the kernel, which configuration.

One function, ``route_tensors``, answers it from the operands' metadata (device, shapes) and the call-time
settings (``hkjit.dispatch`` / HKJIT_DISPATCH, a configuration forced by ``tuning.force_config``), through the
dispatch policy (policy.decide) and the configuration choice (tuning.choose_config). The answer is memoized once,
here, per (shapes, dtypes, devices, mode, forced configuration), and then handed down: hkjit.gemm (api.py) and the
op's implementation (ops.py) route once and give the Route to the launch (launch.py); hkjit.explain adds the
operand layout to the same Route (plan.py). Nothing here imports the loader: routing needs no compiled module.

A model multiplies a few hundred shapes over and over, so a routed call costs one dict lookup (``lookup``).
"""
from __future__ import annotations

import math

import torch

from .records import Record
from .policy import MAX_LEADING_DIM, current_mode, decide
from .specs import KernelSpec, config_spec, round_up
from .targets import detect_target
from .tuning import choose_config, forced_config, on_forget


class Route(Record):
    """Where one 2-D product m x n x k goes (a batched call: each of its matrices)."""
    __slots__ = ("path", "arch", "rule", "reason", "m", "n", "k", "spec", "config_rule", "config_reason", "k_padded",
                 "max_ld")
    _defaults = {"spec": None, "config_rule": "", "config_reason": "", "k_padded": 0, "max_ld": None}
    path: str                        # "kernel" | "torch" | "empty"
    arch: str
    rule: str                        # the dispatch policy's rule (policy.POLICY) and why it applies
    reason: str
    m: int
    n: int
    k: int
    spec: KernelSpec | None  # kernel path: the configuration's spec (its constraints, its cache entry)
    config_rule: str  # "tuned", "forced" or the policy.SELECTION rule that chose the configuration
    config_reason: str
    k_padded: int  # K rounded up to the spec's pad_k_to (A and Bᵀ are zero-padded to it)
    max_ld: int | None  # the kernel's bound on row strides (policy.MAX_LEADING_DIM), if any

    @property
    def kernel_spec(self) -> KernelSpec:
        """The spec of a kernel route (asking a torch or empty route for one is a bug)."""
        if self.spec is None:
            raise ValueError(f"a {self.path} route (rule {self.rule}) has no kernel")
        return self.spec


def route(device: torch.device, m: int, n: int, k: int, arch: str | None = None) -> Route:
    """The route of an m x n x k product on `device` under the current settings (not memoized: route_tensors is).
    `arch` overrides the device's (what-if planning: hkjit.explain for another arch, tests)."""
    if device.type == "meta":        # shapes only (a model built on meta): torch.matmul gives the result's
        return Route("torch", "meta", "meta", "meta tensors hold no data: torch.matmul gives the result's shape "
                     "and dtype", m, n, k)
    arch = arch or detect_target(device).arch
    d = decide(arch, m, n, k)
    if d.path != "kernel":
        return Route(d.path, arch, d.rule, d.reason, m, n, k)
    choice = choose_config(arch, device, m, n, k)
    spec = config_spec(arch, choice.config)
    return Route("kernel", arch, d.rule, d.reason, m, n, k, spec, choice.rule, choice.reason,
                 round_up(k, spec.constraints.pad_k_to), MAX_LEADING_DIM.get(arch))


def dims(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, int]:
    """(m, n, k) of each 2-D product of a @ b: leading dims of a flattened into M when b is 2-D, else a's rows."""
    k, n = b.shape[-2], b.shape[-1]
    m = (a.shape[0] if a.dim() == 2 else math.prod(a.shape[:-1])) if b.dim() == 2 else a.shape[-2]
    return m, n, k


# (A shape, B shape, A dtype, B dtype, A device, B device, dispatch mode, forced configuration) -> Route, for calls
# whose arguments were checked (api._check). Bounded: a sweep over shapes must not grow it without end.
_routes: dict[tuple, Route] = {}
_MAX_ROUTES = 4096


def _key(a: torch.Tensor, b: torch.Tensor) -> tuple:
    return (a.shape, b.shape, a.dtype, b.dtype, a.device, b.device, current_mode(), forced_config())


def lookup(a: torch.Tensor, b: torch.Tensor) -> Route | None:
    """The memoized route of a @ b, or None (not seen yet, or arguments that are not tensors: the caller checks
    them, then asks route_tensors)."""
    try:
        return _routes.get(_key(a, b))
    except (AttributeError, TypeError):
        return None


def route_tensors(a: torch.Tensor, b: torch.Tensor) -> Route:
    """The route of a @ b (checked operands), memoized for every later call with the same metadata."""
    key = _key(a, b)
    r = _routes.get(key)
    if r is None:
        r = route(a.device, *dims(a, b))
        if len(_routes) >= _MAX_ROUTES:
            _routes.clear()
        _routes[key] = r
    return r


def forget() -> None:
    """Drop the memo (a new tuning record was written or read: tuning.forget calls this)."""
    _routes.clear()


on_forget(forget)
