"""Cost and carbon of one forecast and of one training run to a target. Cost is the device's price per hour (its
hardware profile's optional ``price_usd_per_hour``, with ``price_source``) times the measured time; CO2 is the run's
energy times the grid's carbon intensity (``pairbench report --carbon-intensity``, else the environment variable
``PAIRBENCH_CARBON_INTENSITY``, gCO2/kWh). Each figure names its inputs' source and the energy's provenance and scope;
where an input is not given, nothing is invented: no column, or "not given"."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd

from hardware_profiles import HardwareProfile, load_profiles, match_profile
from reports.energy import scope_phrase
from reports.naming import framework_name, ok_runs, target_of
from reports.pairing import Pairing, device_kind
from runners.errors import PairbenchError

CARBON_ENV = "PAIRBENCH_CARBON_INTENSITY"
J_PER_KWH = 3.6e6
COST_COLUMNS = ["workload", "framework", "device", "what", "time_s", "energy_basis", "cost_usd", "cost_basis", "co2_g",
                "co2_basis"]  # fmt: skip
COST_TEXT = (
    "Cost = the device's price per hour (from its hardware profile, which names where the price was read) x the "
    "measured time of one forecast (the median batched forecast / the batch) or of one training run to its target. "
    "CO2 = that run's energy x the grid's carbon intensity as given: an estimated energy gives an estimated CO2, and "
    "an energy that covers part of the machine (one chip, a CPU package) gives the CO2 of that part only."
)
NOT_GIVEN = (
    "Cost and CO2: {what} given, so none is shown (a price per hour is an optional field of a hardware profile, "
    f"hardware_profiles/*.yaml; the grid's carbon intensity is pairbench report --carbon-intensity G or {CARBON_ENV}, "
    "in gCO2/kWh)."
)


@dataclass(frozen=True)
class Intensity:
    """The grid's carbon intensity and where it was given."""

    g_per_kwh: float
    source: str


def carbon_intensity(given: str | float | None = None, environ=os.environ) -> Intensity | None:
    """The carbon intensity from ``given`` (the report's option), else ``PAIRBENCH_CARBON_INTENSITY``; None where
    neither is given; PairbenchError, in one sentence, for anything but a finite number above 0."""
    source = "--carbon-intensity"
    if given is None:
        given, source = environ.get(CARBON_ENV), CARBON_ENV
        if given is None or not str(given).strip():
            return None
    try:
        value = float(given)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise PairbenchError(
            f"{source} is {str(given)!r:.40}; give the grid's carbon intensity in gCO2/kWh, a finite number above 0"
        )
    return Intensity(value, f"{value:g} gCO2/kWh ({source})")


def profile_of(rec: dict) -> HardwareProfile | None:
    """The hardware profile a run names, else the one its device's name matches."""
    named = load_profiles().get(rec.get("hardware_profile") or "")
    return named or match_profile(device_kind(rec["device"]), str(rec.get("device_name") or ""))


def _units(pairing: Pairing):
    """(workload, run, what, seconds, joules) of each forecast and each run that reached its target."""
    for g, rec in ok_runs(pairing, ("forecast", "skill")):
        if g.task == "forecast":
            seconds = rec["forecast_ms_p50"] / 1e3 / rec["batch_size"]
            yield g.workload, rec, "one forecast", seconds, rec.get("energy_j_per_forecast")
        elif target_of(g.identity) and rec.get("tta_reached"):
            yield g.workload, rec, "one training run to its target", rec.get("tta_wall_s"), rec.get("tta_energy_j")


def _cost(rec: dict, seconds: float | None) -> tuple[float | str, str]:
    profile = profile_of(rec)
    if profile is None or profile.price_usd_per_hour is None:
        return "not given", f"no price per hour in profile {profile.id}" if profile else "no hardware profile matches"
    if seconds is None:
        return "not given", "no time recorded"
    price = profile.price_usd_per_hour
    return price * seconds / 3600, f"{price:g} USD/h ({profile.id}: {profile.price_source}) x measured time"


def _co2(rec: dict, joules: float | None, intensity: Intensity) -> tuple[float | str, str]:
    if joules is None:
        return "not given", "no energy recorded"
    estimated = "estimated: " if rec.get("power_provenance") == "estimated" else ""
    return joules / J_PER_KWH * intensity.g_per_kwh, f"{estimated}{intensity.source} x energy ({scope_phrase(rec)})"


def cost_table(pairing: Pairing, intensity: Intensity | None) -> tuple[pd.DataFrame, str]:
    """Cost and CO2 per forecast and per training run to a target, where a price or an intensity is given (the
    columns of one that is given for none are left out), and a sentence saying what was not given ("" if both)."""
    rows = []
    for workload, rec, what, seconds, joules in _units(pairing):
        row = {"workload": workload, "framework": framework_name(rec), "device": rec["device"], "what": what}
        row["time_s"] = seconds
        row["energy_basis"] = f"{joules:.3g} ({scope_phrase(rec)})" if joules is not None else "not recorded"
        row["cost_usd"], row["cost_basis"] = _cost(rec, seconds)
        if intensity is not None:
            row["co2_g"], row["co2_basis"] = _co2(rec, joules, intensity)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COST_COLUMNS)
    priced = any(isinstance(v, float) for v in frame.cost_usd)
    missing = [w for w, given in (("no price per hour", priced), ("no carbon intensity", intensity)) if not given]
    drop = (["cost_usd", "cost_basis"] if not priced else []) + (["co2_g", "co2_basis"] if intensity is None else [])
    frame = frame.drop(columns=drop)
    if len(drop) == 4:
        frame = frame.iloc[0:0]
    return frame, NOT_GIVEN.format(what=" and ".join(missing)) if missing else ""
