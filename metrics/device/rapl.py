"""RAPL: the CPU packages' cumulative energy counters under Linux powercap (Intel and recent AMD), with their
wrap-around range; PowerUnavailable saying why where there are none or they cannot be read."""

from __future__ import annotations

import re
from pathlib import Path

from metrics.device.reading import PowerUnavailable

POWERCAP = Path("/sys/class/powercap")
_PACKAGE = re.compile(r"^intel-rapl:\d+$")  # packages only; sub-zones (core, uncore, dram) overlap them


class RaplDomain:
    """One package's cumulative energy counter (µJ) with its wrap-around range."""

    def __init__(self, path: Path):
        self.path = path
        self.name = _read_text(path / "name") if (path / "name").exists() else path.name
        self.max_uj = int(_read_text(path / "max_energy_range_uj"))

    def read_uj(self) -> int:
        return int(_read_text(self.path / "energy_uj"))


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except PermissionError:
        raise PowerUnavailable(
            f"RAPL counter {path} is not readable (permission denied; root-only since CVE-2020-8694)"
        ) from None
    except OSError as exc:
        raise PowerUnavailable(f"RAPL counter {path} cannot be read ({exc.strerror})") from None


def rapl_domains(root: Path = POWERCAP) -> list[RaplDomain]:
    """The package domains under ``root``; raises PowerUnavailable with the reason when there are none
    or they cannot be read."""
    if not root.is_dir():
        raise PowerUnavailable(f"no RAPL interface: {root} does not exist on this machine")
    paths = sorted(p for p in root.iterdir() if _PACKAGE.match(p.name))
    if not paths:
        raise PowerUnavailable(f"no RAPL package domains under {root}")
    domains = [RaplDomain(p) for p in paths]
    for d in domains:
        d.read_uj()  # fail now, not mid-run, when the counter is unreadable
    return domains


def counter_delta_uj(before: int, after: int, max_uj: int) -> int:
    """Counter difference with one wrap-around at ``max_uj`` handled."""
    return after - before if after >= before else after + max_uj - before
