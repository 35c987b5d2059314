"""What a device reader says about a reading: its provenance, what it covers (:class:`Scope`), and
:class:`PowerUnavailable` where nothing can be read. The vendor readers beside this module and the power windows
above them (metrics.power) share this vocabulary; nothing here reads a device."""

from __future__ import annotations

from dataclasses import dataclass

MEASURED, ESTIMATED, UNAVAILABLE = "measured", "estimated", "unavailable"

# What a power reading covers (record field ``power_scope``): one NPU chip's own power; a whole card or board (NVML's
# board power, an npu-smi reading of a card, shared by all of its chips); the CPU package(s) of RAPL; a model
# (TDP x utilisation); nothing (an unavailable reading).
CHIP, CARD, CPU_PACKAGE, MODEL_ESTIMATE, NO_SCOPE = "chip", "card", "cpu-package", "model-estimate", "none"
SCOPES = (CHIP, CARD, CPU_PACKAGE, MODEL_ESTIMATE, NO_SCOPE)


class PowerUnavailable(Exception):
    """No power or energy can be read; the message says why, in one sentence."""


@dataclass(frozen=True)
class Scope:
    """What a reading covers: ``kind`` one of SCOPES, ``label`` the same in words for a reader of the record
    ("card-wide: 4 chips share this reading")."""

    kind: str
    label: str

    def __post_init__(self) -> None:
        if self.kind not in SCOPES:
            raise ValueError(f"unknown power scope {self.kind!r}")
        if not self.label:
            raise ValueError("a power scope needs a label")
