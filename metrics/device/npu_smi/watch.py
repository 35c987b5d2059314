"""The stream ``npu-smi info watch -i ID -d SECONDS`` prints: a header naming the columns, then one row per
interval, read line by line (standard library only)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from metrics.device.npu_smi.values import NpuSmiError, integer, number

_WATCH_COLUMN = re.compile(r"[^\s()][^()]*\([^()]*\)")


@dataclass(frozen=True)
class WatchRow:
    """One row of ``npu-smi info watch``; ``fields`` holds every column by header name, as printed."""

    npu_id: int
    power_w: float | None
    temp_c: float | None
    aicore_pct: float | None
    fields: dict[str, str]


class WatchStream:
    """Line-by-line reader of ``npu-smi info watch`` output; the first header line fixes the columns."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None

    def is_short_row(self, line: str) -> bool:
        """Whether ``line`` is a data row with fewer values than the header has columns."""
        stripped = line.strip()
        is_data = bool(stripped) and stripped[0].isdigit()
        return self.columns is not None and is_data and len(stripped.split()) < len(self.columns)

    def feed(self, line: str) -> WatchRow | None:
        """Read one line: a data row gives a :class:`WatchRow`; blank and (repeated) header lines give None."""
        stripped = line.strip()
        if not stripped:
            return None
        if not stripped[0].isdigit():
            self._header(stripped)
            return None
        if self.columns is None:
            raise NpuSmiError(f"expected the npu-smi watch header (NpuID(Idx) Pwr(W) ...) first, found {stripped!r}")
        return self._row(stripped)

    def _header(self, line: str) -> None:
        """Set the columns from the first header; a repeated header must name the same columns."""
        columns = [name.strip() for name in _WATCH_COLUMN.findall(line)]
        if "".join(columns).replace(" ", "") != line.replace(" ", "") or not {"NpuID(Idx)", "Pwr(W)"} <= set(columns):
            raise NpuSmiError(f"expected a watch header with NpuID(Idx) and Pwr(W) columns, found {line!r}")
        if self.columns is not None and columns != self.columns:
            raise NpuSmiError(f"expected the repeated watch header to match the first one, found {line!r}")
        self.columns = columns

    def _row(self, line: str) -> WatchRow:
        """Map a data row onto the header's columns."""
        values = line.split()
        if len(values) != len(self.columns):
            raise NpuSmiError(f"expected {len(self.columns)} values per watch row, found {len(values)}: {line!r}")
        fields = dict(zip(self.columns, values, strict=True))
        optional = {
            name: number(fields[name], name, line) if name in fields else None for name in ("Temp(C)", "AI Core(%)")
        }
        return WatchRow(
            npu_id=integer(fields["NpuID(Idx)"], "NpuID(Idx)", line),
            power_w=number(fields["Pwr(W)"], "Pwr(W)", line),
            temp_c=optional["Temp(C)"],
            aicore_pct=optional["AI Core(%)"],
            fields=fields,
        )


def parse_watch(text: str) -> list[WatchRow]:
    """Parse the stream printed by ``npu-smi info watch -i ID -d SECONDS``.

    Columns are named by the header line (``NpuID(Idx)  Pwr(W)  Temp(C)  AI Core(%) ...``); the header may
    repeat in a long stream and is then skipped, but it must name the same columns. A stream stopped by a
    kill can end in the middle of a row: a row with too few values is ignored only when it is the very last
    line and no newline follows it (it was being written); anywhere else it is an error.

    Parameters
    ----------
    text : str
        Standard output of the command, as captured.

    Returns
    -------
    list of WatchRow
        The complete data rows in order; empty when only the header was printed.

    Raises
    ------
    NpuSmiError
        When there is no header, a data row comes before it, a row has the wrong number of values (other
        than the cut-off last line), a repeated header differs, or a value is neither a number nor ``NA``.
    """
    stream = WatchStream()
    rows = []
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        cut_off = i == len(lines) - 1 and not line.endswith("\n")
        if cut_off and stream.is_short_row(line):
            break
        row = stream.feed(line)
        if row is not None:
            rows.append(row)
    if stream.columns is None:
        raise NpuSmiError(f"expected the npu-smi watch header (NpuID(Idx) Pwr(W) ...), found {text.strip()[:80]!r}")
    return rows
