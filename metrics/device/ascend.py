"""Ascend NPUs through npu-smi: each chip (NPU id, chip, logical device id), its memory and how its real-time
power is read; npu-smi has no energy counter, so the window (metrics.power.ascend) samples that reader and integrates.
"NA" is no reading; a rated power (310 chips) is a rating, never a measurement.

Where a reading comes from, in order: ``npu-smi info -t power -i ID``'s real-time key; where that offers only a
rating, another chip's value or NA, the live Power(W) column of the ``npu-smi info`` table for that NPU. Both are
measurements, and the source is named. What the watts cover (:func:`npu_scope`) is the chip where the reading is
the chip's own (its block in ``-t power``, or an NPU with one chip: npu-smi's manual calls both the chip's power),
and the card where it is the card's (its MCU) or one value for an NPU with several chips (a 310 card's four chips,
a 310P Duo's two): such a reading is labelled card-wide, never divided among the chips.

``ascend:i`` is a logical device, as the frameworks number them: ASCEND_RT_VISIBLE_DEVICES (when set) maps it to
the machine's logical id, and the info table's Device column (multi-chip cards) maps that to an NPU id and chip;
where the table has no Device column, logical ids follow the table's order, one per chip row.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

from metrics.device.npu_smi.info import NpuInfo
from metrics.device.npu_smi.runner import NpuSmi
from metrics.device.npu_smi.values import NpuSmiError
from metrics.device.reading import CARD, CHIP, MEASURED, PowerUnavailable, Scope

POWER_SOURCE = "npu-smi info -t power"
TABLE_SOURCE = "npu-smi info (Power(W) column)"


def visible_logical_id(logical: int, environ=os.environ) -> int:
    """The machine's logical device id of the framework's device ``logical`` (ASCEND_RT_VISIBLE_DEVICES)."""
    visible = environ.get("ASCEND_RT_VISIBLE_DEVICES")
    if not visible:
        return logical
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if logical >= len(entries) or not entries[logical].isdigit():
        raise PowerUnavailable(f"Ascend device {logical} is not among ASCEND_RT_VISIBLE_DEVICES={visible!r}")
    return int(entries[logical])


def framework_index(logical: int, environ=os.environ) -> int | None:
    """The framework's index (``ascend:i``) of the machine's logical device ``logical``, the inverse of
    :func:`visible_logical_id`: its position in ASCEND_RT_VISIBLE_DEVICES where that is set (None when it is not
    visible), else the logical id itself."""
    visible = [e.strip() for e in environ.get("ASCEND_RT_VISIBLE_DEVICES", "").split(",") if e.strip()]
    if not visible:
        return logical
    return visible.index(str(logical)) if str(logical) in visible else None


def logical_ids(infos: list[NpuInfo]) -> list[int]:
    """The logical device id of each chip row: its Device column, else its position in the table."""
    return [i.device_id if i.device_id is not None else pos for pos, i in enumerate(infos)]


def locate(logical: int, infos: list[NpuInfo]) -> NpuInfo:
    """The chip row of the machine's logical device ``logical``."""
    for info, ident in zip(infos, logical_ids(infos), strict=True):
        if ident == logical:
            return info
    known = ", ".join(map(str, logical_ids(infos))) or "none"
    raise PowerUnavailable(f"npu-smi lists no logical device {logical} (it lists {known})")


def _table_power(infos: list[NpuInfo], npu_id: int) -> float | None:
    """The info table's Power(W) of ``npu_id``; None where that row has no reading (NA, implausible)."""
    rows = [i for i in infos if i.npu_id == npu_id]
    if not rows:
        raise PowerUnavailable(f"the npu-smi info table no longer lists NPU {npu_id}")
    return rows[0].power_w


def _table_reader(smi: NpuSmi, npu_id: int):
    """A reader of :func:`_table_power` from a fresh ``npu-smi info`` at each sample."""

    def read() -> float | None:
        try:
            return _table_power(smi.info(), npu_id)
        except NpuSmiError as exc:
            raise PowerUnavailable(str(exc)) from None

    return read


class _NoLiveValue(PowerUnavailable):
    """``-t power`` offers a rating, or another chip's value, and no live value of this chip or its card."""


class NpuPower(NamedTuple):
    """How an NPU's power is read: the reader (watts, or None for a sample without a value), its source, the value
    read to choose it, and what that value covers ("chip", "card" or "npu", as npu_smi.PowerReading.covers)."""

    read: Callable[[], float | None]
    source: str
    first_w: float | None
    covers: str


