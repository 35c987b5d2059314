"""The device table of ``npu-smi info``, read by the column names of its two header rows (standard library only)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from metrics.device.npu_smi.values import PLAUSIBLE, NpuSmiError, integer, number, ratio


@dataclass(frozen=True)
class NpuInfo:
    """One chip row of the ``npu-smi info`` table, with the state of the NPU it belongs to."""

    npu_id: int
    chip_id: int
    name: str
    health: str
    power_w: float | None
    temp_c: float | None
    aicore_pct: float | None
    memory_used_mb: float | None
    memory_total_mb: float | None
    hbm_used_mb: float | None
    hbm_total_mb: float | None
    bus_id: str
    device_id: int | None = None  # the logical device id (the "Device" column), where the layout prints one
    problems: tuple[str, ...] = ()  # values of this row that could not be read or are implausible (then None)

    @property
    def memory_mb(self) -> tuple[float | None, float | None]:
        """(used, total) of the chip's own memory: HBM where the layout has it, else Memory-Usage (310, 310P)."""
        if self.hbm_total_mb:
            return self.hbm_used_mb, self.hbm_total_mb
        return self.memory_used_mb, self.memory_total_mb


def _cells(line: str) -> list[str]:
    """The cells of a ``| a | b |`` table row; a row without its closing bar was cut short."""
    body = line.strip()
    if len(body) < 2 or not body.endswith("|"):
        raise NpuSmiError(f"expected a table row ending in '|', found a row cut short: {body!r}")
    return body[1:-1].split("|")


def _cell_values(cell: str) -> list[str]:
    """Whitespace-separated values of a cell, keeping ``"used / total"`` pairs together as one value."""
    joined = re.sub(r"\s*/\s*", "/", cell.strip())
    return [token.replace("/", " / ") for token in joined.split()]


# A column name in a header cell: words ending in a unit in parentheses ("NPU Util(%)", "Power(W)"), or one word.
_COLUMN = re.compile(r"[A-Za-z][\w\-]*(?:\s+[A-Za-z][\w\-]*)*?\([^()]*\)|\S+")
NPU_COLUMNS = ("NPU", "NPU ID")
CHIP_COLUMNS = ("Chip", "Chip ID")
DEVICE_COLUMNS = ("Device", "Device ID")


def _column_names(cell: str) -> list[str]:
    return _COLUMN.findall(cell.strip())


def _row_fields(header: str, line: str) -> dict[str, str]:
    """Map each value of a data row to its header name, cell by cell. A header cell of plain words holding one
    value is one name ("NPU ID"); an empty header cell must have an empty value cell."""
    names, values = _cells(header), _cells(line)
    if len(names) != len(values):
        raise NpuSmiError(f"expected {len(names)} cells as in the header, found {len(values)}: {line.strip()!r}")
    fields: dict[str, str] = {}
    for name_cell, value_cell in zip(names, values, strict=True):
        cell_names, cell_values = _column_names(name_cell), _cell_values(value_cell)
        if len(cell_names) > 1 and len(cell_values) == 1 and not any("(" in n for n in cell_names):
            cell_names = [" ".join(cell_names)]
        if not cell_values and len(cell_names) <= 1:  # nothing printed under this column in this row
            continue
        if len(cell_names) != len(cell_values):
            expected = " ".join(cell_names)
            raise NpuSmiError(
                f"expected values for '{expected}' in a cell, found {value_cell.strip()!r}: {line.strip()!r}"
            )
        fields.update(zip(cell_names, cell_values, strict=True))
    return fields


def _header_names(header: str) -> list[str]:
    return [n for cell in _cells(header) for n in _column_names(cell)]


def _first_token(line: str) -> str:
    """The first word of a table row's first cell ('' when the cell is empty)."""
    words = _cells(line)[0].split()
    return words[0] if words else ""


def _is_npu_header(line: str) -> bool:
    return line.startswith("|") and "Health" in line and _first_token(line) == "NPU"


def _find_headers(lines: list[str]) -> int:
    """Index of the first header row (``NPU Name | Health | Power(W) ...`` or ``NPU ID | Name | Health | ...``);
    the second header row (the chips': ``Chip [Device] | Bus-Id | ...``, or without a Chip column) follows it."""
    for i, line in enumerate(lines):
        if _is_npu_header(line):
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if not following.startswith("|") or "Bus-Id" not in _header_names(following):
                raise NpuSmiError(f"expected the second header row '[Chip] | Bus-Id | ...', found {following!r}")
            return i
    first = next((line for line in lines if line), "")
    raise NpuSmiError(f"expected an npu-smi info table with a header row 'NPU Name | Health', found {first!r} first")


def _device_groups(lines: list[str], chip_column: bool) -> list[list[str]]:
    """Rows of the device table grouped between separators: one group per NPU, NPU row first.

    The table ends at a group whose first row does not start with a number (a process table's header, or
    "No running processes found"). Where the chip header has a Chip column, every further row of a group
    must start with the chip number.
    """
    groups: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line.startswith("+"):
            if current:
                groups.append(current)
            current = []
        elif line.startswith("|"):
            first = _first_token(line)
            if not current and not first.isdigit():
                break
            if current and chip_column and not first.isdigit():
                raise NpuSmiError(f"expected a chip row starting with a chip number, found {line!r}")
            current.append(line)
    if current:
        groups.append(current)
    return groups


