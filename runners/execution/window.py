"""The timed window of a worker: power (metrics.power.collectors) and the machine's load (metrics.load) sampled over
exactly the same stretch of time as the timings, opened and closed together and fenced by the device's
synchronisation, so that a figure's energy, its load verdict and its times always describe the same work."""

from __future__ import annotations

from metrics.load import LoadWatch
from metrics.power.collectors import collector_for
from runners.devices import parse_device
from runners.spec import RunConfig


def window_collector(run: RunConfig):
    """The power collector of ``run``'s device (see metrics.power.collectors)."""
    dev = parse_device(run.device)
    return collector_for(dev.kind, dev.index, run.power_rate_hz)


class TimedWindow:
    """One named power window (runners.records.schema.POWER_WINDOWS) of ``run`` on ``runner``'s device:
    ``open()`` waits for the device, then starts the load watch and the power collector; ``close(times_ms,
    samples)`` waits for the device, stops both and gives the record's power and load fields for the ``samples``
    samples processed in the timed ``times_ms``."""

    def __init__(self, run: RunConfig, runner, name: str):
        self.runner, self.name = runner, name
        self.collector, self.load = window_collector(run), LoadWatch()

    def open(self) -> TimedWindow:
        self.runner.synchronize()
        self.load.start()
        self.collector.start()
        return self

    def close(self, times_ms: list[float], samples: int) -> dict:
        self.runner.synchronize()
        power = self.collector.stop()
        return {
            **power.to_record(samples_in_window=samples),
            **self.load.stop(times_ms),
            "power_window": self.name,
        }
