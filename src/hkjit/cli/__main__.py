"""`python -m hkjit.cli ...`, as before the CLI became a package (same as `python -m hkjit ...`)."""
import sys

from . import main

sys.exit(main())
