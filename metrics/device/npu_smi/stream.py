"""A running ``npu-smi info watch``: started without a shell, its rows read as they arrive until enough have come,
then stopped (terminated, killed if it lingers); time-outs and early ends are NpuSmiError sentences."""

from __future__ import annotations

import queue
import subprocess
import tempfile
import threading
import time

from metrics.device.npu_smi.values import NpuSmiError, first_line
from metrics.device.npu_smi.watch import WatchRow, WatchStream


def _pump(stream, lines: queue.Queue) -> None:
    """Copy lines from a pipe into ``lines``; ``None`` marks the end of the stream."""
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass
    lines.put(None)


def _wait_briefly(proc: subprocess.Popen) -> None:
    """Give a process whose output has ended a second to exit, so its own exit code is seen."""
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass


def _stop(proc: subprocess.Popen) -> None:
    """Terminate ``proc`` if it still runs, killing it if it does not exit within a second."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def watch_rows(argv: list[str], command: str, count: int, deadline: float) -> list[WatchRow]:
    """Run ``argv`` (an ``npu-smi info watch`` command line, ``command`` as the messages name it) and return its first
    ``count`` rows; the process is stopped once they have arrived, or at ``deadline`` (time.monotonic), an error.
    Fewer rows are returned only when the tool ends by itself with exit code 0."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = _popen(argv, command, stderr)
        try:
            rows = _read_rows(proc, command, count, deadline)
        finally:
            _stop(proc)
            proc.stdout.close()
        _check_ended(proc, command, rows, count, stderr)
    return rows


def _popen(argv: list[str], command: str, stderr) -> subprocess.Popen:
    """Start ``argv`` with stdout piped as text."""
    try:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True)
    except OSError as exc:
        raise NpuSmiError(f"'{command}' could not be started: {exc}") from exc


def _read_rows(proc: subprocess.Popen, command: str, count: int, deadline: float) -> list[WatchRow]:
    """Read rows until ``count`` arrive, the stream ends, or ``deadline`` passes (an error)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    stream, rows = WatchStream(), []
    while len(rows) < count:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise NpuSmiError(f"'{command}' gave {len(rows)} of {count} rows before the time limit") from None
        if line is None:
            _wait_briefly(proc)
            break
        if not line.endswith("\n") and stream.is_short_row(line):
            continue
        row = stream.feed(line)
        if row is not None:
            rows.append(row)
    return rows


def _check_ended(proc: subprocess.Popen, command: str, rows: list, count: int, stderr) -> None:
    """Raise when the stream ended early with an error, or without any data row."""
    if len(rows) == count:
        return
    if proc.returncode != 0:
        stderr.seek(0)
        raise NpuSmiError(f"'{command}' exited with code {proc.returncode}: {first_line(stderr.read())}")
    if not rows:
        raise NpuSmiError(f"'{command}' ended without printing a data row")
