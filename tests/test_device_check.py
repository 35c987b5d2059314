"""scripts/device_check.sh, the one-shot check of a GPU or NPU machine: its steps that need no device."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_record

SCRIPT = ROOT / "scripts" / "device_check.sh"
STANDIN = ROOT / "tests" / "fixtures" / "bin"


def _module():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "scripts" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


def test_no_accelerator_is_one_sentence_and_exit_2(tmp_path):
    proc = _run("--results-dir", str(tmp_path / "r"), path=f"{tmp_path}:/usr/bin:/bin")
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("device_check: no CUDA GPU or Ascend NPU on this machine, so there is nothing to check (")
    assert "ascend: npu-smi is not on PATH" in line and not (tmp_path / "r").exists()
    proc = _run("--device", "cpu", "--dry-run")
    assert proc.returncode == 2 and "--device must be an accelerator" in proc.stderr
    proc = _run("--device", "gpu:0", "--dry-run")
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "device_check: unknown device 'gpu:0'; use cpu, cuda[:i] or ascend[:i]"
    )


def test_an_npu_is_found_and_the_plan_covers_both_models_precisions_and_modes(tmp_path):
    proc = _run("--dry-run", "--results-dir", str(tmp_path / "r"), path=f"{STANDIN}:{os.environ['PATH']}")
    assert proc.returncode == 0, proc.stderr
    assert f"checking ascend:0; records, logs and the report go to {tmp_path / 'r'}" in proc.stdout
    plan = [ln for ln in proc.stdout.splitlines() if "runners.cli" in ln]
    assert len(plan) == 4 and all("--device ascend:0" in ln for ln in plan[:3])
    assert "forecast --workload fourcastnet-era5 --precision fp32,bf16" in plan[2] and "--no-skill" not in plan[2]
    assert "--precision fp32,bf16 --mode eager,compiled" in plan[0] and "fourcastnet-era5" in plan[1]
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


def test_the_summary_says_what_ran_and_what_did_not():
    check = _module()
    assert check.pick_device([{"kind": "cuda", "nvml_index": 1, "name": "H200"}]) == "cuda:1"
    assert check.pick_device([{"kind": "cuda", "absent": True, "reason": "x"}, {"kind": "ascend", "logical_id": 4}])
    records = [
        run_record("torch", "cuda:0", power_w_mean=500.0, power_provenance="measured", power_source="nvml"),
        run_record("mindspore", "cuda:0", status="unavailable", reason="MindSpore has no GPU backend here"),
        run_record("torch", "cuda:0", workload="fourcastnet-era5", status="failed", reason="CUDA out of memory"),
    ]
    lines = check.summarize(records, "cuda:0", 42.0)
    assert lines[0] == "device check of cuda:0: 3 runs in 42 s"
    assert "ok: step" in lines[1] and "500.0 W (measured, nvml)" in lines[1]
    assert "unavailable: MindSpore has no GPU backend here" in lines[2] and "failed: CUDA out of memory" in lines[3]
    assert lines[-1] == "unavailable or unsupported: 1; failed: 1"
    from test_report_forecast import forecast, forecast_parity

    with_forecasts = [*records, forecast("torch", [10.0, 12.0], device="cuda:0"), forecast_parity([1e-7, 2e-7])]
    lines = check.summarize(with_forecasts, "cuda:0", 42.0)
    (line,) = [ln for ln in lines if ln.startswith("  forecast fourcastnet-tiny torch")]
    assert "ok: 11.0 ms per forecast, energy" in line and " J (" in line
    assert any(ln.startswith("  forecast parity fourcastnet-tiny fp32: pass") for ln in lines)
    assert check.out_of_memory(records, "fourcastnet-era5") and not check.out_of_memory(records, "fourcastnet-tiny")
    ascend = [{"kind": "cuda", "absent": True, "reason": "x"}, {"kind": "ascend", "logical_id": 4}]
    assert check.pick_device(ascend, {}) == "ascend:4"
    assert check.pick_device(ascend, {"ASCEND_RT_VISIBLE_DEVICES": "5,4"}) == "ascend:1"  # as the frameworks count
    with pytest.raises(check.CheckError, match="no CUDA GPU or Ascend NPU"):
        check.pick_device(ascend, {"ASCEND_RT_VISIBLE_DEVICES": "0,1"})  # not visible to the frameworks
