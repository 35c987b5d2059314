"""Power and energy collectors: one interface (start, stop -> PowerResult), a background sampler and
the integration of sampled power into energy. The vendor readers live below, in metrics/device/ (NVML, npu-smi,
RAPL), and their collectors in nvidia.py, cpu.py and ascend.py; nothing here imports a framework or a vendor library.

Provenance is explicit: ``measured`` (a sensor or counter), ``estimated`` (a model such as TDP x
utilisation) or ``unavailable`` (with the reason). An unavailable value is ``None``, never 0. So is what a
reading covers (:class:`Scope`, metrics.device.reading), and whether a window held enough samples
(:func:`sampling_shortfall`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from metrics.device.reading import ESTIMATED, MEASURED, NO_SCOPE, UNAVAILABLE, PowerUnavailable, Scope

# The least sampling a window needs, from MLPerf Training's power rules (mlcommons/training_policies,
# power_measurement.adoc): "Power measurement must be at least once every second distributed evenly throughout the
# timed portion of a run" and "Measure max(a run, 60 power samples)". A window short of it is flagged in its record
# (power_window_ok, power_window_reason), its energy kept.
MIN_RATE_HZ = 1.0
MIN_SAMPLES = 60


NOTHING_READ = Scope(NO_SCOPE, "nothing was read")


def sampling_shortfall(samples: list[tuple[float, float]], window_s: float) -> str | None:
    """Why ``samples`` (seconds since the window opened, watts) fall short of MIN_SAMPLES readings at MIN_RATE_HZ or
    more, evenly through the ``window_s`` window (no gap, edges included, over 1 / MIN_RATE_HZ); None when they
    do not."""
    times = sorted(t for t, _ in samples)
    rate = len(times) / window_s if window_s > 0 else 0.0
    edges = [0.0, *times, window_s] if window_s > 0 else [0.0]
    gap = max(b - a for a, b in zip(edges, edges[1:], strict=False)) if len(edges) > 1 else 0.0
    short = []
    if len(times) < MIN_SAMPLES:
        short.append(f"{len(times)} samples, fewer than {MIN_SAMPLES}")
    if rate < MIN_RATE_HZ:
        short.append(f"{rate:.3g} Hz, under {MIN_RATE_HZ:g} Hz")
    if gap > 1.0 / MIN_RATE_HZ:
        short.append(f"a {gap:.3g} s gap without a sample, over {1.0 / MIN_RATE_HZ:g} s")
    if not short:
        return None
    return (
        f"{'; '.join(short)} in the {window_s:.3g} s window: MLPerf Power asks for at least {MIN_SAMPLES} samples, "
        "one per second or more throughout; the energy is kept, flagged"
    )


@dataclass
class PowerResult:
    """What a collector saw over one window. Samples are (seconds since window start, watts)."""

    source: str
    provenance: str
    window_s: float
    energy_j: float | None = None
    power_w_mean: float | None = None
    power_w_peak: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)
    reason: str | None = None
    extra: dict = field(default_factory=dict)
    scope: Scope = NOTHING_READ
    rate_hz: float | None = None  # the rate the sampler was asked for; None where nothing was sampled

    def __post_init__(self) -> None:
        if self.provenance not in (MEASURED, ESTIMATED, UNAVAILABLE):
            raise ValueError(f"unknown provenance {self.provenance!r}")
        if self.provenance == UNAVAILABLE and not self.reason:
            raise ValueError("an unavailable power result must say why")
        if (self.provenance == UNAVAILABLE) != (self.scope.kind == NO_SCOPE):
            raise ValueError(f"a power result that is {self.provenance} cannot have the scope {self.scope.kind!r}")

    def to_record(self, samples_in_window: int | None = None) -> dict:
        """Flat record fields; energy per sample and samples per joule when ``samples_in_window``. The sampling is
        checked (:func:`sampling_shortfall`) wherever there is energy to qualify, and a shortfall flagged."""
        checked = self.provenance != UNAVAILABLE
        shortfall = sampling_shortfall(self.samples, self.window_s) if checked else None
        rec = {
            "power_source": self.source,
            "power_provenance": self.provenance,
            "power_window_s": self.window_s,
            "energy_j": self.energy_j,
            "power_w_mean": self.power_w_mean,
            "power_w_peak": self.power_w_peak,
            "power_reason": self.reason,
            "power_samples": [[round(t, 4), round(w, 3)] for t, w in self.samples],
            "power_scope": self.scope.kind,
            "power_scope_label": self.scope.label,
            "power_rate_hz": self.rate_hz,
            "power_rate_hz_achieved": len(self.samples) / self.window_s if checked and self.window_s > 0 else None,
            "power_window_ok": shortfall is None if checked else None,
            "power_window_reason": shortfall,
            **self.extra,
        }
        if samples_in_window and self.energy_j is not None and self.energy_j > 0:
            rec["energy_j_per_sample"] = self.energy_j / samples_in_window
            rec["samples_per_j"] = samples_in_window / self.energy_j
        else:
            rec["energy_j_per_sample"] = rec["samples_per_j"] = None
        return rec


def unavailable(source: str, reason: str, window_s: float = 0.0, rate_hz: float | None = None) -> PowerResult:
    return PowerResult(source=source, provenance=UNAVAILABLE, window_s=window_s, reason=reason, rate_hz=rate_hz)


class Collector(Protocol):
    """Opened and closed by a runner around exactly the window its timings cover."""

    source: str

    def start(self) -> None: ...

    def stop(self) -> PowerResult: ...


def integrate(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Joules over [t0, t1] from (time s, watts) samples: trapezoids between samples, the first and
    last samples held constant out to the window's edges. Needs at least one sample."""
    if not samples:
        raise ValueError("no power samples to integrate")
    pts = sorted((min(max(t, t0), t1), w) for t, w in samples)
    energy = pts[0][1] * (pts[0][0] - t0) + pts[-1][1] * (t1 - pts[-1][0])
    for (ta, wa), (tb, wb) in zip(pts, pts[1:], strict=False):
        energy += 0.5 * (wa + wb) * (tb - ta)
    return energy


