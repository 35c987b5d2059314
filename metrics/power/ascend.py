"""Ascend NPU power through npu-smi: no energy counter exists, so real-time power is sampled and
integrated. "NA" is no reading; a rated power (310 chips) is a rating, never a measurement.

``ascend:i`` is a logical device; ASCEND_RT_VISIBLE_DEVICES (when set) maps it to the physical NPU id
that npu-smi uses.
"""

from __future__ import annotations

import os
import time

from metrics.power.npu_smi import NpuSmi, NpuSmiError
from metrics.power.window import MEASURED, PowerResult, PowerUnavailable, SampledCollector


def physical_npu_id(logical: int, environ=os.environ) -> int:
    visible = environ.get("ASCEND_RT_VISIBLE_DEVICES")
    if not visible:
        return logical
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if logical >= len(entries) or not entries[logical].isdigit():
        raise PowerUnavailable(f"Ascend device {logical} is not among ASCEND_RT_VISIBLE_DEVICES={visible!r}")
    return int(entries[logical])


def npu_power_reader(smi: NpuSmi, npu_id: int):
    """A reader returning watts, or None for an "NA" sample; PowerUnavailable for a rating or an error."""

    def read() -> float | None:
        try:
            reading = smi.power(npu_id)
        except NpuSmiError as exc:
            raise PowerUnavailable(str(exc)) from None
        if reading.kind == "rated":
            raise PowerUnavailable(
                f"npu-smi reports only a rated power ({reading.key}) for NPU {npu_id}; a rating is not a measurement"
            )
        return reading.watts if reading.kind == "real-time" else None

    return read


class NpuSmiCollector(SampledCollector):
    """Sampled npu-smi real-time power, integrated into energy (provenance: measured)."""

    def __init__(
        self,
        logical_index: int,
        rate_hz: float = 2.0,
        smi: NpuSmi | None = None,
        clock=time.monotonic,
        environ=os.environ,
    ):
        self.npu_id = physical_npu_id(logical_index, environ)
        self.smi = smi or NpuSmi()
        read = npu_power_reader(self.smi, self.npu_id)
        read()  # fail before the run when npu-smi is absent or reports only a rating
        super().__init__(read, "npu-smi-sampled", MEASURED, rate_hz, 2, clock)

    def stop(self) -> PowerResult:
        result = super().stop()
        result.extra["power_npu_id"] = self.npu_id
        return result


def list_npus(smi: NpuSmi | None = None) -> list[dict]:
    """Every NPU npu-smi lists, with its real-time power or the reason there is none."""
    smi = smi or NpuSmi()
    out = []
    for info in smi.info():
        entry = {
            "kind": "ascend",
            "npu_id": info.npu_id,
            "chip_id": info.chip_id,
            "name": info.name,
            "health": info.health,
            "memory_gb": info.hbm_total_mb / 1024 if info.hbm_total_mb else None,
        }
        try:
            watts = npu_power_reader(smi, info.npu_id)()
            if watts is None:
                entry.update(power_w=None, power_provenance="unavailable", power_reason="npu-smi reports NA")
            else:
                entry.update(power_w=watts, power_provenance=MEASURED, power_source="npu-smi")
        except PowerUnavailable as exc:
            entry.update(power_w=None, power_provenance="unavailable", power_reason=str(exc))
        out.append(entry)
    return out
