"""The performance scripts behind docs/mindspore-performance.md run and print what the page quotes (their numbers
are benchmarks, not asserted here: these machines are shared and noisy)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, needs_both, needs_torch


def _script(name: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=900, cwd=cwd
    )


@needs_both
def test_framework_gap_measures_both_frameworks_side_by_side_and_names_refusals(tmp_path):
    proc = _script(
        "framework_gap.py", "--workloads", "fourcastnet-tiny", "--rounds", "1", "--steps", "2",
        "--settings", "eager/fft,mindspore:compiled/fft", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "mindspore  compiled/fft  refused: unsupported: MindSpore" in out  # the FFT path's compiled gradients
    assert "MindSpore/PyTorch train   best of each    (eager/fft / eager/fft):" in out
    assert "MindSpore/PyTorch forward eager vs eager  (eager/fft / eager/fft):" in out
    bad = _script("framework_gap.py", "--settings", "eager/fast")
    assert bad.returncode == 2 and "settings are eager/fft" in bad.stderr


@needs_both
def test_profile_step_groups_each_frameworks_profile_by_kind(tmp_path):
    proc = _script("profile_step.py", "--workloads", "fourcastnet-tiny", "--steps", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for task in ("training step", "forward pass"):
        assert f"fourcastnet-tiny, {task} (ms per step)" in proc.stdout
    for kind in ("matrix products", "FFT", "LayerNorm", "optimiser (Adam)", "host overhead", "wall"):
        assert f"  {kind}" in proc.stdout, kind
    assert "mindspore's largest ops: " in proc.stdout


@needs_torch
def test_harness_bare_loop_is_the_workers_training_step(tmp_path):
    """The bare loop of scripts/harness_overhead.py is the runner's own train_step without the harness around it:
    on the same weights and batches its losses are the worker's training losses."""
    import json

    from runners.experiments.runs import run_worker
    from runners.spec import RunConfig
    from runners.weights.canonical import save_weights
    from runners.workloads.registry import get_workload

    spec = get_workload("fourcastnet-tiny")
    weights = tmp_path / "w.safetensors"
    save_weights(weights, spec.model, spec.model.init_weights(0))
    out = tmp_path / "bare.json"
    args = ["--bare", "torch", "--workloads", spec.name, "--weights", str(weights), "--steps", "2", "--batch", "2"]
    proc = _script("harness_overhead.py", *args, "--seed", "0", "--threads", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    bare = json.loads(out.read_text())
    run = RunConfig(
        workload=spec.name, framework="torch", weights=str(weights), threads=1, batch_size=2, warmup_steps=3,
        train_steps=2, forward_steps=1, seed=0, model=spec.model.to_dict(), hyper_parameters=spec.hyper_parameters(),
    )  # fmt: skip
    worker = run_worker(run, tmp_path / "worker", timeout_s=600)
    assert worker["status"] == "ok", worker.get("reason")
    assert len(bare["step_ms"]) == 2 and len(bare["losses"]) == len(worker["losses"]) == 5
    assert bare["losses"] == pytest.approx(worker["losses"], rel=1e-6)
