"""Read Huawei Ascend power and device state from ``npu-smi``: text parsers and a runner, standard library only.

Ascend devices have no energy counter, so energy is integrated from sampled power. This module parses the
three outputs that carry power (``npu-smi info``, ``npu-smi info -t power|common -i ID`` and
``npu-smi info watch -i ID -d SECONDS``) and runs the tool without a shell. Anything it cannot read raises
:class:`NpuSmiError` with one sentence saying what was expected and what was found; nothing unreadable is
ever turned into 0 or another made-up number.

A power reading's ``kind`` says what the number is: ``"real-time"`` is a measurement, ``"rated"`` is the
chip's rating (310 chips print only that) and must never be used as a measurement, and ``"unavailable"``
means the tool printed ``NA`` (``watts`` is then ``None``). Its ``covers`` says what the number is of: ``"chip"``
(a chip's block), ``"card"`` (the card's MCU block, or "Power Dissipation(W)", the whole card's power in Huawei's
npu-smi manual) or ``"npu"`` (one value for the NPU id: the chip on a one-chip NPU, shared by all chips of a card).
"""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

NA_VALUES = frozenset({"NA", "N/A"})

# Power keys of ``-t power`` / ``-t common`` output, in order of preference within one block, and their kind.
# "Power Dissipation(W)" (printed by MCU blocks and older drivers) has no "Rated" in it and is the MCU's
# measurement of the board, so it counts as a real-time reading.
POWER_KEYS = {
    "NPU Real-time Power(W)": "real-time",
    "Power Dissipation(W)": "real-time",
    "Rated Power Dissipation(W)": "rated",
}

CARD_KEY = "Power Dissipation(W)"  # "整卡实时功率", the whole card's real-time power (npu-smi manual, -t power)
NPU_KEY = "NPU ID"
CHIP_KEYS = ("Chip ID", "Chip Name")

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_KEY_VALUE = re.compile(r"(?P<key>[^:]*?\S)\s*:\s*(?P<value>.*?)\s*")
_WATCH_COLUMN = re.compile(r"[^\s()][^()]*\([^()]*\)")


class NpuSmiError(Exception):
    """npu-smi could not be run, or its output could not be read."""


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


@dataclass(frozen=True)
class PowerReading:
    """One power value: ``kind`` is "real-time" (a measurement), "rated" (never a measurement) or "unavailable";
    ``covers`` is "chip", "card" or "npu" (see the module's docstring)."""

    npu_id: int
    chip_id: int | None
    watts: float | None
    kind: str
    key: str
    covers: str


@dataclass(frozen=True)
class WatchRow:
    """One row of ``npu-smi info watch``; ``fields`` holds every column by header name, as printed."""

    npu_id: int
    power_w: float | None
    temp_c: float | None
    aicore_pct: float | None
    fields: dict[str, str]


# ---------------------------------------------------------------------------------------------- values


def _number(value: str, what: str, line: str) -> float | None:
    """``value`` as a float, ``None`` for NA; anything else raises naming ``what`` and the line."""
    if value in NA_VALUES:
        return None
    if not _NUMBER.fullmatch(value):
        raise NpuSmiError(f"expected a number or NA for {what}, found {value!r} in {line.strip()!r}")
    return float(value)


def _integer(value: str, what: str, line: str) -> int:
    """``value`` as a non-negative integer; anything else (NA included) raises."""
    if not value.isdigit():
        raise NpuSmiError(f"expected an integer {what}, found {value!r} in {line.strip()!r}")
    return int(value)


def _ratio(value: str | None, what: str, line: str) -> tuple[float | None, float | None]:
    """A ``"used / total"`` cell as two numbers (each ``None`` for NA); a missing column gives ``(None, None)``."""
    if value is None:
        return None, None
    used, slash, total = value.partition("/")
    if not slash:
        raise NpuSmiError(f"expected 'used / total' for {what}, found {value!r} in {line.strip()!r}")
    return _number(used.strip(), what, line), _number(total.strip(), what, line)


# ---------------------------------------------------------------------------------------------- npu-smi info


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
# Plausible ranges of the info table's values; a value outside is that row's problem, never a reading.
PLAUSIBLE = {
    "Power(W)": (0.0, 2000.0),
    "Temp(C)": (-40.0, 150.0),
    "AICore(%)": (0.0, 100.0),
    "NPU Util(%)": (0.0, 100.0),
}


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
    npu_id = _integer(_pick(npu, NPU_COLUMNS) or "", "NPU id", group[0])
    if len(group) < 2:
        raise NpuSmiError(f"expected a second (chip) row for NPU {npu_id}, found none after {group[0]!r}")
    return [_npu_info(npu, group[0], _row_fields(header2, row), row, i) for i, row in enumerate(group[1:])]


