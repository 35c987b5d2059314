"""The performance scripts behind docs/mindspore-performance.md run and print what the page quotes (their numbers
are benchmarks, not asserted here: these machines are shared and noisy)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, needs_both


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
