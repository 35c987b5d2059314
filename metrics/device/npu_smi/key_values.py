"""``npu-smi info -t power|common -i ID``: blocks of ``key : value`` lines, and the power readings in them
(standard library only).

A power reading's ``kind`` says what the number is: ``"real-time"`` is a measurement, ``"rated"`` is the
chip's rating (310 chips print only that) and must never be used as a measurement, and ``"unavailable"``
means the tool printed ``NA`` (``watts`` is then ``None``). Its ``covers`` says what the number is of: ``"chip"``
(a chip's block), ``"card"`` (the card's MCU block, or "Power Dissipation(W)", the whole card's power in Huawei's
npu-smi manual) or ``"npu"`` (one value for the NPU id: the chip on a one-chip NPU, shared by all chips of a card).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metrics.device.npu_smi.values import PLAUSIBLE, NpuSmiError, integer, number

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

_KEY_VALUE = re.compile(r"(?P<key>[^:]*?\S)\s*:\s*(?P<value>.*?)\s*")


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
        return integer(block[NPU_KEY], "NPU ID", f"{NPU_KEY} : {block[NPU_KEY]}")
    if npu_id is None:
        raise NpuSmiError(f"expected an 'NPU ID' line before the power value, found a block without one: {block}")
    return npu_id


def _reading(block: dict[str, str], key: str, npu: int) -> PowerReading:
    """The power reading of one block, by its power key."""
    line = f"{key} : {block[key]}"
    watts = number(block[key], key, line)
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
        chip_id=None if chip is None else integer(chip, "Chip ID", f"Chip ID : {chip}"),
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
