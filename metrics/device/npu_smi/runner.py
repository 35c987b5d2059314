"""Runs ``npu-smi`` without a shell and parses what it prints: ``info`` (metrics.device.npu_smi.info), ``-t
power|common`` (key_values) and ``info watch`` (watch, streamed by stream); standard library only. Ascend devices have
no energy counter, so these outputs are what power is read from."""

from __future__ import annotations

import shutil
import subprocess
import time

from metrics.device.npu_smi.info import NpuInfo, parse_info
from metrics.device.npu_smi.key_values import PowerReading, parse_power
from metrics.device.npu_smi.stream import watch_rows
from metrics.device.npu_smi.values import NpuSmiError, first_line
from metrics.device.npu_smi.watch import WatchRow


def _seconds(delay_s: float) -> str:
    """``-d`` argument: whole seconds print as integers (as the real tool expects), others as decimals."""
    return str(int(delay_s)) if float(delay_s).is_integer() else repr(float(delay_s))


class NpuSmi:
    """Runs ``npu-smi`` (no shell) and parses what it prints.

    Parameters
    ----------
    executable : str
        Name looked up on PATH, or a path.
    timeout_s : float
        Time limit of one command; for ``watch`` it is added to ``delay_s * count``.
    """

    def __init__(self, executable: str = "npu-smi", timeout_s: float = 5.0) -> None:
        self.executable = executable
        self.timeout_s = timeout_s

    def _resolve(self) -> str:
        """Full path of the executable, or an error saying power cannot be read without it."""
        path = shutil.which(self.executable)
        if path is None:
            raise NpuSmiError(f"{self.executable} is not on PATH, so Ascend power cannot be read")
        return path

    def _describe(self, args: tuple[str, ...]) -> str:
        return " ".join((self.executable, *args))

    def run(self, *args: str) -> str:
        """Run ``npu-smi ARGS`` and return its standard output.

        Raises
        ------
        NpuSmiError
            When the executable is not on PATH, cannot be started, exceeds ``timeout_s``, or exits non-zero
            (the message quotes the first line of its stderr, or of its stdout when stderr is empty).
        """
        command = self._describe(args)
        try:
            done = subprocess.run(
                [self._resolve(), *args],
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise NpuSmiError(f"'{command}' did not finish within {self.timeout_s} s") from None
        except OSError as exc:
            raise NpuSmiError(f"'{command}' could not be started: {exc}") from exc
        if done.returncode != 0:
            message = first_line(done.stderr, done.stdout)
            raise NpuSmiError(f"'{command}' exited with code {done.returncode}: {message}")
        return done.stdout

    def info(self) -> list[NpuInfo]:
        """Run ``npu-smi info`` and parse its device table (see :func:`parse_info`)."""
        return parse_info(self.run("info"))

    def common(self, npu_id: int) -> list[PowerReading]:
        """Run ``npu-smi info -t common -i ID`` and return its power readings (see :func:`parse_power`)."""
        return parse_power(self.run("info", "-t", "common", "-i", str(npu_id)), npu_id)

    def power(self, npu_id: int, chip_id: int | None = None) -> PowerReading:
        """Run ``npu-smi info -t power -i ID`` and return the NPU's power reading.

        A real-time reading is preferred (kind "unavailable" when it printed ``NA``); when the output has
        only a rating, that is returned with kind "rated" and must not be used as a measurement. Where several
        blocks print one (a chip's and the card's, as the manual shows for the Atlas 200I A2), the block of chip
        ``chip_id`` is taken, else the card's; the choice follows the layout, never the values, so that every
        sample of a window covers the same thing.

        Raises
        ------
        NpuSmiError
            As :meth:`run` and :func:`parse_power`, and when several readings remain to choose from (several
            chips' and no card's, and no ``chip_id`` among them).
        """
        readings = parse_power(self.run("info", "-t", "power", "-i", str(npu_id)), npu_id)
        measured = [r for r in readings if r.kind != "rated"]
        candidates = measured or readings
        if len(candidates) > 1:
            own = [r for r in candidates if r.covers == "chip" and r.chip_id == chip_id]
            card = [r for r in candidates if r.covers == "card"]
            candidates = own if len(own) == 1 else card if len(card) == 1 else candidates
        if len(candidates) > 1:
            raise NpuSmiError(f"expected one power reading for NPU {npu_id}, found {len(candidates)}: {candidates}")
        return candidates[0]

    def watch(self, npu_id: int, delay_s: float, count: int) -> list[WatchRow]:
        """Stream ``npu-smi info watch -i ID -d SECONDS`` and return its first ``count`` rows.

        The process is terminated once ``count`` rows have arrived, and killed if the rows do not arrive
        within ``timeout_s + delay_s * count`` seconds. Fewer rows are returned only when the tool ends
        by itself with exit code 0.

        Parameters
        ----------
        npu_id : int
            The NPU to watch.
        delay_s : float
            Seconds between rows (``-d``).
        count : int
            Number of rows wanted, at least 1.

        Raises
        ------
        ValueError
            When ``delay_s`` is not positive or ``count`` is below 1.
        NpuSmiError
            On time-out, a non-zero exit before ``count`` rows, no data row at all, or unreadable output.
        """
        if delay_s <= 0 or count < 1:
            raise ValueError(f"expected delay_s > 0 and count >= 1, got delay_s={delay_s} and count={count}")
        args = ("info", "watch", "-i", str(npu_id), "-d", _seconds(delay_s))
        argv = [self._resolve(), *args]
        deadline = time.monotonic() + self.timeout_s + delay_s * count
        return watch_rows(argv, self._describe(args), count, deadline)
