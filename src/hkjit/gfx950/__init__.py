"""Checks of the gfx950 (MI350X/MI355X) kernel that run without an AMD GPU.

Nothing on the `hkjit.gemm` path imports this package: it holds the tools that prove the compiled gfx950 kernel
right on a machine without the hardware (the device-only compile and assembly parser `hipcheck`, the schedule
model `schedule`, and the instruction-level emulator), used by the tests, `selftest --emulate` and benchmarks.
"""
