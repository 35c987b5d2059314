"""How quiet the machine was while a run was timed: the CPU time that other processes took, the time the hypervisor
stole, the load average, CPU thermal throttling where the kernel counts it, and the spread of the timed samples;
then one verdict, ``quiet``, ``busy`` or ``unstable``.

Read from /proc/stat (every CPU's busy, idle and steal time), os.times() (this process's own CPU time, its threads
included) and /sys/devices/system/cpu/cpu*/thermal_throttle (Intel's throttle counters, where present). The verdict's
thresholds, as pyperf's "unstable benchmark" warning (standard deviation above 10% of the mean) and MLPerf's rule
that nothing else runs during a timed run suggest:

- ``busy``: other processes used more than ``BUSY_OTHER_CPU`` (10%) of the machine's CPU time in the window, or the
  hypervisor stole more than ``BUSY_STEAL`` (5%) of it, or the CPU was thermally throttled in the window;
- ``unstable``: not busy, but the timed samples' coefficient of variation is above ``UNSTABLE_CV`` (10%);
- ``quiet``: neither;
- ``unknown``: other processes' CPU time could not be read (no /proc/stat), and the samples are steady: nothing
  says the machine was quiet.

CPU time is counted over the CPUs this process may run on (its affinity: a container's CPUs, not the whole host's).
A figure that cannot be read is None with the reason in ``load_reason``; a verdict is given from what was read and
says so when a part was missing, never from a 0 put in its place."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

BUSY_OTHER_CPU = 0.10
BUSY_STEAL = 0.05
UNSTABLE_CV = 0.10
VERDICTS = ("quiet", "busy", "unstable", "unknown")
_THROTTLE = "/sys/devices/system/cpu/cpu{}/thermal_throttle/{}_throttle_count"


@dataclass(frozen=True)
class CpuTimes:
    """Seconds of all CPUs together since boot: ``total`` (every state), ``idle`` (idle and iowait), ``steal``."""

    total: float
    idle: float
    steal: float


def parse_proc_stat(text: str, ticks_per_s: float, cpus: set[int] | None = None) -> CpuTimes | None:
    """The CPU times of /proc/stat: summed over the per-CPU lines of ``cpus`` (the CPUs this process may run on),
    or the aggregate ``cpu`` line where ``cpus`` is None; None when a line needed is missing or malformed."""
    want = {"cpu"} if cpus is None else {f"cpu{i}" for i in cpus}
    total = idle = steal = 0
    found = set()
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in want:
            continue
        try:
            values = [int(v) for v in parts[1:]]
        except ValueError:
            return None
        if len(values) < 4 or min(values) < 0:
            return None
        values += [0] * (8 - len(values))
        # user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
        total += sum(values[:8])
        idle += values[3] + values[4]
        steal += values[7]
        found.add(parts[0])
    if found != want:
        return None
    return CpuTimes(total / ticks_per_s, idle / ticks_per_s, steal / ticks_per_s)


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _read_proc_stat() -> CpuTimes | None:
    """The CPU times of the CPUs this process may run on (its affinity: a container's CPUs, not the host's)."""
    try:
        return parse_proc_stat(Path("/proc/stat").read_text(), float(os.sysconf("SC_CLK_TCK")), _allowed_cpus())
    except (OSError, ValueError):
        return None


def _throttle_count() -> int | None:
    """Thermal throttle events the kernel counted on the CPUs this process may use: each package's counter once
    (every CPU of a package repeats it) and each core's once (its hardware threads repeat it); None where unreadable."""
    seen: dict[tuple, int] = {}
    for cpu in sorted(_allowed_cpus() or range(os.cpu_count() or 1)):
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = topology.joinpath("physical_package_id").read_text().strip()
            core = topology.joinpath("core_id").read_text().strip()
        except OSError:
            package, core = f"cpu{cpu}", f"cpu{cpu}"
        for kind, key in (("core", ("core", package, core)), ("package", ("package", package))):
            try:
                seen.setdefault(key, int(Path(_THROTTLE.format(cpu, kind)).read_text().strip()))
            except (OSError, ValueError):
                continue
    return sum(seen.values()) if seen else None


def others_share_between(a: CpuTimes, b: CpuTimes, own_cpu_s: float) -> float | None:
    """Other processes' share of the CPU time from ``a`` to ``b`` (``own_cpu_s`` of it this process's), or None
    where no CPU time passed."""
    capacity = b.total - a.total
    if capacity <= 0:
        return None
    busy = capacity - (b.idle - a.idle) - (b.steal - a.steal)
    return min(max((busy - own_cpu_s) / capacity, 0.0), 1.0)


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def coefficient_of_variation(samples) -> float | None:
    """Standard deviation over mean of the finite samples; None with fewer than two or a zero mean."""
    xs = [float(x) for x in samples if x is not None and math.isfinite(x)]
    if len(xs) < 2:
        return None
    mean = sum(xs) / len(xs)
    if mean <= 0:
        return None
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) / mean


