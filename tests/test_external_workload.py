"""A model family from another package joins through the `pairbench.workloads` entry point and gets the whole
suite: the registry, the command line (parity, timing, power, skill, report) and the asv grid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, needs_both

from runners.records.store import read_records

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "toy_family"


def _install(tmp_path: Path) -> Path:
    """pip-install the toy package (a copy, so that the build leaves nothing in the checkout) into a folder."""
    source, target = tmp_path / "src", tmp_path / "site"
    shutil.copytree(FIXTURE, source)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return target


def _pairbench(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    return subprocess.run(
        [sys.executable, "-m", "runners.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900
    )


@needs_both
def test_an_installed_family_runs_the_whole_suite(tmp_path):
    site = _install(tmp_path)
    listed = _pairbench(site, "workloads", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "toy-mlp" in {r["workload"] for r in json.loads(listed.stdout)} and "warning" not in listed.stderr
    results = tmp_path / "results"
    proc = _pairbench(site, "run", "--workload", "toy-mlp", "--train-steps", "5", "--results-dir", str(results))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "same weights and data): PASS" in proc.stdout and "RMSE persistence" in proc.stdout
    records = read_records(results / "records.jsonl")
    kinds = [(r["record_type"], r.get("framework"), r.get("status", "ok")) for r in records]
    assert kinds == [
        ("run", "torch", "ok"), ("run", "mindspore", "ok"), ("parity", None, "ok"),
        ("skill", "torch", "ok"), ("skill", "mindspore", "ok"),
    ]  # fmt: skip
    assert {r["workload"] for r in records} == {"toy-mlp"} and records[2]["verdict"] == "pass"
    assert records[0]["param_count"] == 115 and records[0]["model"]["hidden"] == 16
    assert (results / "report.html").is_file()
    # The asv suite's grid reads the same registry.
    code = "from benchmarks import common; print('toy-mlp' in common.training_workloads(), common.skill_workloads())"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.stdout.split()[0] == "True" and "'toy-mlp'" in out.stdout, out.stderr


_FAMILY = """
from runners.spec import WorkloadFamily
from runners.workloads.fourcastnet.config import CONFIGS
FAMILY = WorkloadFamily(name={name!r}, configs={{{workload!r}: CONFIGS["fourcastnet-tiny"]}},
                        models={{"torch": "a:B", "mindspore": "c:D"}}, descriptions={{{workload!r}: "d"}},
                        spec={spec!r}, skill=({workload!r},))
"""


@pytest.mark.parametrize(
    "module, warning",
    [
        ("", "entry point bad (badfam:FAMILY) cannot be loaded: AttributeError: module 'badfam' has no attribute"),
        ("raise SystemExit(3)", "entry point bad (badfam:FAMILY) cannot be loaded: SystemExit: 3"),
        ("FAMILY = 42", "entry point bad (badfam:FAMILY) is a int, not a WorkloadFamily"),
        (_FAMILY.format(name="evil", workload="evil-a", spec={"loss": "nope"}), "its workloads cannot be built"),
        (_FAMILY.format(name="fourcastnet", workload="evil-a", spec={}), "left out: the name fourcastnet is already"),
        (_FAMILY.format(name="evil", workload="fourcastnet-tiny", spec={}), "the name fourcastnet-tiny is already"),
    ],
)
def test_a_family_that_cannot_be_used_is_named_not_a_crash(tmp_path, module, warning):
    site = tmp_path / "site"
    info = site / "bad_family-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pairbench.workloads]\nbad = badfam:FAMILY\n")
    (site / "badfam.py").write_text(module)
    proc = _pairbench(site, "workloads")
    assert proc.returncode == 0 and "fourcastnet-tiny" in proc.stdout and "evil-a" not in proc.stdout, proc.stderr
    assert proc.stderr.startswith("pairbench: warning: ") and warning in proc.stderr, proc.stderr
    # Nothing of a left-out family reaches the asv grid, and asking for it says why it is unknown.
    code = "from benchmarks import common; print(common.skill_workloads(), 'evil-a' in common.training_workloads())"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert "evil-a" not in out.stdout.split("]")[0] and out.stdout.strip().endswith("False"), out.stderr
    run = _pairbench(site, "run", "--workload", "evil-a", "--results-dir", str(tmp_path / "r"))
    assert run.returncode == 2 and "unknown workload 'evil-a'" in run.stderr and warning in run.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        ({"descriptions": {}}, "workload 'toy-mlp' needs both a configuration and a description"),
        ({"models": {"torch": "x:Y"}}, "models must name a class for each of torch, mindspore"),
        ({"skill": ("other",)}, "skill names workloads it does not declare"),
        ({"infeasible": {("pair", "other", "cpu"): "no"}}, "budget or infeasibility for unknown (pair, other)"),
        ({"infeasible": {("pair", "toy-mlp", "gpu"): "no"}}, "unknown device kind 'gpu' for (pair, toy-mlp)"),
        ({"budgets": {("pair", "toy-mlp", "cpu"): {"lr": 1}}}, "a pair budget sets only warmup_steps"),
        ({"configs": {"toy-mlp": object()}}, "the configuration of toy-mlp lacks in_chans, out_chans"),
    ],
)
def test_a_family_declaration_is_checked(change, message):
    from runners.spec import WorkloadFamily
    from runners.workloads.registry import get_workload

    good = {
        "name": "toy", "configs": {"toy-mlp": get_workload("fourcastnet-tiny").model},
        "descriptions": {"toy-mlp": "d"}, "models": {"torch": "a:B", "mindspore": "c:D"},
    }  # fmt: skip
    WorkloadFamily(**good)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        WorkloadFamily(**{**good, **change})
