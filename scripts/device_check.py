"""The first hour on a GPU or NPU machine in one command: find the accelerator, run both frameworks on it, sample
its power, write the report and say what ran, what was unavailable and why.

Steps (each a pairbench command, run in this interpreter; the plan is printed first):
1. ``pairbench devices --json``: the first CUDA GPU, else the first Ascend NPU. None: one sentence, exit 2.
2. fourcastnet-tiny in both frameworks: fp32 and bf16, eager and compiled (power sampled by NVML or npu-smi).
3. A short fourcastnet-era5 (the paper's network, batch 1, a few steps) in both frameworks, fp32 and bf16 eager;
   where it does not fit (out of memory), fourcastnet-small instead.
4. ``pairbench forecast``: a ten-day forecast of the same network (the one that fitted), fp32 and bf16 eager.
5. ``pairbench forecast --engine``: fourcastnet-tiny forecasts by exported graphs (ONNX Runtime with the device's
   provider, FFT and DFT paths; MindIR) beside both frameworks, each graph's trajectory checked against its source.
6. ``pairbench report``: the HTML report of every record.
7. A summary of each run (status, step time, power and its provenance, MFU) and of what was unavailable, printed
   and written beside the records (summary.txt).

    scripts/device_check.sh                     # results in results/device-check-<time>/
    scripts/device_check.sh --dry-run           # print the plan only
    scripts/device_check.sh --device cuda:1     # another device than the first

Exit status: 0 when every run succeeded or was recorded as unavailable with its reason (an era5 run that did not
fit, replaced by fourcastnet-small, counts as neither), 1 when a run failed, 2 when there is no accelerator or a
step could not run at all (the summary names it)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TINY = ["--workload", "fourcastnet-tiny", "--precision", "fp32,bf16", "--mode", "eager,compiled"]
TINY += ["--warmup-steps", "2", "--train-steps", "10", "--forward-steps", "10"]
LARGE = ["--precision", "fp32,bf16", "--mode", "eager", "--batch-size", "1"]
LARGE += ["--warmup-steps", "1", "--train-steps", "3", "--forward-steps", "3"]
FORECAST = ["--precision", "fp32,bf16", "--mode", "eager", "--repeats", "3"]
# The deployed paths (runners.engines): the provider follows the device (CUDA on a GPU, CANN on an NPU).
ENGINES = ["--n-lead", "8", "--repeats", "5", "--engine",
           "torch,mindspore,onnxruntime,onnxruntime:spectral=dft,mindir,mindir:spectral=dft"]  # fmt: skip
LARGE_WORKLOADS = ("fourcastnet-era5", "fourcastnet-small")  # the second where the first does not fit
RUN_TIMEOUT_S = 300  # per framework run


class CheckError(Exception):
    """A step that could not run at all; the message is one sentence."""


def pick_device(devices: list[dict], environ=os.environ) -> str:
    """The device to check from ``pairbench devices --json``: the first CUDA GPU, else the first Ascend chip that
    the frameworks can see, as the frameworks number it (metrics.device.ascend.framework_index)."""
    from metrics.device.ascend import framework_index

    gpus = [d for d in devices if d.get("kind") == "cuda" and not d.get("absent")]
    if gpus:
        return f"cuda:{gpus[0].get('nvml_index', 0)}"
    for d in devices:
        if d.get("kind") == "ascend" and not d.get("absent"):
            index = framework_index(d.get("logical_id", 0), environ)
            if index is not None:
                return f"ascend:{index}"
    reasons = "; ".join(f"{d['kind']}: {d['reason']}" for d in devices if d.get("absent")) or "none listed"
    raise CheckError(f"no CUDA GPU or Ascend NPU on this machine, so there is nothing to check ({reasons})")


def pairbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "runners.cli", *args]


def plan(device: str, results: Path, large: str = LARGE_WORKLOADS[0]) -> list[tuple[str, list[str]]]:
    common = ["--device", device, "--results-dir", str(results), "--timeout", str(RUN_TIMEOUT_S), "--seed", "1"]
    return [
        ("fourcastnet-tiny, fp32 and bf16, eager and compiled", pairbench("run", *TINY, *common, "--no-skill")),
        (
            f"{large}, fp32 and bf16, eager, batch 1",
            pairbench("run", "--workload", large, *LARGE, *common, "--no-skill"),
        ),
        (
            f"a ten-day {large} forecast, fp32 and bf16, eager",
            pairbench("forecast", "--workload", large, *FORECAST, *common),
        ),
        (
            "fourcastnet-tiny forecasts by exported graphs: ONNX Runtime (CUDA or CANN provider, FFT and DFT paths) "
            "and MindIR, beside both frameworks",
            pairbench("forecast", "--workload", "fourcastnet-tiny", *ENGINES, *common),
        ),
        ("the HTML report", pairbench("report", str(results), "-o", str(results / "report.html"))),
    ]


# What a run that did not fit says, in the frameworks' own words (a failed record's reason is the worker's
# "<exception type>: <first line of its message>"). PyTorch: torch.OutOfMemoryError (torch.cuda.OutOfMemoryError is
# the same class) "CUDA out of memory. Tried to allocate ...", its host allocator's "DefaultCPUAllocator: can't
# allocate memory" / "not enough memory". MindSpore 2.10 (the wording in its libraries): its memory pool's "Memory
# not enough: ...", "Device(id:0) memory isn't enough and alloc failed, ...", "Malloc for kernel output failed,
# Memory isn't enough, ...", and on Ascend "Malloc device memory failed, size[...]", "Out of Memory!!! Request
# memory size ...", "Out of memory, Alloc GE memory failed". Nothing else counts: not a worker killed by a signal
# (which the kernel's OOM killer is only one cause of), never a word inside a path.
OOM_MESSAGES = re.compile(
    r"^(?:torch\.(?:cuda\.)?)?OutOfMemoryError:"
    r"|\bCUDA out of memory\b"
    r"|\bDefaultCPUAllocator: (?:can't allocate memory|not enough memory)"
    r"|\bMemory not enough:"
    r"|\bDevice\(id:\d+\) memory isn't enough and alloc failed"
    r"|\bMalloc for kernel (?:input|output) failed, Memory isn't enough"
    r"|\bMalloc device memory failed, size\["
    r"|\bOut of Memory!!! Request memory size"
    r"|\bOut of memory, Alloc GE memory failed"
)
# Where a reason names a file: the worker's log, "(log: PATH)" at its end, a quoted path (as an OSError gives it),
# and any other word holding a slash.
_PATHS = re.compile(r"\s*\(log: .*\)\s*$|'[^']*/[^']*'|\"[^\"]*/[^\"]*\"|\S*/\S*")


def out_of_memory(records: list[dict], workload: str) -> bool:
    """Whether a run of ``workload`` failed for want of memory, as its framework said (:data:`OOM_MESSAGES`)."""
    return any(
        OOM_MESSAGES.search(_PATHS.sub(" ", r.get("reason") or ""))
        for r in records
        if r.get("workload") == workload and r.get("status") == "failed"
    )


def summarize(records: list[dict], device: str, elapsed_s: float) -> list[str]:
    """One line per run record, then what was unavailable or failed, with the reason."""
    runs = [r for r in records if r.get("record_type") == "run"]
    lines = [f"device check of {device}: {len(runs)} runs in {elapsed_s:.0f} s"]
    for r in runs:
        what = f"{r['workload']:<18} {r['framework']:<9} {r['precision']:<4} {r['mode']:<8}"
        if r["status"] != "ok":
            lines.append(f"  {what} {r['status']}: {r.get('reason')}")
            continue
        power = (
            f"{r['power_w_mean']:.1f} W ({r['power_provenance']}, {r.get('power_source')})"
            if r.get("power_w_mean") is not None
            else f"power unavailable: {r.get('power_reason')}"
        )
        mfu = (
            f"MFU {r['mfu_train']:.1%}" if r.get("mfu_train") is not None else f"MFU unavailable: {r.get('mfu_reason')}"
        )
        lines.append(f"  {what} ok: step {r['step_ms_p50']:.2f} ms, {power}, {mfu}")
    parity = [r for r in records if r.get("record_type") == "parity"]
    for p in parity:
        lines.append(
            f"  parity {p['workload']} {p['precision']} {p['mode']}: {p['verdict']} ({p.get('bounds_source')})"
        )
    for r in (r for r in records if r.get("record_type") == "forecast"):
        side = r.get("engine") or r["framework"]
        what = f"forecast {r['workload']} {side} {r['precision']} {r['n_lead']} x {r['lead_hours']:g} h"
        if r["status"] != "ok":
            lines.append(f"  {what} {r['status']}: {r.get('reason')}")
            continue
        energy = r.get("energy_j_per_forecast")
        energy = f"{energy:.4g} J ({r['power_provenance']})" if energy is not None else r.get("power_reason")
        lines.append(f"  {what} ok: {r['forecast_ms_p50']:.1f} ms per forecast, energy {energy}")
    for p in (r for r in records if r.get("record_type") == "forecast_parity"):
        what = f"{p['other']} vs {p['reference']}" if p.get("engine") else p["precision"]
        lines.append(f"  forecast parity {p['workload']} {what}: {p['verdict']} ({p.get('bounds_source')})")
    missing = [r for r in runs if r["status"] in ("unavailable", "unsupported")]
    failed = [r for r in runs if r["status"] == "failed"]
    lines.append(f"unavailable or unsupported: {len(missing)}; failed: {len(failed)}")
    return lines


def run_step(label: str, cmd: list[str], log) -> int:
    print(f"\n== {label}\n$ {' '.join(cmd[2:])}", flush=True)
    log.write(f"\n== {label}\n$ {' '.join(cmd)}\n")
    log.flush()
    return subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", type=Path, default=None)
    ap.add_argument("--device", default=None, help="cuda[:i] or ascend[:i]; the first accelerator found by default")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    results = args.results_dir or ROOT / "results" / f"device-check-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    try:
        if args.device is None:
            listing = subprocess.run(pairbench("devices", "--json"), cwd=ROOT, capture_output=True, text=True)
            if listing.returncode != 0:
                raise CheckError(f"pairbench devices failed: {listing.stderr.strip().splitlines()[-1:]}")
            device = pick_device(json.loads(listing.stdout))
            print(subprocess.run(pairbench("devices"), cwd=ROOT, capture_output=True, text=True).stdout)
        else:
            from runners.devices import parse_device
            from runners.errors import PairbenchError

            try:
                device = str(parse_device(args.device))
            except PairbenchError as exc:
                raise CheckError(str(exc)) from None
            if device == "cpu":
                raise CheckError("--device must be an accelerator (cuda[:i] or ascend[:i]); this check is for those")
    except CheckError as exc:
        print(f"device_check: {exc}", file=sys.stderr)
        return 2
    steps = plan(device, results)
    print(f"checking {device}; records, logs and the report go to {results}")
    for label, cmd in steps:
        print(f"  {label}: {' '.join(cmd[2:])}")
    if args.dry_run:
        return 0
    results.mkdir(parents=True, exist_ok=True)
    from runners.records.store import read_records_lenient, records_path

    codes = {}
    with open(results / "device_check.log", "w") as log:
        codes[steps[0][0]] = run_step(*steps[0], log)
        codes[steps[1][0]] = run_step(*steps[1], log)
        records, _ = read_records_lenient(records_path(results)) if records_path(results).is_file() else ([], [])
        did_not_fit = out_of_memory(records, LARGE_WORKLOADS[0])
        if did_not_fit:
            label, cmd = plan(device, results, LARGE_WORKLOADS[1])[1]
            codes[label] = run_step(f"{label} ({LARGE_WORKLOADS[0]} did not fit)", cmd, log)
        if not records_path(results).is_file():
            print(f"device_check: no run was recorded; see {results / 'device_check.log'}", file=sys.stderr)
            return 2
        label, cmd = plan(device, results, LARGE_WORKLOADS[1 if did_not_fit else 0])[2]
        codes[label] = run_step(label, cmd, log)
        codes[steps[3][0]] = run_step(*steps[3], log)
    records, skipped = read_records_lenient(records_path(results))
    lines = summarize(records, device, time.perf_counter() - t0)
    lines += [f"unreadable record line: {s}" for s in skipped]
    lines += [f"step '{label}' exited with code {code} (see {results / 'device_check.log'})"
              for label, code in codes.items() if code not in (0, 1)]  # fmt: skip
    if did_not_fit:
        lines.append(f"{LARGE_WORKLOADS[0]} did not fit on {device}; {LARGE_WORKLOADS[1]} ran instead")
    lines.append(
        f"report: {results / 'report.html'}" if codes[steps[3][0]] == 0 else "report: not written (see the log)"
    )
    (results / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    if any(code not in (0, 1) for code in codes.values()):
        return 2
    counted = [r for r in records if not (did_not_fit and r.get("workload") == LARGE_WORKLOADS[0])]
    return 1 if any(r.get("status") == "failed" for r in counted) else 0


if __name__ == "__main__":
    sys.exit(main())
