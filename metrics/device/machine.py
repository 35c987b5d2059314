"""The machine: which devices it has (CUDA GPUs through NVML, Ascend NPUs through npu-smi, the CPU), why an
accelerator kind is absent (one sentence, the reader's own) and each device's hardware profile. ``--device auto``,
``pairbench devices``, the asv suite and scripts/device_check.py (through ``pairbench devices``) all ask here."""

from __future__ import annotations

import platform
from pathlib import Path

from hardware_profiles import match_profile
from metrics.device.ascend import list_npus
from metrics.device.npu_smi.runner import NpuSmi
from metrics.device.npu_smi.values import NpuSmiError
from metrics.device.nvml import gpu_count, list_gpus
from metrics.device.reading import PowerUnavailable

KINDS = ("cpu", "cuda", "ascend")  # the device kinds a device string names: cpu, cuda[:i], ascend[:i]
ACCELERATORS = {"cuda": "CUDA GPU", "ascend": "Ascend NPU"}  # in the order --device auto tries them
_READER = {"cuda": "NVML", "ascend": "npu-smi"}
# What an accelerator's reader raises where it cannot tell what is there (no driver, no tool, a time-out, an
# unreadable table): the kind is then absent, for that reason.
_CANNOT_TELL = {"cuda": (PowerUnavailable, OSError), "ascend": (NpuSmiError, OSError)}


def _accelerator(kind: str) -> None:
    if kind not in ACCELERATORS:
        raise ValueError(f"{kind!r} is not an accelerator kind ({', '.join(ACCELERATORS)})")


def absent(kind: str) -> str | None:
    """Why this machine has no device of ``kind``, in one sentence, or None where it has one (the CPU always). Cheap:
    NVML's count or one ``npu-smi info``, no power read."""
    if kind == "cpu":
        return None
    _accelerator(kind)
    try:
        count = gpu_count() if kind == "cuda" else len(NpuSmi().info())
    except _CANNOT_TELL[kind] as exc:
        return str(exc)
    return None if count else f"{_READER[kind]} lists none"


def first_accelerator() -> tuple[str, list[str]]:
    """The first accelerator kind present (in ACCELERATORS' order), else "cpu"; with one sentence for each kind passed
    over ("no CUDA GPU: ...")."""
    passed = []
    for kind, name in ACCELERATORS.items():
        why = absent(kind)
        if why is None:
            return kind, passed
        passed.append(f"no {name}: {why}")
    return "cpu", passed


def with_profile(entry: dict) -> dict:
    """``entry`` (a device's kind and name) with the id of the hardware profile matching it, or the reason none does."""
    profile = match_profile(entry["kind"], entry.get("name", ""))
    entry["profile"] = profile.id if profile else None
    if profile is None:
        entry["profile_reason"] = f"no hardware profile matches {entry.get('name')!r}"
    return entry


def accelerators(kind: str) -> list[dict]:
    """Every device of accelerator ``kind`` with its profile, memory and current power (or the reason there is none);
    where the reader cannot tell, one entry ``{"kind", "absent": True, "reason"}``; none where it lists none."""
    _accelerator(kind)
    try:
        found = list_gpus() if kind == "cuda" else list_npus()
    except _CANNOT_TELL[kind] as exc:
        return [{"kind": kind, "absent": True, "reason": str(exc)}]
    return [with_profile(e) for e in found]


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu() -> dict:
    """The CPU: its name, logical cores, memory and profile."""
    import psutil

    return with_profile(
        {
            "kind": "cpu",
            "name": cpu_name(),
            "logical_cores": psutil.cpu_count(logical=True),
            "memory_gb": psutil.virtual_memory().total / 1e9,
        }
    )
