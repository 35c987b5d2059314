"""What every npu-smi output is read with: :class:`NpuSmiError`, "NA", numbers, integers, "used / total" pairs and
the plausible range of a value; standard library only. Anything unreadable raises NpuSmiError with one sentence
saying what was expected and what was found; nothing unreadable is ever turned into 0 or another made-up number."""

from __future__ import annotations

import re

NA_VALUES = frozenset({"NA", "N/A"})
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Plausible ranges of the values npu-smi prints (the info table's columns; Power(W) bounds every power reading
# too); a value outside is no reading (in the table, that row's problem).
PLAUSIBLE = {
    "Power(W)": (0.0, 2000.0),
    "Temp(C)": (-40.0, 150.0),
    "AICore(%)": (0.0, 100.0),
    "NPU Util(%)": (0.0, 100.0),
}


class NpuSmiError(Exception):
    """npu-smi could not be run, or its output could not be read."""


def number(value: str, what: str, line: str) -> float | None:
    """``value`` as a float, ``None`` for NA; anything else raises naming ``what`` and the line."""
    if value in NA_VALUES:
        return None
    if not _NUMBER.fullmatch(value):
        raise NpuSmiError(f"expected a number or NA for {what}, found {value!r} in {line.strip()!r}")
    return float(value)


def integer(value: str, what: str, line: str) -> int:
    """``value`` as a non-negative integer; anything else (NA included) raises."""
    if not value.isdigit():
        raise NpuSmiError(f"expected an integer {what}, found {value!r} in {line.strip()!r}")
    return int(value)


def ratio(value: str | None, what: str, line: str) -> tuple[float | None, float | None]:
    """A ``"used / total"`` cell as two numbers (each ``None`` for NA); a missing column gives ``(None, None)``."""
    if value is None:
        return None, None
    used, slash, total = value.partition("/")
    if not slash:
        raise NpuSmiError(f"expected 'used / total' for {what}, found {value!r} in {line.strip()!r}")
    return number(used.strip(), what, line), number(total.strip(), what, line)


def first_line(*texts: str) -> str:
    """The first non-blank line of the first text that has one."""
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return "no message"
