"""``pairbench devices``: what this machine has (metrics.device.machine: CUDA GPUs, Ascend NPUs and the CPU, each
with its matched profile) and a current power reading of each, or the reason there is none; the CPU's is read over a
short window, so this sits above the power windows."""

from __future__ import annotations

import time

from metrics.device import machine
from metrics.power.collectors import cpu_collector
from metrics.power.cpu import RaplCollector


def _cpu(window_s: float) -> dict:
    """The CPU's RAPL power over a short window; without RAPL, no current reading (the TDP x utilisation
    estimate models a running workload, not an idle machine) and the basis runs would use."""
    entry = machine.cpu()
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
    return [*machine.accelerators("cuda"), *machine.accelerators("ascend"), _cpu(cpu_window_s)]


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
