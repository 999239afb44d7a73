"""`python -m hkjit ...`: see hkjit.cli (warmup, cache, doctor, selftest, bench)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
