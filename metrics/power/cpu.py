"""CPU energy over a window: RAPL counters (metrics.device.rapl) where readable, otherwise an estimate of TDP x
utilisation that is labelled as such and never mixed with measurements."""

from __future__ import annotations

import time

from metrics.device.rapl import RaplDomain, counter_delta_uj
from metrics.device.reading import CPU_PACKAGE, ESTIMATED, MEASURED, MODEL_ESTIMATE, PowerUnavailable, Scope
from metrics.power.window import PowerResult, PowerSampler, SampledCollector, unavailable


class RaplCollector:
    """Package energy from the RAPL counters at both ends of the window (measured), and a power series
    from counter differences between samples, for the power-over-time figure.

    A package domain covers the whole socket (cores, caches, uncore), whatever process keeps it busy; DRAM has
    domains of its own, which are not read."""

    source = "rapl"

    def __init__(self, domains: list[RaplDomain], rate_hz: float = 10.0, clock=time.monotonic):
        self.domains, self.clock = domains, clock
        self.error: str | None = None
        self._last: tuple[float, list[int]] | None = None
        self.sampler = PowerSampler(self._power_since_last, rate_hz, clock)
        self.rate_hz = rate_hz
        names = ", ".join(d.name for d in domains)
        self.scope = Scope(CPU_PACKAGE, f"CPU package(s) {names} (RAPL): the whole socket, every process; no DRAM")

    def _read_all(self) -> list[int]:
        return [d.read_uj() for d in self.domains]

    def _power_since_last(self) -> float | None:
        now, values = self.clock(), self._read_all()
        last, self._last = self._last, (now, values)
        if last is None or now <= last[0]:
            return None
        joules = (
            sum(counter_delta_uj(a, b, d.max_uj) for a, b, d in zip(last[1], values, self.domains, strict=True)) / 1e6
        )
        return joules / (now - last[0])

    def start(self) -> None:
        self.t0 = self.clock()
        try:
            self.e0 = self._read_all()
        except (OSError, PowerUnavailable) as exc:
            self.e0, self.error = None, f"reading RAPL failed: {exc}"
        self._last = (self.t0, self.e0) if self.e0 is not None else None
        self.sampler.start()

    def stop(self) -> PowerResult:
        samples = self.sampler.stop()
        t1 = self.clock()
        window = t1 - self.t0
        try:
            e1 = self._read_all()
        except (OSError, PowerUnavailable) as exc:
            e1, self.error = None, f"reading RAPL failed: {exc}"
        if self.e0 is None or e1 is None or not window > 0:
            return unavailable(self.source, self.error or f"the {window:.3f} s window is empty", window, self.rate_hz)
        energy = sum(counter_delta_uj(a, b, d.max_uj) for a, b, d in zip(self.e0, e1, self.domains, strict=True)) / 1e6
        if energy == 0.0:
            why = f"RAPL counters did not advance over the {window:.3f} s window"
            return unavailable(self.source, why, window, self.rate_hz)
        return PowerResult(
            source=self.source,
            provenance=MEASURED,
            window_s=window,
            energy_j=energy,
            power_w_mean=energy / window,
            power_w_peak=max((w for _, w in samples), default=None),
            samples=[(t - self.t0, w) for t, w in samples],
            extra={"power_rapl_domains": [d.name for d in self.domains]},
            scope=self.scope,
            rate_hz=self.rate_hz,
        )


class CpuEstimateCollector(SampledCollector):
    """Estimated CPU power: TDP x CPU utilisation, sampled and integrated.

    Utilisation between two samples is CPU time over wall time x logical cores, from psutil: this
    process's (all threads; ``utilisation_of="process"``, what a benchmark run is charged) or the whole
    machine's (``utilisation_of="system"``). The TDP x utilisation model is CodeCarbon's where no counter
    exists; it ignores idle power and frequency, so it is only ever labelled ``estimated`` (scope: model-estimate).
    """

    def __init__(self, tdp_w: float, basis: str, rate_hz: float = 10.0, clock=time.monotonic, utilisation_of="process"):
        import psutil

        if not tdp_w > 0:
            raise ValueError(f"TDP must be positive, got {tdp_w!r}")
        if utilisation_of not in ("process", "system"):
            raise ValueError(f"utilisation_of must be 'process' or 'system', got {utilisation_of!r}")
        self.tdp_w, self.basis = tdp_w, f"{basis}; utilisation of the {utilisation_of}"
        self.utilisation_of = utilisation_of
        self._psutil = psutil
        self._process = psutil.Process()
        self._cores = psutil.cpu_count(logical=True) or 1
        self._last: tuple[float, float] | None = None
        model = Scope(MODEL_ESTIMATE, f"a model, not a reading: TDP x CPU utilisation of the {utilisation_of}")
        super().__init__(self._estimate, "estimate: TDP x CPU utilisation", ESTIMATED, rate_hz, 2, clock, scope=model)

    def _busy_s(self) -> float:
        if self.utilisation_of == "process":
            times = self._process.cpu_times()
            return times.user + times.system
        times = self._psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _estimate(self) -> float | None:
        now, busy = self.clock(), self._busy_s()
        last, self._last = self._last, (now, busy)
        if last is None or now <= last[0]:
            return None  # no interval yet: no estimate, rather than a made-up 0 W
        utilisation = min(1.0, (busy - last[1]) / ((now - last[0]) * self._cores))
        return self.tdp_w * utilisation

    def stop(self) -> PowerResult:
        result = super().stop()
        result.extra["power_estimate_basis"] = self.basis
        return result
