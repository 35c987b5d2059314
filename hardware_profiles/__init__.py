"""Device profiles (peak FLOP/s, memory, bandwidth, TDP, power source, and optionally a price per hour), one YAML
file per device, and MFU against them. Figures are datasheet leads; each file names its sources, and a price its own
(``price_source``: where and when it was read)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRECISION_DTYPE = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "bf16": "bf16"}


@dataclass(frozen=True)
class HardwareProfile:
    id: str
    vendor: str
    kind: str  # cuda, ascend or cpu
    description: str
    match: tuple[str, ...]
    peak_tflops: dict[str, float] = field(default_factory=dict)
    memory_gb: float | None = None
    bandwidth_tb_s: float | None = None
    tdp_w: float | None = None
    power_source: str = ""
    sources: str = ""
    notes: str = ""
    tdp_w_per_logical_core_assumed: float | None = None
    price_usd_per_hour: float | None = None  # what one device costs per hour (a rental price), for the report's cost
    price_source: str = ""

    def peak_flops(self, precision: str) -> float | None:
        value = self.peak_tflops.get(PRECISION_DTYPE.get(precision, precision))
        return value * 1e12 if value else None


def load_profile(path: Path) -> HardwareProfile:
    """One profile file, checked: a mapping with an id, known keys only, a price only with its source."""
    import yaml

    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "id" not in data:
        raise ValueError(f"hardware profile {path} is not a mapping with an 'id'")
    unknown = set(data) - set(HardwareProfile.__dataclass_fields__)
    if unknown:
        raise ValueError(f"hardware profile {path} has unknown keys: {', '.join(sorted(unknown))}")
    data["match"] = tuple(data.get("match") or ())
    data["peak_tflops"] = {k: float(v) for k, v in (data.get("peak_tflops") or {}).items()}
    price = data.get("price_usd_per_hour")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not (math.isfinite(price) and price > 0):
            raise ValueError(f"hardware profile {path}: price_usd_per_hour must be a positive number, not {price!r}")
        if not str(data.get("price_source") or "").strip():
            raise ValueError(f"hardware profile {path}: a price_usd_per_hour needs its price_source")
        data["price_usd_per_hour"] = float(price)
    return HardwareProfile(**data)


@lru_cache(maxsize=1)
def load_profiles() -> dict[str, HardwareProfile]:
    profiles = [load_profile(p) for p in sorted(HERE.glob("*.yaml"))]
    return {p.id: p for p in profiles}


def match_profile(kind: str, name: str) -> HardwareProfile | None:
    """The profile of ``kind`` whose match strings occur in the device ``name`` (longest match wins);
    None when no specific profile fits (the generic CPU profile matches any CPU)."""
    best, best_len = None, -1
    for p in load_profiles().values():
        if p.kind != kind:
            continue
        for pattern in p.match:
            if pattern.lower() in name.lower() and len(pattern) > best_len:
                best, best_len = p, len(pattern)
    return best


def mfu(achieved_flops_per_s: float, profile: HardwareProfile | None, precision: str) -> float | None:
    """Model FLOPs utilisation: achieved over the profile's peak for ``precision``; None without a peak."""
    peak = profile.peak_flops(precision) if profile else None
    return achieved_flops_per_s / peak if peak else None


class ProfileError(ValueError):
    """A hardware setting a user gave (an environment variable) that cannot be used; one sentence naming it."""


def cpu_tdp_override(environ=os.environ) -> float | None:
    """PAIRBENCH_CPU_TDP_W as watts, None when unset; ProfileError naming the variable when it is not a finite
    power between 1 W and 10 kW."""
    text = environ.get("PAIRBENCH_CPU_TDP_W")
    if text is None or not text.strip():
        return None
    try:
        watts = float(text)
    except ValueError:
        watts = float("nan")
    if not 1.0 <= watts <= 10_000.0:  # NaN and Inf fail too
        raise ProfileError(f"PAIRBENCH_CPU_TDP_W is {text!r:.40}; set it to the CPU's TDP in watts (1 to 10000)")
    return watts


def cpu_tdp(profile: HardwareProfile, logical_cores: int, environ=os.environ) -> tuple[float | None, str]:
    """TDP for the CPU estimate and the sentence saying where it comes from."""
    watts = cpu_tdp_override(environ)
    if watts is not None:
        return watts, f"TDP {watts:g} W from PAIRBENCH_CPU_TDP_W"
    if profile.tdp_w:
        return profile.tdp_w, f"TDP {profile.tdp_w:g} W from profile {profile.id}"
    if profile.tdp_w_per_logical_core_assumed:
        watts = profile.tdp_w_per_logical_core_assumed * logical_cores
        return watts, (
            f"TDP {watts:g} W assumed ({profile.tdp_w_per_logical_core_assumed:g} W x "
            f"{logical_cores} logical cores, profile {profile.id})"
        )
    return None, f"profile {profile.id} gives no TDP"
