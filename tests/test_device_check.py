"""scripts/device_check.sh, the one-shot check of a GPU or NPU machine: its steps that need no device."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_record
from hypothesis import given, settings
from hypothesis import strategies as st

SCRIPT = ROOT / "scripts" / "device_check.sh"
STANDIN = ROOT / "tests" / "fixtures" / "bin"
# A pynvml whose nvmlInit finds no driver, first on PYTHONPATH: no GPU is seen on any host, so that nothing here
# starts device work (the npu-smi on PATH is the stand-in's, or none).
NO_NVML = ROOT / "tests" / "fixtures" / "no_nvml"


def _module():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "scripts" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NO_NVML), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


def test_no_accelerator_is_one_sentence_and_exit_2(tmp_path):
    # --dry-run: were an accelerator found after all, the plan would be printed (and this test fail), never run.
    proc = _run("--dry-run", "--results-dir", str(tmp_path / "r"), path=f"{tmp_path}:/usr/bin:/bin")
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("device_check: no CUDA GPU or Ascend NPU on this machine, so there is nothing to check (")
    assert "cuda: NVML cannot be initialised (NVML Shared Library Not Found)" in line  # the stand-in, on any host
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
    assert len(plan) == 5 and all("--device ascend:0" in ln for ln in plan[:4])
    assert "forecast --workload fourcastnet-tiny" in plan[3] and "--engine torch,mindspore,onnxruntime," in plan[3]
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


OOM = [
    "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB",
    "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 3.82 GiB total capacity)",
    "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
    "allocate 116813856768 bytes.",
    "RuntimeError: Memory not enough: Device(id:0) memory isn't enough and alloc failed, kernel name: "
    "Default/network/MatMul-op1, alloc size: 1073741824B.",
    "RuntimeError: Malloc for kernel output failed, Memory isn't enough, node:Default/Cast-op446",
    "RuntimeError: Malloc device memory failed, size[32212254720], ret[207001], Device 6 may be other processes "
    "occupying this card, check as: ps -ef|grep python",
    "RuntimeError: Out of Memory!!! Request memory size: 4294967296B, Memory Statistic: ...",
]
NOT_OOM = [
    "worker killed by signal 9 before writing a result (log: /home/bloom/results/fourcastnet-era5-1/torch.log)",
    "worker exited with code 1 before writing a result (log: /data/CUDA out of memory/era5/mindspore.log)",
    "FileNotFoundError: [Errno 2] No such file or directory: '/scratch/Memory not enough: old/weights.safetensors'",
    "timed out after 300 s (log: /home/zoom/OutOfMemoryError: notes/torch.log)",
    "RuntimeError: the loss became nan at step 3",
]


def _era5(reason: str, status: str = "failed") -> list[dict]:
    return [run_record("torch", "cuda:0", workload="fourcastnet-era5", status=status, reason=reason)]


@pytest.mark.parametrize("reason", OOM)
def test_out_of_memory_is_the_frameworks_own_words(reason):
    check = _module()
    assert check.out_of_memory(_era5(reason), "fourcastnet-era5")
    # Only a failed run of that workload counts.
    assert not check.out_of_memory(_era5(reason), "fourcastnet-tiny")
    assert not check.out_of_memory(_era5(reason, "unavailable"), "fourcastnet-era5")


@pytest.mark.parametrize("reason", NOT_OOM)
def test_a_path_or_a_signal_is_never_out_of_memory(reason):
    """A word in a path (a log under /home/bloom/) or a worker killed by a signal is a failure, never a run that did
    not fit: it stays in the exit status and is not swapped for a smaller network."""
    assert not _module().out_of_memory(_era5(reason), "fourcastnet-era5")


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(["home", "bloom", "oom", "CUDA out of memory", "Memory not enough:", "OutOfMemoryError:",
                         "Device(id:0) memory isn't enough and alloc failed", "a b", "x.log"]),
        min_size=1, max_size=6,
    ),
    form=st.sampled_from([
        "worker killed by signal 9 before writing a result (log: {})", "timed out after 5 s (log: {})",
        "OSError: [Errno 5] Input/output error: {!r}", "FileNotFoundError: no file {!r}",
    ]),
)  # fmt: skip
def test_no_path_makes_a_failure_out_of_memory(parts, form):
    reason = form.format("/" + "/".join(parts))
    assert not _module().out_of_memory(_era5(reason), "fourcastnet-era5"), reason
