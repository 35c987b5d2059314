"""The CPU features that change what low-precision and compiled code computes, read from /proc/cpuinfo.

Compilers pick their vector width and instructions from these (PyTorch's inductor generates 512-bit code where
AVX-512 is present; oneDNN uses AMX tiles for bf16 matrix products where the kernel allows them), so a run's record
names them: two runs of the same workload on CPUs that differ here may differ in their low-precision numbers."""

from __future__ import annotations

from pathlib import Path

# The flags as /proc/cpuinfo spells them, in the order they are reported.
RELEVANT = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """Every flag of the first processor listed (x86 "flags", Arm "Features"); empty where nothing is readable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def cpu_features(cpuinfo: str | None = None) -> str:
    """The relevant flags present, comma-separated (``"avx2,fma,avx512f,..."``), or ``"none readable"``."""
    flags = cpu_flags(cpuinfo)
    present = [f for f in RELEVANT if f in flags]
    return ",".join(present) if present else "none readable"
