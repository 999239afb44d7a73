"""The argument checks of hkjit.gemm and hkjit.explain, in plain Python before any op or kernel.

Bad input fails here with a message naming the problem and the fix — also under torch.compile, where the checks
run on fake tensors at trace time. A call whose shapes were seen before skips them (routing.lookup hits first).
"""
from __future__ import annotations

import torch


def check_operands(a: torch.Tensor, b: torch.Tensor) -> None:
    """Raise TypeError / ValueError naming the problem and the fix unless a @ b is a product hkjit.gemm takes."""
    bf16 = torch.bfloat16
    if (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype is bf16 and b.dtype is bf16
            and b.dim() == 2 and a.dim() >= 2 and a.shape[-1] == b.shape[0] and a.device == b.device):
        return                      # the common case, in one expression: every new shape passes here
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
