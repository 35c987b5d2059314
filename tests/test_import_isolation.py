"""The neutral packages import neither torch nor mindspore; proven with both imports blocked."""

from __future__ import annotations

import os

from conftest import run_python

BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'mindspore'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
"""

# Every module of the neutral packages, and every module of runners but the backends, the models and the engine
# runners (which import their framework or runtime by design): found on disk, so a new module is covered without a
# list to update.
NEUTRAL_PACKAGES = ("metrics", "reports", "hardware_profiles", "runners")
FRAMEWORK_MODULES = ("runners.backends.", "torch_model", "mindspore_model", "onnx_engine", "mindir_engine")


def _modules(package: str) -> list[str]:
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    found = [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")]
    return [m for m in found if not any(part in m for part in FRAMEWORK_MODULES)]


NEUTRAL = [m for p in NEUTRAL_PACKAGES for m in _modules(p)]


def test_every_module_of_the_neutral_packages_is_covered():
    assert {
        "metrics.parity",
        "metrics.power.window",
        "reports.build",
        "reports.figures",
        "reports.browser_check",
    } <= set(NEUTRAL)


def test_blocker_really_blocks():
    proc = run_python(BLOCKER + "import torch")
    assert proc.returncode != 0 and "blocked: torch" in proc.stderr


def test_neutral_modules_import_without_frameworks(tmp_path):
    code = (
        BLOCKER
        + f"""
import importlib, json
for name in {NEUTRAL!r}:
    importlib.import_module(name)
from runners.workloads.registry import WORKLOADS
from runners.weights.canonical import save_weights, load_weights
cfg = WORKLOADS['fourcastnet-tiny'].model
save_weights({str(tmp_path / "w.safetensors")!r}, cfg, cfg.init_weights(0))
load_weights({str(tmp_path / "w.safetensors")!r}, cfg)
from runners.cli import main
assert main(['workloads']) == 0
assert not any(m.split('.')[0] in ('torch', 'mindspore') for m in sys.modules)
print('isolated')
"""
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("isolated")


def test_a_framework_runner_reports_a_missing_framework_cleanly(tmp_path):
    """With torch absent, a torch run becomes an 'unavailable' record with the reason."""
    code = (
        BLOCKER
        + f"""
from runners.experiments.pair import run_pair
from runners.options import PairOptions
out = run_pair(PairOptions(frameworks=('torch',), results_dir={str(tmp_path)!r}, seed=1,
                           train_steps=1, forward_steps=1, warmup_steps=0), progress=lambda s: None)
print(out.records[0]['status'], out.records[0]['reason'])
"""
    )
    # The blocker lives in this interpreter only; the worker subprocess must be blocked too.
    sitecustomize = tmp_path / "site" / "sitecustomize.py"
    sitecustomize.parent.mkdir()
    sitecustomize.write_text(BLOCKER)
    env_code = (
        f"import os; os.environ['PYTHONPATH'] = {str(sitecustomize.parent)!r} + os.pathsep + os.environ['PYTHONPATH']\n"
    )
    proc = run_python(env_code + code)
    assert proc.returncode == 0, proc.stderr
    status, reason = proc.stdout.strip().split(" ", 1)
    assert status == "unavailable"
    assert "blocked: torch" in reason
    assert os.path.exists(tmp_path / "records.jsonl")