def _value(fields: dict[str, str], name: str, line: str, problems: list[str]) -> float | None:
    """A number of a row, None for NA; an unreadable or implausible one is None and noted in ``problems``."""
    if name not in fields:
        return None
    try:
        value = _number(fields[name], name, line)
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
        return _ratio(fields.get(name), name, line)
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
        npu_id=_integer(_pick(npu, NPU_COLUMNS), "NPU id", npu_line),
        chip_id=position if chip_text is None else _integer(chip_text, "chip id", chip_line),
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


# ---------------------------------------------------------------------------------------------- -t power / common


def _key_value(line: str) -> tuple[str, str]:
    """Split one ``key : value`` line; the value may itself contain colons (bus ids)."""
    match = _KEY_VALUE.fullmatch(line.strip())
    if match is None:
        raise NpuSmiError(f"expected a 'key : value' line, found {line.strip()!r}")
    return match["key"], match["value"]


def _opens_block(block: dict[str, str] | None, opened_by: str | None, key: str) -> bool:
    """Whether a line with ``key`` starts a new block after ``block`` (``None`` after a blank line), which
    was opened by a line with the key ``opened_by``."""
    if block is None or key == NPU_KEY:
        return True
    return key in CHIP_KEYS and (opened_by == NPU_KEY or any(chip_key in block for chip_key in CHIP_KEYS))


