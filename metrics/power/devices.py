"""What this machine has: CUDA GPUs (NVML), Ascend NPUs (npu-smi) and the CPU, each with its matched
profile and a current power reading or the reason there is none."""

from __future__ import annotations

import time

from hardware_profiles import match_profile
from metrics.power.window import PowerUnavailable


def _with_profile(entry: dict) -> dict:
    profile = match_profile(entry["kind"], entry.get("name", ""))
    entry["profile"] = profile.id if profile else None
    if profile is None:
        entry["profile_reason"] = f"no hardware profile matches {entry.get('name')!r}"
    return entry


def _gpus() -> list[dict]:
    from metrics.power.nvidia import list_gpus

    try:
        return [_with_profile(e) for e in list_gpus()]
    except PowerUnavailable as exc:
        return [{"kind": "cuda", "absent": True, "reason": str(exc)}]


def _npus() -> list[dict]:
    from metrics.device.ascend import list_npus
    from metrics.device.npu_smi.info import NpuSmiError

    try:
        return [_with_profile(e) for e in list_npus()]
    except NpuSmiError as exc:
        return [{"kind": "ascend", "absent": True, "reason": str(exc)}]


def _cpu(window_s: float) -> dict:
    """The CPU's RAPL power over a short window; without RAPL, no current reading (the TDP x utilisation
    estimate models a running workload, not an idle machine) and the basis runs would use."""
    import psutil

    from metrics.power.collectors import cpu_collector, cpu_name
    from metrics.power.cpu import RaplCollector

    entry = _with_profile(
        {
            "kind": "cpu",
            "name": cpu_name(),
            "logical_cores": psutil.cpu_count(logical=True),
            "memory_gb": psutil.virtual_memory().total / 1e9,
        }
    )
    collector = cpu_collector(rate_hz=20.0, utilisation_of="system")
    if not isinstance(collector, RaplCollector):
        collector.start()
        result = collector.stop()
        basis = result.extra.get("power_estimate_basis")
        reason = basis.split("not measured because ", 1)[-1].split(";")[0] if basis else result.reason
        entry.update(power_w=None, power_provenance="unavailable", power_reason=reason)
        if basis:
            entry["power_estimate_basis"] = f"runs are charged an estimate: {basis.split(';')[0]} x utilisation"
        return entry
    collector.start()
    time.sleep(window_s)
    result = collector.stop()
    entry.update(power_w=result.power_w_mean, power_provenance=result.provenance, power_source=result.source)
    entry.update(power_scope=result.scope.kind, power_scope_label=result.scope.label)
    if result.reason:
        entry["power_reason"] = result.reason
    return entry


def detect_devices(cpu_window_s: float = 0.5) -> list[dict]:
    return [*_gpus(), *_npus(), _cpu(cpu_window_s)]


def format_devices(devices: list[dict]) -> str:
    lines = []
    for d in devices:
        if d.get("absent"):
            lines.append(f"{d['kind']:<7} none: {d['reason']}")
            continue
        ident = d.get("nvml_index", "")
        if d["kind"] == "ascend":  # NPU id, chip, and the logical id a framework's ascend:i counts in
            ident = f"{d['npu_id']}.{d['chip_id']} (logical {d['logical_id']})"
        power = d.get("power_w")
        covers = f"; {d['power_scope_label']}" if d.get("power_scope_label") else ""
        reading = (
            f"{power:.1f} W ({d['power_provenance']}, {d.get('power_source')}{covers})"
            if power is not None
            else f"power unavailable: {d.get('power_reason')}"
        )
        lines.append(f"{d['kind']:<7}{ident!s:<3} {d['name']:<40} profile {d.get('profile') or '-':<12} {reading}")
        lines += [f"{'':<11}unreadable in npu-smi's table: {p}" for p in d.get("row_problems", ())]
        if d.get("power_estimate_basis"):
            lines.append(f"{'':<11}estimate basis: {d['power_estimate_basis']}")
    return "\n".join(lines)
