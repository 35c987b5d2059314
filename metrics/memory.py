"""Host memory: the peak resident set size of this process over a window, sampled in a thread."""

from __future__ import annotations

import threading

# A run on the CPU has no device memory apart from the host's (host_peak_rss_mb): what its device-memory fields say.
CPU_DEVICE_MEMORY = {"device_peak_mem_mb": None, "device_peak_mem_reason": "CPU: host memory is the device memory"}


class RssPeak:
    """Samples this process's RSS every ``period_s`` between ``start`` and ``stop``.

    ``stop`` returns (RSS at start, peak RSS seen) in MB. Sampling misses peaks shorter than the period;
    on CPU runs the difference is what a training step adds on top of the built model (activations,
    gradients, optimiser state, allocator growth).
    """

    def __init__(self, period_s: float = 0.005):
        import psutil

        self.process, self.period = psutil.Process(), period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> int:
        return self.process.memory_info().rss

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, self._rss())

    def start(self) -> None:
        self.baseline = self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, name="pairbench-rss", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())
        return self.baseline / 2**20, self.peak / 2**20
