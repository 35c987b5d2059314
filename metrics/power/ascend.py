"""Ascend NPU power over a window: npu-smi has no energy counter, so the chip's real-time power (the reader chosen by
metrics.device.ascend) is sampled and integrated."""

from __future__ import annotations

import os
import time

from metrics.device.ascend import locate, npu_power_reader, npu_scope, visible_logical_id
from metrics.device.npu_smi.runner import NpuSmi
from metrics.device.npu_smi.values import NpuSmiError
from metrics.device.reading import MEASURED
from metrics.power.window import PowerResult, SampledCollector


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
        self.smi = smi or NpuSmi()
        self.logical_id = visible_logical_id(logical_index, environ)
        try:
            infos = self.smi.info()
            info = locate(self.logical_id, infos)
            self.npu_id, self.chip_id = info.npu_id, info.chip_id
            chips = sum(1 for i in infos if i.npu_id == info.npu_id)
        except NpuSmiError:  # a table this parser cannot read: the logical id is taken as the NPU id, as before
            self.npu_id, self.chip_id, chips = self.logical_id, None, None
        power = npu_power_reader(self.smi, self.npu_id, chip_id=self.chip_id)  # fails before the run, not after
        self.power_source = power.source
        scope = npu_scope(self.npu_id, self.chip_id, power.covers, chips)
        super().__init__(power.read, "npu-smi-sampled", MEASURED, rate_hz, 2, clock, scope=scope)

    def stop(self) -> PowerResult:
        result = super().stop()
        result.extra.update(power_npu_id=self.npu_id, power_npu_chip=self.chip_id, power_npu_source=self.power_source)
        return result
