"""Run hkjit.gemm on one shape per subprocess (a crash names its shape): python tools/gpu_shapes_probe.py"""
import subprocess
import sys

SHAPES = [(1, 1, 1), (3, 70, 5), (257, 193, 255), (64, 192, 300), (0, 5, 4), (4, 0, 3), (5, 6, 0), (130, 260, 4160),
          (4096, 4096, 4096)]
CODE = """
import sys, faulthandler, torch, hkjit
faulthandler.enable()
m, n, k = map(int, sys.argv[1:4])
a = torch.randn(m, k, device="cuda").bfloat16(); b = torch.randn(k, n, device="cuda").bfloat16()
with hkjit.dispatch("kernel"):
    print(hkjit.explain(a, b), flush=True)
    c = hkjit.gemm(a, b)
torch.cuda.synchronize()
ref = a.double() @ b.double()
err = ((c.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item() if c.numel() and k else 0.0
print("OK", m, n, k, err, flush=True)
"""
for m, n, k in SHAPES:
    p = subprocess.run([sys.executable, "-c", CODE, str(m), str(n), str(k)], capture_output=True, text=True)
    print(f"{m}x{n}x{k}: rc={p.returncode}", p.stdout.strip().splitlines()[-1:] or "", p.stderr.strip()[-600:])
