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
