"""A worker's lifeline to the ``pairbench`` that started it: when that process dies (killed, crashed), every
worker it started dies too, so that none runs on holding a GPU or NPU and writing results no record points to.

A direct child asks Linux for a parent-death signal before it runs (:func:`die_with_parent`). The ranks of a
data-parallel run are grandchildren at best (torchrun and msrun start them, msrun in sessions of their own), so
they watch the ``pairbench`` process itself, named in their environment (:func:`watch_parent`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

PARENT_ENV = "PAIRBENCH_PARENT"  # "pid:start time" of the pairbench process a worker belongs to
WATCH_INTERVAL_S = 1.0


def die_with_parent(parent: int) -> None:
    """In a child of process ``parent``, before it runs: ask Linux to kill it when its parent dies
    (PR_SET_PDEATHSIG). Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _start_ticks(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (/proc/PID/stat, field 22: fixed for the process's
    life, unlike a wall-clock start time, which moves when the clock is stepped); None when there is no such
    process or it has exited (a zombie not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (command) "; the command may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def parent_token() -> str:
    """This process as a worker's environment names it (:data:`PARENT_ENV`): its pid and start ticks, so that a
    later process given the same pid is not mistaken for it."""
    return f"{os.getpid()}:{_start_ticks(os.getpid())}"


def _parse(token: str) -> tuple[int, str] | None:
    pid, _, started = token.partition(":")
    if not pid.isdigit() or not started.isdigit():
        return None
    return int(pid), started


def watch_parent(environ=os.environ, interval_s: float = WATCH_INTERVAL_S) -> bool:
    """Start a daemon thread that kills this process once the pairbench process named in ``environ`` is gone (or
    has exited and is a zombie). Returns whether one was started: no name, one that does not parse, or a system
    without /proc starts none."""
    parsed = _parse(environ.get(PARENT_ENV, ""))
    if parsed is None:
        return False
    pid, started = parsed

    def watch() -> None:
        event = threading.Event()
        while not event.wait(interval_s):
            if _start_ticks(pid) != started:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="pairbench-lifeline", daemon=True).start()
    return True
