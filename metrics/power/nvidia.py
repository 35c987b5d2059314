"""NVIDIA power and energy over a window: the total-energy counter where the GPU has one (Volta and newer),
integrated sampled power beside it (the readers: metrics.device.nvml)."""

from __future__ import annotations

import os
import time

from metrics.device.nvml import BOARD, nvml_handle_for_cuda, open_nvml, power_reader
from metrics.device.reading import MEASURED
from metrics.power.window import PowerResult, SampledCollector, unavailable


class NvmlCollector:
    """Counter-based energy (measured) with sampled power beside it, over one window.

    The caller synchronises the device before ``start`` and before ``stop``. When the counter does not
    advance (a window shorter than its update period) the counter energy is reported as unavailable
    with that reason and the sampled energy is used, if it has enough samples; never 0 J.
    """

    source = "nvml"

    def __init__(self, cuda_index: int, rate_hz: float = 10.0, clock=time.monotonic, environ=os.environ):
        self.nv = open_nvml()
        self.handle = nvml_handle_for_cuda(self.nv, cuda_index, environ)
        read, self.power_kind = power_reader(self.nv, self.handle)
        self.sampled = SampledCollector(read, f"nvml-power-{self.power_kind}", MEASURED, rate_hz, 2, clock, scope=BOARD)
        try:
            self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            self.has_counter = True
        except self.nv.NVMLError:
            self.has_counter = False

    def _energy_mj(self) -> int | None:
        """The total-energy counter, or None (with the reason kept) when the driver fails to answer."""
        if not self.has_counter:
            return None
        try:
            return self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except self.nv.NVMLError as exc:
            self.counter_error = f"reading the energy counter failed ({type(exc).__name__}: {exc})"
            return None

    def start(self) -> None:
        self.counter_error = None
        self.e0 = self._energy_mj()
        self.sampled.start()

    def stop(self) -> PowerResult:
        sampled = self.sampled.stop()
        e1 = self._energy_mj()
        window = sampled.window_s  # the counter is read just outside it, microseconds apart
        extra = {
            "energy_j_sampled": sampled.energy_j,
            "energy_j_counter": None,
            "power_sensor": self.power_kind,
            **{k: v for k, v in sampled.extra.items() if k.startswith("power_")},
        }
        counter_reason = self.counter_error or "this GPU has no total-energy counter (pre-Volta)"
        if self.e0 is not None and e1 is not None:
            delta_j = (e1 - self.e0) / 1000.0
            if delta_j > 0:
                extra["energy_j_counter"] = delta_j
            else:
                counter_reason = (
                    f"the energy counter did not advance over the {window:.3f} s window "
                    "(shorter than its update period)"
                )
        extra["energy_counter_reason"] = None if extra["energy_j_counter"] is not None else counter_reason
        if extra["energy_j_counter"] is not None:
            energy, source = extra["energy_j_counter"], "nvml-energy-counter"
        elif sampled.energy_j is not None:
            energy, source = sampled.energy_j, sampled.source
        else:
            why = f"{counter_reason}; sampled power: {sampled.reason}"
            result = unavailable(self.source, why, window, sampled.rate_hz)
            result.extra = extra
            return result
        return PowerResult(
            source=source,
            provenance=MEASURED,
            window_s=window,
            energy_j=energy,
            power_w_mean=energy / window if window > 0 else None,
            power_w_peak=sampled.power_w_peak,
            samples=sampled.samples,
            extra=extra,
            scope=BOARD,
            rate_hz=sampled.rate_hz,
        )