class PowerSampler:
    """Calls ``read()`` (watts, or None for no reading) at ``rate_hz`` in a daemon thread.

    A sample is taken at start and at stop, so a window always has its two edges when readable.
    """

    def __init__(self, read: Callable[[], float | None], rate_hz: float, clock=time.monotonic):
        if not rate_hz > 0:
            raise ValueError(f"sampling rate must be positive, got {rate_hz!r}")
        self.read, self.period, self.clock = read, 1.0 / rate_hz, clock
        self.samples: list[tuple[float, float]] = []
        self.missing = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _take(self) -> None:
        try:
            watts = self.read()
        except Exception as exc:  # any reader failure (a driver error, a tool that hung) is a missing reading
            self.errors.append(str(exc) if isinstance(exc, PowerUnavailable) else f"{type(exc).__name__}: {exc}")
            watts = None
        if watts is not None and not math.isfinite(watts):
            self.errors.append(f"the reader returned {watts} W")
            watts = None
        t = self.clock()
        if watts is None:
            self.missing += 1
        else:
            self.samples.append((t, float(watts)))

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self._take()

    def start(self) -> None:
        self._take()
        self._thread = threading.Thread(target=self._loop, name="pairbench-power", daemon=True)
        self._thread.start()

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()
        return list(self.samples)


class SampledCollector:
    """Energy by integrating sampled power; needs ``min_samples`` readings inside the window. ``scope`` says what
    the reader's watts cover."""

    def __init__(
        self,
        read: Callable[[], float | None],
        source: str,
        provenance: str = MEASURED,
        rate_hz: float = 10.0,
        min_samples: int = 2,
        clock=time.monotonic,
        *,
        scope: Scope,
    ):
        self.source, self.provenance, self.min_samples, self.scope = source, provenance, min_samples, scope
        self.sampler = PowerSampler(read, rate_hz, clock)
        self.clock = clock
        self.rate_hz = rate_hz

    def start(self) -> None:
        self.t0 = self.clock()
        self.sampler.start()

    def stop(self) -> PowerResult:
        samples = self.sampler.stop()
        t1 = self.clock()
        window = t1 - self.t0
        if len(samples) < self.min_samples:
            why = (
                self.sampler.errors[-1]
                if self.sampler.errors
                else (
                    f"{len(samples)} power reading(s) in a {window:.3f} s window "
                    f"({self.sampler.missing} without a value); at least {self.min_samples} are needed"
                )
            )
            return unavailable(self.source, why, window, self.rate_hz)
        energy = integrate(samples, self.t0, t1)
        extra = {"power_samples_missing": self.sampler.missing}
        if self.sampler.errors:
            extra["power_partial_reason"] = (
                f"{len(self.sampler.errors)} of {len(samples) + self.sampler.missing} readings failed "
                f"(last: {self.sampler.errors[-1]}); energy integrates the {len(samples)} that succeeded"
            )
        return PowerResult(
            source=self.source,
            provenance=self.provenance,
            window_s=window,
            energy_j=energy,
            power_w_mean=energy / window if window > 0 else None,
            power_w_peak=max(w for _, w in samples),
            samples=[(t - self.t0, w) for t, w in samples],
            extra=extra,
            scope=self.scope,
            rate_hz=self.rate_hz,
        )


class UnavailableCollector:
    """Stands in where nothing can be read, carrying the reason into the record."""

    def __init__(self, source: str, reason: str, clock=time.monotonic):
        self.source, self.reason, self.clock = source, reason, clock

    def start(self) -> None:
        self.t0 = self.clock()

    def stop(self) -> PowerResult:
        return unavailable(self.source, self.reason, self.clock() - self.t0)