def _pick(fields: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((fields[n] for n in names if n in fields), None)


def _npu_infos(group: list[str], header1: str, header2: str) -> list[NpuInfo]:
    """One :class:`NpuInfo` per chip row of a group (an NPU row followed by one or more chip rows)."""
    npu = _row_fields(header1, group[0])
    npu_id = integer(_pick(npu, NPU_COLUMNS) or "", "NPU id", group[0])
    if len(group) < 2:
        raise NpuSmiError(f"expected a second (chip) row for NPU {npu_id}, found none after {group[0]!r}")
    return [_npu_info(npu, group[0], _row_fields(header2, row), row, i) for i, row in enumerate(group[1:])]


def _value(fields: dict[str, str], name: str, line: str, problems: list[str]) -> float | None:
    """A number of a row, None for NA; an unreadable or implausible one is None and noted in ``problems``."""
    if name not in fields:
        return None
    try:
        value = number(fields[name], name, line)
    except NpuSmiError as exc:
        problems.append(str(exc))
        return None
    low, high = PLAUSIBLE.get(name, (0.0, float("inf")))
    if value is not None and not low <= value <= high:
        problems.append(f"{name} {fields[name]} is outside the plausible {low:g} to {high:g}, so it is no reading")
        return None
    return value


def _pair(fields: dict[str, str], name: str, line: str, problems: list[str]) -> tuple[float | None, float | None]:
    try:
        return ratio(fields.get(name), name, line)
    except NpuSmiError as exc:
        problems.append(str(exc))
        return None, None


def _npu_info(npu: dict[str, str], npu_line: str, chip: dict[str, str], chip_line: str, position: int) -> NpuInfo:
    """One :class:`NpuInfo` from the fields of an NPU row and of one of its chip rows (the ``position``-th)."""
    for name, fields, line in (("Power(W)", npu, npu_line), ("Bus-Id", chip, chip_line)):
        if name not in fields:
            raise NpuSmiError(f"expected a {name} column in the npu-smi info header, found none for {line!r}")
    problems: list[str] = []
    chip_text, device_text = _pick(chip, CHIP_COLUMNS), _pick(chip, DEVICE_COLUMNS)
    memory_used, memory_total = _pair(chip, "Memory-Usage(MB)", chip_line, problems)
    hbm_used, hbm_total = _pair(chip, "HBM-Usage(MB)", chip_line, problems)
    aicore = "AICore(%)" if "AICore(%)" in chip else "NPU Util(%)"
    return NpuInfo(
        npu_id=integer(_pick(npu, NPU_COLUMNS), "NPU id", npu_line),
        chip_id=position if chip_text is None else integer(chip_text, "chip id", chip_line),
        name=npu.get("Name", ""),
        health=npu.get("Health", ""),
        power_w=_value(npu, "Power(W)", npu_line, problems),
        temp_c=_value(npu, "Temp(C)", npu_line, problems),
        aicore_pct=_value(chip, aicore, chip_line, problems),
        memory_used_mb=memory_used,
        memory_total_mb=memory_total,
        hbm_used_mb=hbm_used,
        hbm_total_mb=hbm_total,
        bus_id=chip["Bus-Id"],
        device_id=None if device_text is None or not device_text.isdigit() else int(device_text),
        problems=tuple(problems),
    )


def parse_info(text: str) -> list[NpuInfo]:
    """Parse the device table printed by ``npu-smi info``.

    Columns are found by the names in the two header rows, not by character offsets or a fixed layout:
    ``NPU Name | Health | Power(W) Temp(C) ...`` over ``Chip [Device] | Bus-Id | AICore(%) Memory-Usage(MB)
    [HBM-Usage(MB)]`` (910, 910B, 310, 310P; a 310 card lists each of its chips with its logical Device id),
    or ``NPU ID | Name | Health | Power(W) ...`` over a chip row without a Chip column (newer drivers; its chips
    are numbered in row order). The version line above the table and any process table after it are ignored.
    A value that cannot be read or is implausible (a negative or absurd power) is ``None`` in its own row, with
    the reason in that row's ``problems``; the rest of the table is read as usual.

    Parameters
    ----------
    text : str
        The complete standard output of ``npu-smi info``.

    Returns
    -------
    list of NpuInfo
        One entry per chip row, in table order; an NPU with several chips (310P Duo, a four-chip 310 card)
        gives one entry per chip with the same ``npu_id``. ``NA`` values become ``None``; a missing HBM column
        gives ``None`` too.

    Raises
    ------
    NpuSmiError
        When there is no header, no NPU row, an NPU row without its chip row, a row cut short, or a row whose
        cells do not match the header's.
    """
    lines = [line.strip() for line in text.splitlines()]
    start = _find_headers(lines)
    header1, header2 = lines[start], lines[start + 1]
    chip_column = any(n in CHIP_COLUMNS for n in _header_names(header2))
    groups = _device_groups(lines[start + 2 :], chip_column)
    if not groups:
        raise NpuSmiError("expected at least one NPU row below the npu-smi info header, found none")
    return [info for group in groups for info in _npu_infos(group, header1, header2)]
