"""What the asv suite runs: parameters, budgets, skips, and the cached pairbench runs behind every track_ benchmark."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path


def repo_root() -> Path:
    """The directory holding asv.conf.json (asv sets ASV_CONF_DIR), else this checkout's root."""
    return Path(os.environ.get("ASV_CONF_DIR") or Path(__file__).resolve().parent.parent)


def import_project() -> None:
    """Make `runners` importable: installed in asv's environment, or this checkout (asv run --python=same)."""
    if importlib.util.find_spec("runners") is None:
        sys.path.insert(0, str(repo_root()))


def _device_kinds() -> list[str]:
    import_project()
    from metrics.device.machine import KINDS

    return list(KINDS)


# The parameter grid. Values that cannot run here (a framework not installed, a device not present, a
# precision the runners do not offer yet) are skipped by NotImplementedError in setup, shown as n/a.
FRAMEWORKS = ["torch", "mindspore"]
PRECISIONS = ["fp32"]  # extend with "bf16", "fp16" once PairOptions / SkillOptions take a precision
DEVICES = _device_kinds()  # cpu, cuda, ascend
LEADS = ["6h", "24h", "48h", "192h"]  # of the 8 rollout steps (six-hourly atmosphere to 48 h, daily ocean to 192 h)
# The built-in data's channels: the atmosphere's u, v, vorticity; the ocean's surface t, s, u and height.
CHANNELS = ["u", "v", "vo", "t0", "s0", "u0", "ssh"]

SEED = 1  # fixed: weights, data and batch order, so that accuracy is reproducible run to run
TIMEOUT_S = 3600.0  # per framework run: pairbench's --timeout default (checked equal in tests/test_asv.py)

# Budgets: the options' defaults (runners/options.py) unless the workload's family declares a budget for the
# device kind (runners/workloads/<family>/family.py, the workload's one home); `pairbench_command` prints exactly
# what runs.

DEVICES_ENV = "PAIRBENCH_ASV_DEVICES"  # e.g. "cuda": run only these device kinds, skip the others
RESULTS_ENV = "PAIRBENCH_ASV_RESULTS"  # where the pairbench runs write; default <repo>/.asv/pairbench


def _registry():
    import_project()
    from runners.workloads import registry

    return registry


def training_workloads() -> list[str]:
    """Every registered workload, built-in or from an installed package's entry point."""
    return list(_registry().WORKLOADS)


def skill_workloads() -> list[str]:
    """The workloads whose family's built-in data the skill task trains on."""
    return [w for f in _registry().FAMILIES for w in f.skill]


def infeasible(task: str, workload: str, device: str) -> str | None:
    """Why the workload's family does not run ``task`` on ``device``, or None."""
    return _registry().family_of(workload).infeasible.get((task, workload, device))


class Skip(Exception):
    """A combination that cannot run here, with the reason asv prints."""


def framework_installed(framework: str) -> bool:
    return importlib.util.find_spec(framework) is not None


def device_absent(device: str) -> str | None:
    """Why ``device`` cannot run here, or None; cheap (NVML, npu-smi: metrics.device.machine), no framework imported."""
    selected = os.environ.get(DEVICES_ENV)
    if selected and device not in [d.strip() for d in selected.split(",")]:
        return f"{DEVICES_ENV}={selected} leaves out {device}"
    import_project()
    from metrics.device.machine import ACCELERATORS, absent

    why = absent(device)
    return None if why is None else f"no {ACCELERATORS[device]} ({why})"


def _options_class(task: str):
    import_project()
    from runners.options import ForecastOptions, PairOptions, SkillOptions

    return {"pair": PairOptions, "skill": SkillOptions, "forecast": ForecastOptions}[task]


def budget(task: str, workload: str, device: str) -> dict:
    """The step budget of ``task`` ("pair", "skill" or "forecast") for ``workload`` on ``device``."""
    from runners.spec import BUDGET_FIELDS

    cls = _options_class(task)
    defaults = {f: getattr(cls, f) for f in BUDGET_FIELDS[task]}
    return {**defaults, **_registry().family_of(workload).budgets.get((task, workload, device), {})}


def pairbench_command(task: str, workload: str, precision: str, device: str) -> str:
    """The `pairbench` command line that runs what the asv benchmark of these parameters runs."""
    given = {k: v for k, v in budget(task, workload, device).items() if v is not None}  # None: the default
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in given.items())
    cmd, extra = ("run", " --no-skill") if task == "pair" else (task, "")
    precision_flag = "" if precision == "fp32" else f" --precision {precision}"
    return f"pairbench {cmd} --workload {workload} --device {device} --seed {SEED} {flags}{precision_flag}{extra}"


