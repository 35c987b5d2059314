"""Shared fixtures: framework availability, a results directory, and a worker-subprocess helper."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

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
from runners.registry import load_object
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
