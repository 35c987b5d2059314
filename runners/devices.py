"""Device strings: parse ``cpu``, ``cuda[:i]`` and ``ascend[:i]`` without importing a framework."""

from __future__ import annotations

from dataclasses import dataclass

from runners.spec import PairbenchError

KINDS = ("cpu", "cuda", "ascend")


@dataclass(frozen=True)
class Device:
    kind: str
    index: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"{self.kind}:{self.index}"


def resolve_auto() -> tuple[str, list[str]]:
    """``auto``: the first CUDA GPU NVML sees, else the first NPU npu-smi lists, else the CPU; with, for each kind
    passed over, one sentence saying why (no driver, a time-out, an unreadable table)."""
    from metrics.device.npu_smi.info import NpuSmi, NpuSmiError
    from metrics.power.nvidia import gpu_count
    from metrics.power.window import PowerUnavailable

    passed = []
    try:
        if gpu_count() > 0:
            return "cuda:0", passed
        passed.append("no CUDA GPU: NVML lists none")
    except PowerUnavailable as exc:
        passed.append(f"no CUDA GPU: {exc}")
    try:
        if NpuSmi().info():
            return "ascend:0", passed
        passed.append("no Ascend NPU: npu-smi lists none")
    except NpuSmiError as exc:
        passed.append(f"no Ascend NPU: {exc}")
    return "cpu", passed


def parse_device(text: str) -> Device:
    kind, sep, index = text.strip().lower().partition(":")
    if kind not in KINDS:
        raise PairbenchError(f"unknown device '{text}'; use cpu, cuda[:i] or ascend[:i]")
    if not sep:
        return Device(kind)
    if kind == "cpu" or not index.isdigit():
        raise PairbenchError(f"malformed device '{text}'; use cpu, cuda[:i] or ascend[:i]")
    return Device(kind, int(index))