def parse_key_values(text: str) -> list[dict[str, str]]:
    """Split ``npu-smi info -t power|common|...`` output into blocks of ``key -> value``.

    Block structure: npu-smi separates blocks with blank lines, and so does this function. In addition a
    line whose key is ``NPU ID`` always opens a new (NPU) block, and a ``Chip ID`` or ``Chip Name`` line
    opens a new (chip) block when the current block is an NPU block or already has one of those two keys,
    so ``-t power|common`` output whose blank lines were lost splits the same way. Every block that does
    not start with ``NPU ID`` gets an ``NPU ID`` entry first, copied from the NPU block above it (if any),
    so each block names its NPU.
    Keys and values are the exact text printed, stripped of surrounding white space.

    For ``info_t_common_910b_and_310p.txt`` this gives ``[{NPU ID: 0, Chip Count: 1}, {NPU ID: 0,
    Chip ID: 0, ..., NPU Real-time Power(W): 69.0}, {NPU ID: 1, Chip Count: 1}, {NPU ID: 1, Chip ID: 0, ...},
    {NPU ID: 1, Chip Name: mcu, Temperature(C): 41, NPU Real-time Power(W): 13.4}]`` (all values strings).

    Parameters
    ----------
    text : str
        The standard output of one or more ``npu-smi info -t ...`` commands.

    Returns
    -------
    list of dict
        The blocks in the order printed.

    Raises
    ------
    NpuSmiError
        When the text is empty, a non-blank line is not ``key : value``, or a key repeats inside a block.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    opened_by: str | None = None
    npu_id: str | None = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        key, value = _key_value(line)
        if _opens_block(current, opened_by, key):
            current = {} if key == NPU_KEY or npu_id is None else {NPU_KEY: npu_id}
            opened_by = key
            blocks.append(current)
        if key == NPU_KEY:
            npu_id = value
        if key in current:
            raise NpuSmiError(f"expected each key once per block, found {key!r} again in {line.strip()!r}")
        current[key] = value
    if not blocks:
        raise NpuSmiError("expected 'key : value' lines from npu-smi, found no output")
    return blocks


def _power_key(block: dict[str, str]) -> str | None:
    """The preferred power key present in ``block``, if any."""
    return next((key for key in POWER_KEYS if key in block), None)


def _block_npu(block: dict[str, str], npu_id: int | None) -> int:
    """The NPU a block belongs to: its ``NPU ID``, or ``npu_id`` when the block names none."""
    if NPU_KEY in block:
        return _integer(block[NPU_KEY], "NPU ID", f"{NPU_KEY} : {block[NPU_KEY]}")
    if npu_id is None:
        raise NpuSmiError(f"expected an 'NPU ID' line before the power value, found a block without one: {block}")
    return npu_id


def _reading(block: dict[str, str], key: str, npu: int) -> PowerReading:
    """The power reading of one block, by its power key."""
    line = f"{key} : {block[key]}"
    watts = _number(block[key], key, line)
    low, high = PLAUSIBLE["Power(W)"]
    if watts is not None and not low <= watts <= high:
        raise NpuSmiError(f"{key} {block[key]} W is outside the plausible {low:g} to {high:g} W: {line!r}")
    chip = block.get("Chip ID")
    if key == CARD_KEY or block.get("Chip Name", "").lower() == "mcu":
        covers = "card"  # the manual's "Power Dissipation(W)" is the whole card's; an MCU block is the card's
    else:
        covers = "npu" if chip is None else "chip"
    return PowerReading(
        npu_id=npu,
        chip_id=None if chip is None else _integer(chip, "Chip ID", f"Chip ID : {chip}"),
        watts=watts,
        kind="unavailable" if watts is None else POWER_KEYS[key],
        key=key,
        covers=covers,
    )


def parse_power(text: str, npu_id: int | None = None) -> list[PowerReading]:
    """Power readings from ``npu-smi info -t power -i ID`` or ``-t common -i ID`` output.

    Each block of :func:`parse_key_values` that holds a power key gives one reading. Keys and kinds:
    ``NPU Real-time Power(W)`` is "real-time"; ``Power Dissipation(W)`` (MCU blocks, older drivers) is
    also "real-time", being the MCU's measured value and not labelled as a rating; ``Rated Power
    Dissipation(W)`` is "rated", a rating that must never be used as a measurement. If a block holds several
    of them, the first in that order wins. A value of ``NA`` gives ``watts=None`` and kind "unavailable".
    Chip blocks give their ``Chip ID``; NPU-level and named (``mcu``) blocks give ``chip_id=None``.

    Parameters
    ----------
    text : str
        The standard output of the command.
    npu_id : int, optional
        The NPU the command was run for (``-i``). Blocks naming another NPU are left out, and blocks that
        name no NPU are taken to be this one.

    Returns
    -------
    list of PowerReading
        One reading per block with a power key, in the order printed; never empty.

    Raises
    ------
    NpuSmiError
        When no block (for ``npu_id``) has a power key, a power value is neither a number nor ``NA``, or a
        block names no NPU and ``npu_id`` is not given; and for anything :func:`parse_key_values` refuses.
    """
    blocks = parse_key_values(text)
    readings, others = [], set()
    for block in blocks:
        key = _power_key(block)
        if key is None:
            continue
        npu = _block_npu(block, npu_id)
        if npu_id is None or npu == npu_id:
            readings.append(_reading(block, key, npu))
        else:
            others.add(npu)
    if not readings and others:
        named = ", ".join(map(str, sorted(others)))
        raise NpuSmiError(f"asked for the power of NPU {npu_id}, npu-smi answered for NPU {named} only")
    if not readings:
        keys = sorted({key for block in blocks for key in block})
        where = "" if npu_id is None else f" for NPU {npu_id}"
        raise NpuSmiError(f"expected a power key ({', '.join(POWER_KEYS)}){where}, found only the keys {keys}")
    return readings


# ---------------------------------------------------------------------------------------------- info watch


class _WatchStream:
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
            name: _number(fields[name], name, line) if name in fields else None for name in ("Temp(C)", "AI Core(%)")
        }
        return WatchRow(
            npu_id=_integer(fields["NpuID(Idx)"], "NpuID(Idx)", line),
            power_w=_number(fields["Pwr(W)"], "Pwr(W)", line),
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
    stream = _WatchStream()
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


# ---------------------------------------------------------------------------------------------- runner


def _first_line(*texts: str) -> str:
    """The first non-blank line of the first text that has one."""
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return "no message"


def _seconds(delay_s: float) -> str:
    """``-d`` argument: whole seconds print as integers (as the real tool expects), others as decimals."""
    return str(int(delay_s)) if float(delay_s).is_integer() else repr(float(delay_s))


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
            message = _first_line(done.stderr, done.stdout)
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
        deadline = time.monotonic() + self.timeout_s + delay_s * count
        with tempfile.TemporaryFile(mode="w+") as stderr:
            proc = self._popen(args, stderr)
            try:
                rows = self._read_rows(proc, args, count, deadline)
            finally:
                _stop(proc)
                proc.stdout.close()
            self._check_ended(proc, args, rows, count, stderr)
        return rows

    def _popen(self, args: tuple[str, ...], stderr) -> subprocess.Popen:
        """Start ``npu-smi ARGS`` with stdout piped as text."""
        try:
            return subprocess.Popen(
                [self._resolve(), *args], stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            raise NpuSmiError(f"'{self._describe(args)}' could not be started: {exc}") from exc

    def _read_rows(self, proc: subprocess.Popen, args: tuple[str, ...], count: int, deadline: float) -> list[WatchRow]:
        """Read rows until ``count`` arrive, the stream ends, or ``deadline`` passes (an error)."""
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        stream, rows = _WatchStream(), []
        while len(rows) < count:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise NpuSmiError(
                    f"'{self._describe(args)}' gave {len(rows)} of {count} rows before the time limit"
                ) from None
            if line is None:
                _wait_briefly(proc)
                break
            if not line.endswith("\n") and stream.is_short_row(line):
                continue
            row = stream.feed(line)
            if row is not None:
                rows.append(row)
        return rows

    def _check_ended(self, proc: subprocess.Popen, args: tuple[str, ...], rows: list, count: int, stderr) -> None:
        """Raise when the stream ended early with an error, or without any data row."""
        if len(rows) == count:
            return
        command = self._describe(args)
        if proc.returncode != 0:
            stderr.seek(0)
            raise NpuSmiError(f"'{command}' exited with code {proc.returncode}: {_first_line(stderr.read())}")
        if not rows:
            raise NpuSmiError(f"'{command}' ended without printing a data row")
