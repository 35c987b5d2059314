"""Choose the power collector for a device: NVML for CUDA GPUs, npu-smi for Ascend NPUs, RAPL for the
CPU, and where RAPL cannot be read, the labelled TDP x utilisation estimate (or 'unavailable')."""

from __future__ import annotations

import time
from pathlib import Path

from metrics.device.machine import cpu_name
from metrics.device.reading import PowerUnavailable
from metrics.power.window import Collector, UnavailableCollector


def cpu_collector(
    rate_hz: float, clock=time.monotonic, powercap: Path | None = None, utilisation_of: str = "process"
) -> Collector:
    """RAPL where readable; otherwise the estimate (of the utilisation of ``utilisation_of``: this process or the
    whole system), whose record carries why RAPL was not used."""
    import psutil

    from hardware_profiles import cpu_tdp, match_profile
    from metrics.device.rapl import POWERCAP, rapl_domains
    from metrics.power.cpu import CpuEstimateCollector, RaplCollector

    try:
        return RaplCollector(rapl_domains(powercap or POWERCAP), rate_hz, clock)
    except PowerUnavailable as exc:
        rapl_reason = str(exc)
    profile = match_profile("cpu", cpu_name())
    tdp, basis = cpu_tdp(profile, psutil.cpu_count(logical=True) or 1)
    if tdp is None:
        return UnavailableCollector("cpu", f"{rapl_reason}; no estimate either: {basis}", clock)
    return CpuEstimateCollector(tdp, f"{basis}; not measured because {rapl_reason}", rate_hz, clock, utilisation_of)


def collector_for(kind: str, index: int, rate_hz: float = 10.0, clock=time.monotonic) -> Collector:
    """The collector for device ``kind:index``; never raises for a missing sensor, it returns an
    UnavailableCollector carrying the reason instead."""
    try:
        if kind == "cuda":
            from metrics.power.nvidia import NvmlCollector

            return NvmlCollector(index, rate_hz, clock)
        if kind == "ascend":
            from metrics.power.ascend import NpuSmiCollector

            return NpuSmiCollector(index, min(rate_hz, 5.0), clock=clock)
        if kind == "cpu":
            return cpu_collector(rate_hz, clock)
    except Exception as exc:  # a vendor library's own error (NVMLError, a hung npu-smi) is no reason to fail a run
        why = str(exc) if isinstance(exc, PowerUnavailable) else f"{type(exc).__name__}: {exc}"
        return UnavailableCollector({"cuda": "nvml", "ascend": "npu-smi"}.get(kind, kind), why, clock)
    raise ValueError(f"no power collector for device kind {kind!r}")
