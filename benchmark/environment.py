"""What a replay's floating-point results depend on besides the code and the store: library versions and the CPU.

GP methods are bit-for-bit reproducible on one machine (docs/benchmark-protocol.md §2), but compiled kernels
(numba targets the host CPU) and BLAS / LAPACK (their kernels are chosen by the CPU's vector instructions) round
differently on another CPU or with other library versions. ``run.json`` records this environment
(:func:`numerics_environment`), and a run that adds cells to a folder replayed in another environment warns.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

NUMERIC_PACKAGES = ("torch", "numpy", "scipy", "numba", "llvmlite", "gpytorch", "polars")
"""Packages whose versions can change a replay's numbers."""

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "asimd", "sve")
"""CPU features that BLAS, LAPACK, torch and LLVM choose kernels by (x86 and ARM names as /proc/cpuinfo lists them)."""


def numerics_environment(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """Python and :data:`NUMERIC_PACKAGES` versions (``"absent"`` if not installed), the CPU model, the
    :data:`SIMD_FLAGS` it has, and the CPU LLVM (so numba) compiles for (``"unknown"`` without llvmlite)."""
    env = {"python": platform.python_version(), "machine": platform.machine()}
    for name in NUMERIC_PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "absent"
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", platform.machine()):
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:  # not Linux: the model from platform, no flags
        pass
    env["cpu"] = model
    env["cpu_simd"] = " ".join(f for f in SIMD_FLAGS if f in flags)
    try:
        import llvmlite.binding as llvm

        env["llvm_host_cpu"] = str(llvm.get_host_cpu_name())
    except ImportError:
        env["llvm_host_cpu"] = "unknown"
    return env
