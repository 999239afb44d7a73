"""Benchmark hkjit.gemm against torch.matmul: a thin wrapper over `python -m hkjit bench`.

    python benchmarks/bench_gemm.py [--shapes MxNxK ...] [--repeat N] [--plot FILE.png] [--json]

Runs from a source checkout without installing (src/ is put on sys.path when hkjit is not importable).
"""
import sys
from pathlib import Path

try:
    import hkjit  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hkjit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
