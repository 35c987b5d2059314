"""Device strings: parse ``cpu``, ``cuda[:i]`` and ``ascend[:i]`` without importing a framework."""

from __future__ import annotations

from dataclasses import dataclass

from metrics.device.machine import KINDS, first_accelerator
from runners.errors import PairbenchError

# What each framework calls a device kind: its collective backend for data parallel (torch.distributed's process
# group, HCCL through torch_npu; MindSpore's init() picks its own from the device target), MindSpore's device target.
TORCH_BACKENDS = {"cpu": "gloo", "cuda": "nccl", "ascend": "hccl"}
MINDSPORE_BACKENDS = {"cpu": "mccl", "cuda": "nccl", "ascend": "hccl"}
MINDSPORE_TARGETS = {"cpu": "CPU", "cuda": "GPU", "ascend": "Ascend"}


@dataclass(frozen=True)
class Device:
    kind: str
    index: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"{self.kind}:{self.index}"


def resolve_auto() -> tuple[str, list[str]]:
    """``auto``: the first CUDA GPU NVML sees, else the first NPU npu-smi lists, else the CPU; with, for each kind
    passed over, one sentence saying why (no driver, a time-out, an unreadable table): metrics.device.machine."""
    kind, passed = first_accelerator()
    return (kind if kind == "cpu" else f"{kind}:0"), passed


def parse_device(text: str) -> Device:
    kind, sep, index = text.strip().lower().partition(":")
    if kind not in KINDS:
        raise PairbenchError(f"unknown device '{text}'; use cpu, cuda[:i] or ascend[:i]")
    if not sep:
        return Device(kind)
    if kind == "cpu" or not index.isdigit():
        raise PairbenchError(f"malformed device '{text}'; use cpu, cuda[:i] or ascend[:i]")
    return Device(kind, int(index))
