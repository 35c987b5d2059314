"""Ascend NPU power through npu-smi: no energy counter exists, so real-time power is sampled and
integrated. "NA" is no reading; a rated power (310 chips) is a rating, never a measurement.

Where a reading comes from, in order: ``npu-smi info -t power -i ID``'s real-time key; where that offers only a
rating or reads NA, the live Power(W) column of the ``npu-smi info`` table for that NPU. Both are
measurements of the NPU (a card with several chips has one reading for all of them), and the source is named.

``ascend:i`` is a logical device, as the frameworks number them: ASCEND_RT_VISIBLE_DEVICES (when set) maps it to
the machine's logical id, and the info table's Device column (multi-chip cards) maps that to an NPU id and chip;
where the table has no Device column, logical ids follow the table's order, one per chip row.
"""

from __future__ import annotations

import os
import time

from metrics.power.npu_smi import NpuInfo, NpuSmi, NpuSmiError
from metrics.power.window import MEASURED, PowerResult, PowerUnavailable, SampledCollector

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


class _RatingOnly(PowerUnavailable):
    """``-t power`` offers a rating and no live value."""


def npu_power_reader(smi: NpuSmi, npu_id: int, infos: list[NpuInfo] | None = None):
    """(reader, source, first value): a reader returning watts, or None for a sample without a value ("NA"), and
    the value it read to choose its source (from ``infos``, the info table just read, when given). ``-t power``'s
    real-time value first; where it offers only a rating or reads NA, the info table's live Power(W) of the NPU
    when that has a value (NA in both stays no reading). A rating is never a reading: PowerUnavailable when
    nothing else is there, as when npu-smi cannot be run."""

    def from_power() -> float | None:
        try:
            reading = smi.power(npu_id)
        except NpuSmiError as exc:
            raise PowerUnavailable(str(exc)) from None
        if reading.kind == "rated":
            raise _RatingOnly(f"npu-smi -t power offers only a rated power ({reading.key}) for NPU {npu_id}")
        return reading.watts

    rating_only = None
    try:
        first = from_power()
        if first is not None:
            return from_power, POWER_SOURCE, first
    except _RatingOnly as exc:
        rating_only = str(exc)
    table = _table_reader(smi, npu_id)
    try:
        value = table() if infos is None else _table_power(infos, npu_id)
    except PowerUnavailable as exc:
        if rating_only is None:  # NA from -t power and no table to turn to: NA it is
            return from_power, POWER_SOURCE, None
        raise PowerUnavailable(f"{rating_only}, and {exc}; a rating is not a measurement") from None
    if value is None and rating_only is None:
        return from_power, POWER_SOURCE, None
    return table, TABLE_SOURCE, value


class NpuSmiCollector(SampledCollector):
    """Sampled npu-smi real-time power, integrated into energy (provenance: measured)."""

    def __init__(
        self,
        logical_index: int,
        rate_hz: float = 2.0,
        smi: NpuSmi | None = None,
        clock=time.monotonic,
        environ=os.environ,
    ):
        self.smi = smi or NpuSmi()
        self.logical_id = visible_logical_id(logical_index, environ)
        try:
            info = locate(self.logical_id, self.smi.info())
            self.npu_id, self.chip_id = info.npu_id, info.chip_id
        except NpuSmiError:  # a table this parser cannot read: the logical id is taken as the NPU id, as before
            self.npu_id, self.chip_id = self.logical_id, None
        read, self.power_source, _ = npu_power_reader(self.smi, self.npu_id)  # fails before the run, not after
        super().__init__(read, "npu-smi-sampled", MEASURED, rate_hz, 2, clock)

    def stop(self) -> PowerResult:
        result = super().stop()
        result.extra.update(power_npu_id=self.npu_id, power_npu_chip=self.chip_id, power_npu_source=self.power_source)
        return result


def list_npus(smi: NpuSmi | None = None) -> list[dict]:
    """Every chip npu-smi lists (NPU id, chip id, logical device id), with memory and the NPU's live power or
    the reason there is none. A row whose values cannot be read affects that row only."""
    smi = smi or NpuSmi()
    infos = smi.info()
    power: dict[int, dict] = {}
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
        if info.npu_id not in power:
            power[info.npu_id] = _power_entry(smi, info, infos)
        entry.update(power[info.npu_id])
        out.append(entry)
    return out


def _power_entry(smi: NpuSmi, info: NpuInfo, infos: list[NpuInfo]) -> dict:
    try:
        _, source, watts = npu_power_reader(smi, info.npu_id, infos)
    except PowerUnavailable as exc:
        return {"power_w": None, "power_provenance": "unavailable", "power_reason": str(exc)}
    if watts is None:
        why = "; ".join(p for p in info.problems if "Power(W)" in p) or "npu-smi reports NA"
        return {"power_w": None, "power_provenance": "unavailable", "power_reason": why, "power_source": source}
    return {"power_w": watts, "power_provenance": MEASURED, "power_source": source}
