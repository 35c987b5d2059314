"""Shared fixtures: framework availability, a results directory, and a worker-subprocess helper."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


needs_torch = pytest.mark.skipif(not has("torch"), reason="torch is not installed")
needs_mindspore = pytest.mark.skipif(not has("mindspore"), reason="mindspore is not installed")
needs_both = pytest.mark.skipif(not (has("torch") and has("mindspore")), reason="needs both torch and mindspore")


def run_python(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter rooted at the project (one framework per process)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


def run_json(code: str, timeout: float = 600):
    """Run ``code``, which prints one JSON document as its last stdout line, and parse it."""
    proc = run_python(code, timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_flops(model: str, config: str, cfg: dict, batch: int = 2) -> dict:
    """FLOPs that torch.utils.flop_counter counts (matmuls and convolutions) for ``batch`` samples through the
    model class ``model`` ("module:Class") built from ``config`` ("module:Class") ``.from_dict(cfg)``:
    forward under no_grad, and forward + backward of a mean-square loss."""
    return run_json(f"""
import json, torch
from torch.utils.flop_counter import FlopCounterMode
from runners.spec import load_object
cfg = load_object({config!r}).from_dict({cfg!r})
net = load_object({model!r})(cfg)
x = torch.randn({batch}, cfg.in_chans, *cfg.img_size)
with FlopCounterMode(display=False) as fwd:
    with torch.no_grad():
        net(x)
with FlopCounterMode(display=False) as train:
    net(x).square().mean().backward()
print(json.dumps({{'forward': fwd.get_total_flops(), 'train': train.get_total_flops()}}))
""")


IDENTITY_DEFAULTS = {
    "model": {"embed_dim": 64}, "weights_sha256": "a" * 64, "seed": 1, "data": {"generator": "synthetic/1"},
    "hyper_parameters": {"lr": 5e-4}, "batch_size": 2, "precision": "fp32", "mode": "eager", "recompute": False,
    "threads": None, "warmup_steps": 3, "train_steps": 20, "forward_steps": 20, "objective": "forecast", "nproc": 1,
}  # fmt: skip


# How quiet the machine was in a fake record's window (metrics.load): quiet, with every figure read.
LOAD_FIELDS = {
    "load_verdict": "quiet", "load_verdict_reason": "nothing else ran and the timed samples vary by 1.0% of their mean",
    "load_window_s": 0.2, "load_other_cpu_frac": 0.01, "load_steal_frac": 0.0, "load_avg_1m": 1.0,
    "load_throttle_events": None, "load_cv": 0.01, "load_reason": "no thermal throttle counters",
}  # fmt: skip


def run_record(framework: str, device: str = "cpu", steps: list[float] | None = None, **over) -> dict:
    """A complete, valid run record (runners.records.schema) for report tests: identity fields in ``over`` change the
    fingerprint, other fields in ``over`` replace measured values; ``status`` other than ok makes a failure."""
    from metrics.timing import summarize
    from runners.records import schema

    ident = schema.identity("run", **{k: over.pop(k, v) for k, v in IDENTITY_DEFAULTS.items()})
    head = schema.header(
        ident, run_id=over.pop("run_id", "r1"), timestamp=over.pop("timestamp", "20261124T000000Z"),
        workload=over.pop("workload", "fourcastnet-tiny"), device=device, commit=None,
    )  # fmt: skip
    head.update(weights_source="init_weights(seed=1)")
    if over.get("status", "ok") != "ok":
        return schema.record(head, framework=framework, **over)
    steps = steps or [10.0] * 20
    fields = {
        "framework_version": "x", "device_name": device, "cpu_name": "cpu", "cpu_features": "avx2", "threads_used": "2",
        "execution_mode": "eager", "python": "3.11", "host": "h", "param_count": 10, "build_s": 1.0,
        "host_peak_rss_mb": 300.0, **LOAD_FIELDS, "power_source": "estimate", "power_provenance": "estimated",
        "power_window": "timed steps", "power_window_s": 0.2, "energy_j": 4.0, "power_w_mean": 15.0,
        "power_w_peak": 16.0, "power_reason": None, "power_samples": [[0.0, 14.0], [0.1, 16.0]],
        "energy_j_per_sample": 0.1, "samples_per_j": 10.0, "power_scope": "model-estimate",
        "power_scope_label": "a model, not a reading: TDP x CPU utilisation of the process", "power_rate_hz": 10.0,
        "power_rate_hz_achieved": 10.0, "power_window_ok": False,
        "power_window_reason": "2 samples, fewer than 60 in the 0.2 s window", "loss_initial": 1.0,
        "losses": [1.0] * 24,
        "forward_ms": [s / 3 for s in steps], "step_ms": steps, "input_ms": [0.1] * len(steps),
        "first_step_ms": 20.0, "compile_s": 0.0, "forward_first_ms": 5.0, "first_backward_ms": 20.0,
        "backward_rss_growth_mb": 10.0, "saved_activations_mb": None, "device_peak_mem_mb": None,
        "device_peak_mem_reason": "CPU", "samples_per_s": 2000 / float(np.median(steps)),
        "flops_forward_per_sample": 1e6, "flops_train_per_sample": 3e6, "achieved_tflops_train": 1e-3,
        "hardware_profile": None, "mfu_train": None, "mfu_reason": "no hardware profile matches",
        "provenance": {"timings": "measured"}, "gradient_missing": [],
        **summarize([s / 3 for s in steps], "forward"), **summarize(steps, "step"),
        **summarize([0.1] * len(steps), "input"),
    }  # fmt: skip
    return schema.record(head, framework=framework, status="ok", **{**fields, **over})
