"""The experiment skeleton (runners.experiments.skeleton): every experiment's points keep the identities, and so
the fingerprints, that its options gave before the skeleton existed; a plan is checked whole before anything runs;
a point's records are appended as each framework ends, and nothing is compared that did not run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.errors import PairbenchError
from runners.experiments.data_parallel import DataParallel
from runners.experiments.forecast import Forecast
from runners.experiments.pair import Pair
from runners.experiments.skeleton import Experiment, Point, expand, run_point
from runners.experiments.skill import Skill
from runners.options import DataParallelOptions, ForecastOptions, PairOptions, SkillOptions
from runners.records import schema
from runners.records.store import read_records

# Identities (with their fingerprints) that these options gave at commit 23c8e81, before the skeleton: the
# experiments' own code computed them then (captured by replacing the step that opens the run folder).
STORED = json.loads((Path(__file__).parent / "fixtures" / "identities.json").read_text())

CASES = {
    "pair-fp32": (Pair, PairOptions(seed=11, train_steps=4, forward_steps=3, warmup_steps=1)),
    "pair-bf16-b4": (Pair, PairOptions(seed=12, precision="bf16", batch_size=4, threads=2)),
    "pair-aigoms-masked": (Pair, PairOptions(workload="aigoms-tiny", seed=13, objective="masked")),
    "pair-dft": (Pair, PairOptions(seed=14, model={"spectral_transform": "dft"}, mode="compiled")),
    "forecast": (Forecast, ForecastOptions(seed=21, n_lead=3, repeats=2, batch_size=2)),
    "forecast-aigoms": (Forecast, ForecastOptions(workload="aigoms-tiny", seed=22, precision="fp16")),
    "skill": (Skill, SkillOptions(seed=31, train_steps=7, n_init=2, n_lead=3, lr=1e-3)),
    "skill-target": (
        Skill,
        SkillOptions(seed=32, train_steps=9, n_init=2, n_lead=2, target_rmse="u@24h=0.5", check_every=3),
    ),
    "data-parallel": (DataParallel, DataParallelOptions(nproc=2, batch_size=8, train_steps=3, warmup_steps=1, seed=41)),
}


def test_the_cases_cover_every_stored_identity():
    assert set(CASES) == set(STORED)


@pytest.mark.parametrize("name", sorted(CASES))
def test_identities_and_fingerprints_are_unchanged(name, tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # data parallel's threads per rank: a share of the cores
    experiment, opts = CASES[name]
    opts.results_dir = tmp_path
    opts.validate()
    (point,) = experiment().points(opts, progress=lambda s: None)
    assert point.ident == STORED[name]
    assert (
        schema.fingerprint({k: v for k, v in point.ident.items() if k in schema.IDENTITY_FIELDS})
        == (STORED[name]["workload_fingerprint"])
    )
    assert not any(tmp_path.iterdir())  # making the points writes nothing


def test_a_plan_is_checked_whole_before_anything_runs():
    made = []

    def make(**point):
        made.append(point)
        return PairOptions(**point)

    with pytest.raises(PairbenchError, match="precision"):
        expand(make, precision=("fp32", "fp64"), mode=("eager",))
    assert [p["precision"] for p in made] == ["fp32", "fp64"]
    plan = expand(PairOptions, precision=("fp32", "bf16"), batch_size=(1, 2))
    assert [(o.precision, o.batch_size) for o in plan] == [("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)]


class _Failing(Experiment):
    """Every framework's worker fails: records are still written, one per framework, and nothing is compared."""

    def __init__(self):
        self.compared = self.finished_with = None
        self.ran = []

    def points(self, opts, progress):
        return Pair().points(opts, progress)

    def announce(self, framework, point, opts):
        return f"[{framework}] go"

    def execute(self, run, prefix, opts, progress):
        self.ran.append((run.framework, prefix.name, run.task))
        return {"status": "failed", "reason": f"{run.framework} broke"}

    def compare(self, point, run_dir, head, results):
        self.compared = results
        raise AssertionError("nothing ran to compare")

    def finish(self, outcome, point, run_dir):
        self.finished_with = outcome


def test_a_point_records_each_framework_and_compares_only_what_ran(tmp_path):
    exp = _Failing()
    opts = PairOptions(seed=3, results_dir=tmp_path)
    (point,) = exp.points(opts, lambda s: None)
    said = []
    outcome = run_point(exp, opts, point, said.append)
    assert exp.ran == [("torch", "torch", "pair"), ("mindspore", "mindspore", "pair")]
    assert said == [
        "[torch] go",
        "[torch] failed: torch broke",
        "[mindspore] go",
        "[mindspore] failed: mindspore broke",
    ]
    on_file = read_records(tmp_path / "records.jsonl")
    assert on_file == outcome.records and [r["reason"] for r in on_file] == ["torch broke", "mindspore broke"]
    assert all(r["workload_fingerprint"] == point.ident["workload_fingerprint"] for r in on_file)
    assert exp.compared is None and outcome.comparison is None and not outcome.ok
    assert exp.finished_with is outcome and outcome.run_dir.parent == tmp_path
    assert (outcome.run_dir / "weights.safetensors").is_file()


def test_a_point_keeps_the_runs_already_done(tmp_path):
    exp = _Failing()
    opts = PairOptions(seed=3, results_dir=tmp_path)
    (point,) = exp.points(opts, lambda s: None)
    earlier = {"framework": "torch", "run_id": "earlier", "status": "ok"}
    said = []
    outcome = run_point(exp, opts, point, said.append, done={"torch": earlier})
    assert exp.ran == [("mindspore", "mindspore", "pair")] and outcome.records[0] is earlier
    assert said[0] == "[torch] already done in earlier: skipped (--resume)"
    assert [r["framework"] for r in read_records(tmp_path / "records.jsonl")] == ["mindspore"]


def test_every_experiment_supplies_what_differs():
    for exp in (Pair, Forecast, Skill, DataParallel):
        own = {name for name in ("points", "announce", "fields", "execute", "record", "compare") if name in vars(exp)}
        assert {"points", "announce"} <= own, exp
        assert isinstance(exp.task, str)
    assert Point.__dataclass_fields__.keys() >= {"spec", "name", "ident", "tensors", "head", "worker_data"}