def verdict(other_cpu: float | None, steal: float | None, throttled: int | None, cv: float | None) -> tuple[str, str]:
    """``(verdict, why)`` from the window's figures (None where unread); see the module's thresholds."""
    busy = []
    if other_cpu is not None and other_cpu > BUSY_OTHER_CPU:
        busy.append(f"other processes used {other_cpu:.0%} of the CPU time (above {BUSY_OTHER_CPU:.0%})")
    if steal is not None and steal > BUSY_STEAL:
        busy.append(f"the hypervisor stole {steal:.0%} of it (above {BUSY_STEAL:.0%})")
    if throttled:
        busy.append(f"the CPU was thermally throttled {throttled} time(s)")
    if busy:
        return "busy", "; ".join(busy)
    if cv is not None and cv > UNSTABLE_CV:
        return "unstable", f"the timed samples vary by {cv:.0%} of their mean (above {UNSTABLE_CV:.0%})"
    if other_cpu is None:  # what the machine did cannot be read: never called quiet
        return "unknown", "other processes' CPU time could not be read" + (
            "" if cv is None else f"; the timed samples vary by {cv:.1%} of their mean"
        )
    tail = "" if steal is not None else " (steal time unreadable)"
    if cv is None:
        return "quiet", f"nothing else ran; fewer than two timed samples, so no spread{tail}"
    return "quiet", f"nothing else ran and the timed samples vary by {cv:.1%} of their mean{tail}"


class LoadWatch:
    """Started and stopped around a timed window; ``stop(samples)`` gives the record's ``load_*`` fields."""

    def __init__(self, read_stat=_read_proc_stat, own_cpu=_own_cpu_s, throttle=_throttle_count, clock=time.monotonic):
        self._read, self._own, self._throttle, self._clock = read_stat, own_cpu, throttle, clock

    def start(self) -> None:
        self._t0, self._stat0, self._own0 = self._clock(), self._read(), self._own()
        self._thr0 = self._throttle()

    def stop(self, samples) -> dict:
        wall, stat, own, thr = self._clock() - self._t0, self._read(), self._own() - self._own0, self._throttle()
        reasons = []
        other = steal = None
        if self._stat0 is None or stat is None:
            reasons.append("/proc/stat is not readable")
        else:
            other = others_share_between(self._stat0, stat, own)
            if other is None:
                reasons.append("the window was shorter than the kernel's CPU time resolution")
            else:
                steal = min(max((stat.steal - self._stat0.steal) / (stat.total - self._stat0.total), 0.0), 1.0)
        throttled = None if thr is None or self._thr0 is None else max(thr - self._thr0, 0)
        if throttled is None:
            reasons.append("no thermal throttle counters")
        cv = coefficient_of_variation(samples)
        name, why = verdict(other, steal, throttled, cv)
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = None
        return {
            "load_verdict": name,
            "load_verdict_reason": why,
            "load_other_cpu_frac": other,
            "load_steal_frac": steal,
            "load_avg_1m": load,
            "load_throttle_events": throttled,
            "load_cv": cv,
            "load_window_s": wall,
            "load_reason": "; ".join(reasons) or None,
        }


def others_share(seconds: float, read_stat=_read_proc_stat, own_cpu=_own_cpu_s, sleep=time.sleep) -> float | None:
    """Other processes' share of the machine's CPU time over the next ``seconds`` (this process sleeps), or None
    where /proc/stat is unreadable."""
    stat0, own0 = read_stat(), own_cpu()
    sleep(seconds)
    stat1, own = read_stat(), own_cpu() - own0
    return None if stat0 is None or stat1 is None else others_share_between(stat0, stat1, own)


def wait_until_quiet(limit_s: float, probe_s: float = 1.0, share=others_share, clock=time.monotonic) -> str:
    """Wait, probing ``probe_s`` at a time, until other processes take at most BUSY_OTHER_CPU of the machine, for at
    most ``limit_s``; returns what happened in words (``quiet after N s``, or why it stopped waiting)."""
    start = clock()
    while True:
        value = share(probe_s)
        waited = clock() - start
        if value is None:
            return "not waited: /proc/stat is not readable"
        if value <= BUSY_OTHER_CPU:
            return f"quiet after {waited:.0f} s"
        if waited >= limit_s:
            return f"still busy after {waited:.0f} s (other processes used {value:.0%} of the CPU time)"