def task_options(task: str, workload: str, precision: str, device: str, frameworks: list[str]):
    """What `pairbench_command(task, ...)` gives run_pair or run_skill, with this suite's results directory."""
    return options(
        _options_class(task),
        precision,
        workload=workload,
        frameworks=tuple(frameworks),
        device=device,
        seed=SEED,
        results_dir=results_dir(task),
        timeout_s=TIMEOUT_S,
        **budget(task, workload, device),
    )


def options(cls, precision: str, **fields):
    """``cls(**fields)`` with ``precision`` where the options class takes one; fp32 is the only one before."""
    if any(f.name == "precision" for f in dataclasses.fields(cls)):
        fields["precision"] = precision
    elif precision != "fp32":
        raise Skip(f"{cls.__name__} takes no precision here: fp32 only")
    return cls(**fields)


def results_dir(task: str) -> Path:
    return Path(os.environ.get(RESULTS_ENV) or repo_root() / ".asv" / "pairbench") / task


def key(*parts: str) -> str:
    return "|".join(parts)


def _skip_all(out: dict, reason: str, *parts: str, sides=FRAMEWORKS) -> None:
    for side in sides:
        out[key(*parts, side)] = {"skip": reason}


def run_grid(task: str, workloads: list[str], run_one, sides=FRAMEWORKS) -> dict:
    """Run ``run_one(workload, precision, device, frameworks)`` for every combination that can run here.

    Returns {key(workload, precision, device, side): {"values": ...} | {"skip": why} | {"error": why}}, a side being
    a framework or an exported graph's engine (``sides``: every one the benchmark has).
    """
    import_project()
    from runners.errors import PairbenchError

    out: dict[str, dict] = {}
    absent = {d: device_absent(d) for d in DEVICES}
    for workload in workloads:
        for precision in PRECISIONS:
            for device in DEVICES:
                parts = (workload, precision, device)
                reason = infeasible(task, workload, device) or absent[device]
                if reason:
                    _skip_all(out, reason, *parts, sides=sides)
                    continue
                present = [fw for fw in FRAMEWORKS if framework_installed(fw)]
                for fw in FRAMEWORKS:
                    if fw not in present:
                        out[key(*parts, fw)] = {"skip": f"{fw} is not installed"}
                if not present:
                    continue
                print(f"[asv] {pairbench_command(task, workload, precision, device)}", flush=True)
                try:
                    out.update({key(*parts, fw): entry for fw, entry in run_one(*parts, present).items()})
                except Skip as exc:
                    _skip_all(out, str(exc), *parts, sides=sides)
                except PairbenchError as exc:  # a combination the runners refuse
                    _skip_all(out, f"pairbench refused: {exc}", *parts, sides=sides)
    return out


def entry_for(record: dict, values: dict) -> dict:
    """A cache entry from a pairbench record: its values, a skip (unavailable) or an error (failed)."""
    if record["status"] == "ok":
        return {"values": values}
    reason = f"{record.get('engine') or record['framework']} {record['status']}: {record.get('reason', 'unknown')}"
    return {"skip": reason} if record["status"] == "unavailable" else {"error": reason}


def lookup(cache: dict, *parts: str) -> dict:
    """The values of one combination; NotImplementedError (asv: skipped) or RuntimeError (asv: failed)."""
    entry = cache.get(key(*parts), {"skip": "not in this suite's grid"})
    if "skip" in entry:
        raise NotImplementedError(entry["skip"])
    if "error" in entry:
        raise RuntimeError(entry["error"])
    return entry["values"]


def measured_energy(record: dict, field: str) -> dict:
    """A record's energy ``field`` for the cache: its value where the energy is measured (NVML, npu-smi, RAPL),
    else None, and the reason asv shows as n/a. An estimate is a function of the time, not a measurement, so it is
    never tracked as energy."""
    provenance = record.get("power_provenance")
    why = record.get("power_reason") or record.get("power_estimate_basis") or "no reason recorded"
    value = record.get(field) if provenance == "measured" else None
    reason = f"{field} is {provenance}, not measured ({why})" if provenance != "measured" else f"no {field}: {why}"
    return {field: value, "energy_reason": reason}


def energy(values: dict, field: str) -> float:
    """The measured energy ``field`` of a combination's cached values (see :func:`measured_energy`); asv's n/a,
    with the reason, where there is none."""
    if values[field] is None:
        raise not_measured(values["energy_reason"])
    return values[field]


def not_measured(reason: str) -> NotImplementedError:
    """The exception that skips one track_ benchmark from inside its body (asv records n/a)."""
    try:
        from asv_runner.benchmarks.mark import SkipNotImplemented
    except ImportError:  # outside asv
        return NotImplementedError(reason)
    return SkipNotImplemented(reason)
