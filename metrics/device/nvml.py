"""NVIDIA GPUs through nvidia-ml-py (module ``pynvml``): how many there are, each one's name, memory and current
power, and the readers the power window samples (metrics.power.nvidia).

CUDA and NVML number GPUs differently: NVML enumerates by PCI bus id, CUDA by default fastest first,
and CUDA_VISIBLE_DEVICES renumbers. :func:`nvml_handle_for_cuda` resolves a CUDA index through
CUDA_VISIBLE_DEVICES (indices or GPU UUIDs); the worker sets CUDA_DEVICE_ORDER=PCI_BUS_ID so that
bare indices agree with NVML's.
"""

from __future__ import annotations

import os

from metrics.device.reading import CARD, MEASURED, PowerUnavailable, Scope

# What NVML's figures cover: the whole board. nvmlDeviceGetPowerUsage is "power usage for this GPU ... and its
# associated circuitry (e.g. memory)" (NVML API reference); NVML_FI_DEV_POWER_INSTANT is read with scope id 0,
# NVML_POWER_SCOPE_GPU (the GPU board; not NVML_POWER_SCOPE_MODULE, which on a superchip such as GH200 adds the
# CPU); nvmlDeviceGetTotalEnergyConsumption is "total energy consumption for this GPU ... since the driver was last
# reloaded" from the same board sensor (Zeus found it within 1 % of integrated board power, ml-energy/zeus#12).
BOARD = Scope(CARD, "the whole board: the GPU with its memory and circuitry (NVML)")


def open_nvml():
    """The initialised pynvml module, or PowerUnavailable saying why."""
    try:
        import pynvml
    except ImportError:
        raise PowerUnavailable("nvidia-ml-py (pynvml) is not installed") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise PowerUnavailable(f"NVML cannot be initialised ({exc}); no NVIDIA driver is loaded here") from None
    return pynvml


def nvml_handle_for_cuda(nv, cuda_index: int, environ=os.environ):
    """NVML handle of the GPU that CUDA calls ``cuda_index`` in this process. CUDA must number GPUs by PCI bus
    id, as NVML does: under CUDA's default order (fastest first) the index could name another GPU, whose
    power would then be called measured, so any other order is refused."""
    order = environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST (CUDA's default)")
    if order != "PCI_BUS_ID":
        raise PowerUnavailable(
            f"CUDA_DEVICE_ORDER is {order}, so CUDA's GPU {cuda_index} need not be NVML's; set it to PCI_BUS_ID"
        )
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return nv.nvmlDeviceGetHandleByIndex(cuda_index)
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if cuda_index >= len(entries):
        raise PowerUnavailable(f"CUDA device {cuda_index} is not among CUDA_VISIBLE_DEVICES={visible!r}")
    entry = entries[cuda_index]
    if entry.isdigit():
        return nv.nvmlDeviceGetHandleByIndex(int(entry))
    if entry.startswith("GPU-"):
        return nv.nvmlDeviceGetHandleByUUID(entry)
    raise PowerUnavailable(f"cannot map CUDA_VISIBLE_DEVICES entry {entry!r} (MIG slices have no power sensor)")


def power_reader(nv, handle):
    """Instant power where the GPU reports it (NVML_FI_DEV_POWER_INSTANT), else nvmlDeviceGetPowerUsage
    (averaged over about 1 s on Ampere and newer). Returns (reader in watts, name of the quantity)."""
    try:
        field = nv.nvmlDeviceGetFieldValues(handle, [nv.NVML_FI_DEV_POWER_INSTANT])[0]
        if field.nvmlReturn == 0:

            def instant() -> float:
                value = nv.nvmlDeviceGetFieldValues(handle, [nv.NVML_FI_DEV_POWER_INSTANT])[0]
                if value.nvmlReturn != 0:
                    raise PowerUnavailable("NVML stopped reporting instant power")
                return value.value.uiVal / 1000.0

            return instant, "instant"
    except nv.NVMLError:
        pass
    try:
        nv.nvmlDeviceGetPowerUsage(handle)
    except nv.NVMLError as exc:
        raise PowerUnavailable(f"this GPU reports no power reading through NVML ({exc})") from None
    return (lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0), "average"


def gpu_count() -> int:
    """How many NVIDIA GPUs NVML sees; PowerUnavailable (saying why) where NVML cannot be used."""
    return open_nvml().nvmlDeviceGetCount()


def list_gpus() -> list[dict]:
    """Every NVIDIA GPU NVML sees, with its current power or the reason there is none."""
    nv = open_nvml()
    out = []
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        name = nv.nvmlDeviceGetName(h)
        name = name.decode() if isinstance(name, bytes) else name
        entry = {"kind": "cuda", "nvml_index": i, "name": name, "memory_gb": nv.nvmlDeviceGetMemoryInfo(h).total / 1e9}
        try:
            read, kind = power_reader(nv, h)
            entry.update(power_w=read(), power_provenance=MEASURED, power_source=f"nvml-power-{kind}")
            entry.update(power_scope=BOARD.kind, power_scope_label=BOARD.label)
        except PowerUnavailable as exc:
            entry.update(power_w=None, power_provenance="unavailable", power_reason=str(exc))
        out.append(entry)
    return out