def npu_power_reader(
    smi: NpuSmi, npu_id: int, infos: list[NpuInfo] | None = None, chip_id: int | None = None
) -> NpuPower:
    """How to read the power of NPU ``npu_id`` (chip ``chip_id``; from ``infos``, the info table just read, when
    given). ``-t power``'s real-time value first; where it offers only a rating, another chip's value or NA, the
    info table's live Power(W) of the NPU when that has a value (NA in both stays no reading). A rating is never a
    reading: PowerUnavailable when nothing else is there, as when npu-smi cannot be run."""

    def reading():
        try:
            found = smi.power(npu_id, chip_id)
        except NpuSmiError as exc:
            raise PowerUnavailable(str(exc)) from None
        if found.kind == "rated":
            raise _NoLiveValue(f"npu-smi -t power offers only a rated power ({found.key}) for NPU {npu_id}")
        if found.covers == "chip" and chip_id is not None and found.chip_id != chip_id:
            raise _NoLiveValue(f"npu-smi -t power gives chip {found.chip_id}'s power, not chip {chip_id}'s")
        return found

    def from_power() -> float | None:
        return reading().watts

    no_live = None
    try:
        first = reading()
        if first.watts is not None:
            return NpuPower(from_power, POWER_SOURCE, first.watts, first.covers)
    except _NoLiveValue as exc:
        no_live = str(exc)
    table = _table_reader(smi, npu_id)
    try:
        value = table() if infos is None else _table_power(infos, npu_id)
    except PowerUnavailable as exc:
        if no_live is None:  # NA from -t power and no table to turn to: NA it is
            return NpuPower(from_power, POWER_SOURCE, None, first.covers)
        raise PowerUnavailable(f"{no_live}, and {exc}: no live reading of this chip is left") from None
    if value is None and no_live is None:
        return NpuPower(from_power, POWER_SOURCE, None, first.covers)
    return NpuPower(table, TABLE_SOURCE, value, "npu")


def npu_scope(npu_id: int, chip_id: int | None, covers: str, chips: int | None) -> Scope:
    """What a reading of NPU ``npu_id`` covers (``covers`` as npu_smi.PowerReading.covers; ``chips``: how many chips
    the info table lists on that NPU, None where it could not be read), charged to the run of chip ``chip_id``."""
    if covers == "chip":
        which = f"chip {chip_id}" if chip_id is not None else "one chip (which is unknown: npu-smi info is unreadable)"
        return Scope(CHIP, f"{which} of NPU {npu_id}: the chip's own power")
    if chips is not None and chips > 1:
        return Scope(CARD, f"card-wide: {chips} chips share this reading (NPU {npu_id})")
    if covers == "card":
        return Scope(CARD, f"the whole card of NPU {npu_id}, as its MCU measures it")
    if chips == 1:
        return Scope(CHIP, f"NPU {npu_id}, whose one chip this is")
    return Scope(CARD, f"NPU {npu_id} as a whole: how many chips share it is unknown (npu-smi info is unreadable)")


def list_npus(smi: NpuSmi | None = None) -> list[dict]:
    """Every chip npu-smi lists (NPU id, chip id, logical device id), with memory and the live power charged to
    it (and what that covers) or the reason there is none. A row whose values cannot be read affects that row only."""
    smi = smi or NpuSmi()
    infos = smi.info()
    out = []
    for info, logical in zip(infos, logical_ids(infos), strict=True):
        used, total = info.memory_mb
        entry = {
            "kind": "ascend",
            "npu_id": info.npu_id,
            "chip_id": info.chip_id,
            "logical_id": logical,
            "name": info.name,
            "health": info.health,
            "memory_gb": total / 1024 if total else None,
            "memory_used_gb": used / 1024 if used is not None and total else None,
        }
        if info.problems:
            entry["row_problems"] = list(info.problems)
        entry.update(_power_entry(smi, info, infos))
        out.append(entry)
    return out


def _power_entry(smi: NpuSmi, info: NpuInfo, infos: list[NpuInfo]) -> dict:
    try:
        power = npu_power_reader(smi, info.npu_id, infos, info.chip_id)
    except PowerUnavailable as exc:
        return {"power_w": None, "power_provenance": "unavailable", "power_reason": str(exc)}
    if power.first_w is None:
        why = "; ".join(p for p in info.problems if "Power(W)" in p) or "npu-smi reports NA"
        return {"power_w": None, "power_provenance": "unavailable", "power_reason": why, "power_source": power.source}
    scope = npu_scope(info.npu_id, info.chip_id, power.covers, sum(1 for i in infos if i.npu_id == info.npu_id))
    return {
        "power_w": power.first_w,
        "power_provenance": MEASURED,
        "power_source": power.source,
        "power_scope": scope.kind,
        "power_scope_label": scope.label,
    }
