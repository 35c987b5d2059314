"""The record schema: one identity for every writer and reader, validation on write and read (with the line
and field named), version-1 refusal, property-based fuzzing of records, and every command's results file."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from conftest import IDENTITY_DEFAULTS, needs_both, needs_torch, run_python, run_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.build import write_report
from reports.pairing import pair_records
from reports.tables import ratios_table, runs_table
from runners.errors import PairbenchError
from runners.records import schema
from runners.records.store import append_record, read_records, read_records_lenient, set_aside_torn_tail


def cli(*args: str):
    return run_python(f"import sys; from runners.cli import main; sys.exit(main({list(args)!r}))", timeout=900)


def test_every_identity_field_changes_the_fingerprint():
    base = run_record("torch")
    changed = {
        "model": {"embed_dim": 32}, "weights_sha256": "b" * 64, "seed": 2, "data": {"generator": "other"},
        "hyper_parameters": {"lr": 1e-3}, "batch_size": 4, "precision": "fp16", "mode": "compiled",
        "recompute": True, "threads": 1, "warmup_steps": 0, "train_steps": 5, "forward_steps": 4, "objective": "masked",
        "nproc": 2,
    }  # fmt: skip
    assert set(changed) == set(schema.IDENTITY_FIELDS) - {"task"}
    for field, value in changed.items():
        other = run_record("torch", **{field: value})
        assert other["workload_fingerprint"] != base["workload_fingerprint"], field
    # Where a run happened is what a report compares, not part of the work.
    assert run_record("mindspore", "cuda:0")["workload_fingerprint"] == base["workload_fingerprint"]
    with pytest.raises(TypeError, match="mode"):
        schema.identity("run", **{k: v for k, v in IDENTITY_DEFAULTS.items() if k != "mode"})


def test_a_run_whose_identity_cannot_be_recorded_never_starts(tmp_path):
    from runners.experiments.pair import run_pair
    from runners.options import PairOptions

    opts = PairOptions(results_dir=tmp_path, seed=1, frameworks=("torch",), model={"sparsity_threshold": math.inf})
    with pytest.raises(schema.RecordError, match=r"^model = .*'sparsity_threshold': inf.* cannot be recorded"):
        run_pair(opts)
    assert not any(tmp_path.iterdir())


def test_a_bad_record_is_refused_on_read_naming_the_line_and_the_field(tmp_path):
    path = tmp_path / "records.jsonl"
    good = run_record("torch")
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "step_ms"}, "field 'step_ms' is missing"),
        "mistyped": ({**good, "batch_size": "2"}, "field 'batch_size' is '2', not an integer"),
        "unknown": ({**good, "colour": "red"}, "field 'colour' is not a field of a run record"),
        "tampered": ({**good, "mode": "compiled"}, "'workload_fingerprint' does not match the record's identity"),
        "bad choice": ({**good, "power_provenance": "guessed"}, "field 'power_provenance' is 'guessed', not one of"),
        "no reason": ({**run_record("torch", status="failed", reason="x"), "reason": ""}, "must say why"),
    }
    for name, (record, message) in cases.items():
        path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
        with pytest.raises(PairbenchError, match=f"records.jsonl line 2: .*{message}"):
            read_records(path)
        records, skipped = read_records_lenient(path)
        assert len(records) == 1 and len(skipped) == 1 and message in skipped[0], name
    with pytest.raises(schema.RecordError, match="field 'step_ms' is missing"):
        append_record(tmp_path / "other.jsonl", cases["missing"][0])
    assert not (tmp_path / "other.jsonl").exists()  # refused before anything was written


def test_version_1_files_are_refused_with_the_version_named(tmp_path):
    v1 = {k: v for k, v in run_record("torch").items() if k not in ("nproc", "data")}
    v1.update(schema_version=1, data_generator="synthetic-normal-advect-east/1")
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(v1) + "\n")
    with pytest.raises(PairbenchError, match="line 1: it is a schema version 1 record: version 1 left mode"):
        write_report([path], tmp_path / "r.html")
    _, skipped = read_records_lenient(path)
    assert "schema version 1" in skipped[0]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_GOOD = run_record("torch")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drop=st.lists(st.sampled_from(sorted(_GOOD)), max_size=3),
    put=st.dictionaries(st.sampled_from([*sorted(_GOOD), "extra", "power_x", "rmse_u_6h"]), _JSON, max_size=3),
)
def test_fuzzed_records_are_accepted_only_when_valid(drop, put):
    """Any mutation of a valid record is either still valid or refused with RecordError: never another
    exception, and never a record holding NaN or Inf."""
    record = {k: v for k, v in _GOOD.items() if k not in drop}
    record.update(put)
    try:
        out = schema.validate(record)
    except schema.RecordError as exc:
        assert str(exc)
        return
    json.dumps(out, allow_nan=False)  # what validate() accepts can always be written
    assert out["workload_fingerprint"] == schema.fingerprint(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.one_of(
            st.just(json.dumps(_GOOD)),
            st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
            _JSON.map(lambda v: json.dumps(v)),
            st.just(json.dumps(_GOOD)[: len(json.dumps(_GOOD)) // 2]),  # a torn line
        ),
        max_size=5,
    )
)
def test_any_results_file_is_read_without_a_crash(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "records.jsonl"
    path.write_text("\n".join(ln.replace("\n", " ") for ln in lines) + "\n", encoding="utf-8", errors="replace")
    records, skipped = read_records_lenient(path)
    assert all(r == _GOOD for r in records)
    assert len(records) + len(skipped) == sum(1 for ln in path.read_text().split("\n") if ln.strip())
    if skipped:
        with pytest.raises(PairbenchError, match="line"):
            read_records(path)


def test_a_torn_tail_is_set_aside_and_reported_never_glued_to(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, _GOOD)
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(whole[: len(whole) // 2])  # a run killed in the middle of its write
    said = []
    append_record(path, _GOOD, warn=said.append)
    assert read_records(path) == [_GOOD, _GOOD]  # both whole records, nothing glued or lost
    assert (tmp_path / "records.jsonl.torn").read_bytes() == whole[: len(whole) // 2] + b"\n"
    assert len(said) == 1 and "without its newline" in said[0] and "records.jsonl.torn" in said[0]
    with open(path, "ab") as fh:
        fh.write(json.dumps(_GOOD).encode())  # a whole record that lacks only its newline is completed
    assert set_aside_torn_tail(path) is None and read_records(path) == [_GOOD] * 3
    with open(path, "ab") as fh:
        fh.write(b'{"step_ms": [1.0, 2')
    assert "moved to" in set_aside_torn_tail(path) and read_records(path) == [_GOOD] * 3
    assert (tmp_path / "records.jsonl.torn").read_bytes().count(b"\n") == 2  # appended: nothing set aside is lost
    assert set_aside_torn_tail(tmp_path / "absent.jsonl") is None and not (tmp_path / "absent.jsonl").exists()


def test_a_run_on_a_torn_file_says_what_it_set_aside(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(_GOOD) + "\n" + '{"torn"')
    proc = cli("run", "--frameworks", "torch", "--nproc", "0", "--results-dir", str(tmp_path))
    assert proc.returncode == 2 and "moved to" in proc.stderr and "records.jsonl.torn" in proc.stderr
    assert read_records(path) == [_GOOD]


def test_pairing_never_pairs_across_modes_recompute_or_threads():
    recs = [
        run_record("torch", mode="compiled", steps=[5.0] * 20),
        run_record("torch", steps=[10.0] * 20),
        run_record("mindspore", steps=[20.0] * 20),
        run_record("torch", recompute=True, steps=[13.0] * 20),
        run_record("mindspore", threads=1, steps=[30.0] * 20),
    ]
    p = pair_records(recs)
    assert len(p.groups) == 4 and [len(g.runs) for g in p.groups] == [1, 2, 1, 1]
    ratios = ratios_table(p)
    step = ratios[ratios.metric == "train step time"]
    assert list(step.setting) == ["fp32, eager, batch 2, seed 1"] and step.ratio.iloc[0] == pytest.approx(2.0)
    assert len(runs_table(p)) == 5  # every run is shown
    assert any("mode ('compiled' vs 'eager')" in r or "mode (compiled vs eager)" in r for r in p.refusals)


def test_a_failure_redone_later_is_not_shown_as_failed():
    failed = run_record("torch", status="failed", reason="killed", timestamp="20261101T000000Z")
    redone = run_record("torch", timestamp="20261102T000000Z")
    later_failure = run_record("mindspore", status="failed", reason="oom", timestamp="20261103T000000Z")
    (g,) = pair_records([failed, redone, later_failure]).groups
    assert [r["reason"] for r in g.failed] == ["oom"]


@needs_both
def test_a_mixed_mode_sweep_pairs_like_with_like_and_shows_every_run(tmp_path):
    common = ["--no-skill", "--seed", "7", "--threads", "1", "--train-steps", "2", "--forward-steps", "2"]
    common += ["--warmup-steps", "1", "--results-dir", str(tmp_path)]
    proc = cli("run", "--mode", "eager,compiled", *common)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # MindSpore's CPU graph mode is refused
    proc = cli("run", "--recompute", *common, "--report", str(tmp_path / "all.html"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = read_records(tmp_path / "records.jsonl")  # every line validates
    runs = [(r["framework"], r["mode"], r["recompute"], r["status"]) for r in records if r["record_type"] == "run"]
    assert runs == [
        ("torch", "eager", False, "ok"), ("mindspore", "eager", False, "ok"),
        ("torch", "compiled", False, "ok"), ("mindspore", "compiled", False, "unsupported"),
        ("torch", "eager", True, "ok"), ("mindspore", "eager", True, "ok"),
    ]  # fmt: skip
    p = pair_records(records)
    assert len(p.groups) == 3
    for g in p.groups:  # each group holds one setting only
        assert len({(r["mode"], r["recompute"]) for r in g.runs.values()}) == 1
    ratios = ratios_table(p)
    step = ratios[ratios.metric == "train step time"]
    assert sorted(step.setting) == [
        "fp32, eager, batch 2, seed 7, 1 thread",
        "fp32, eager, batch 2, seed 7, recompute, 1 thread",
    ]
    table = runs_table(p)
    assert sorted(zip(table.framework, table["mode"], table.recompute, strict=True)) == sorted(
        (fw, mode, rc) for fw, mode, rc, status in runs if status == "ok"
    )
    (md,) = write_report([tmp_path], tmp_path / "r.md", "md")
    text = md.read_text()
    assert "compiled" in text and "| fp32, eager, batch 2, seed 7, recompute, 1 thread |" in text


def _parity_fixture(tmp_path):
    from runners.experiments.pair import run_pair
    from runners.options import PairOptions

    out = run_pair(
        PairOptions(results_dir=tmp_path, seed=3, warmup_steps=0, train_steps=1, forward_steps=1),
        progress=lambda s: None,
    )
    assert out.comparison["verdict"] == "pass"
    return out


def _reparity(out, edit):
    """Parity recomputed after ``edit(framework, arrays)`` changed a worker's saved arrays."""
    from runners.experiments.pair import parity
    from runners.workloads.registry import get_workload

    results = {}
    for fw in ("torch", "mindspore"):
        path = out.run_dir / f"{fw}.npz"
        arrays = dict(np.load(path))
        edit(fw, arrays)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        rec = next(r for r in out.records if r["framework"] == fw)
        results[fw] = {"losses": rec["losses"], "loss_initial": rec["loss_initial"]}
    spec = get_workload(rec["workload"])
    return parity({fw: out.run_dir for fw in results}, "torch", "mindspore", results, spec, rec)


@needs_both
def test_a_nan_gradient_or_a_gradient_on_one_side_only_fails_parity_naming_the_parameter(tmp_path):
    out = _parity_fixture(tmp_path)
    name = "blocks.1.filter.w2"  # sorted after most parameters: a NaN here used to pass unseen

    def nan(fw, arrays):
        if fw == "mindspore":
            arrays[f"grad/{name}"] = np.where(np.arange(arrays[f"grad/{name}"].size) == 3, np.nan, 1.0).reshape(
                arrays[f"grad/{name}"].shape
            )

    p = _reparity(out, nan)
    assert p["verdict"] == "fail" and p["nonfinite"] == [f"gradient of {name}"] and p["within_tolerance"] is False
    assert p["gradient_max_rel_l2"] is not None and math.isfinite(p["gradient_max_rel_l2"])

    def torch_has_none(fw, arrays):  # the parameter disconnected in PyTorch only: no .grad there
        if fw == "torch":
            arrays.pop("grad/blocks.0.norm1.weight")

    p = _reparity(out, torch_has_none)
    assert p["verdict"] == "fail" and p["gradient_mismatch"] == ["blocks.0.norm1.weight (no gradient in torch)"]

    def mindspore_has_none(fw, arrays):  # disconnected in MindSpore only: it returns zeros
        if fw == "mindspore":
            arrays["grad/blocks.0.mlp.fc1.bias"] = np.zeros_like(arrays["grad/blocks.0.mlp.fc1.bias"])

    p = _reparity(out, mindspore_has_none)
    assert "blocks.0.mlp.fc1.bias (no gradient in mindspore)" in p["gradient_mismatch"] and p["verdict"] == "fail"


@needs_both
def test_data_parallel_records_validate_and_honour_weights_threads_and_batches(tmp_path):
    from runners.weights.canonical import save_weights, weights_digest
    from runners.workloads.registry import get_workload

    cfg = get_workload("fourcastnet-tiny").model
    weights = cfg.init_weights(99)
    save_weights(tmp_path / "w.safetensors", cfg, weights)
    proc = cli(
        "run", "--nproc", "2", "--frameworks", "torch", "--batch-size", "2,4", "--threads", "1", "--train-steps",
        "2", "--warmup-steps", "0", "--weights", str(tmp_path / "w.safetensors"), "--results-dir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = read_records(tmp_path / "records.jsonl")
    assert [(r["record_type"], r["batch_size"], r["nproc"], r["threads"]) for r in records] == [
        ("data_parallel", 2, 2, 1), ("data_parallel", 4, 2, 1),
    ]  # fmt: skip
    assert {r["weights_sha256"] for r in records} == {weights_digest(weights)}
    assert all(r["status"] == "ok" and r["loss_max_rel_diff"] <= 1e-5 for r in records)
    assert (tmp_path / "report.html").is_file() and "Data parallel" in (tmp_path / "report.html").read_text()


@needs_torch
def test_skill_records_validate(tmp_path):
    from runners.experiments.skill import run_skill
    from runners.options import SkillOptions

    summary = run_skill(
        SkillOptions(frameworks=("torch",), train_steps=2, n_init=2, n_lead=2, seed=1, results_dir=tmp_path),
        progress=lambda s: None,
    ).summary
    (rec,) = read_records(tmp_path / "records.jsonl")
    assert rec["record_type"] == "skill" and rec["status"] == "ok" and rec == summary["records"][0]
    assert rec["data"]["n_lead"] == 2 and len(rec["data"]["test_inits"]) == 2


class _SlowRunner:
    """A runner whose input transfer and training step take known times; losses as given."""

    def __init__(self, losses=None, put_s=0.02, step_s=0.01):
        self.losses, self.put_s, self.step_s, self.calls = losses, put_s, step_s, 0

    def put(self, a):
        import time

        time.sleep(self.put_s)
        return a

    def train_step(self, *inputs):
        import time

        time.sleep(self.step_s)
        self.calls += 1
        return self.losses[self.calls - 1] if self.losses else 1.0

    def synchronize(self):
        pass

    def device_memory(self):
        return {"device_peak_mem_mb": None, "device_peak_mem_reason": "CPU"}


def _timed(runner, steps=5, **kw):
    from runners.execution.tasks import timed_training
    from runners.spec import RunConfig

    run = RunConfig(workload="fourcastnet-tiny", framework="torch", weights="", warmup_steps=1, **kw)
    batch = lambda i: (np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32))  # noqa: E731
    return timed_training(run, runner, batch, steps, samples_per_step=2)


def _events_around_the_window(monkeypatch, runner: _SlowRunner) -> list[str]:
    """What happened in order: the runner's transfers and steps, and the power window's opening and closing."""
    import runners.execution.window as window

    events: list[str] = []
    real = window.window_collector

    class Watched:
        def __init__(self, run):
            self.inner = real(run)

        def start(self):
            events.append("open")
            return self.inner.start()

        def stop(self):
            events.append("close")
            return self.inner.stop()

    monkeypatch.setattr(window, "window_collector", Watched)
    put, step = runner.put, runner.train_step
    runner.put = lambda a: events.append("put") or put(a)
    runner.train_step = lambda *a: events.append("step") or step(*a)
    return events


def test_the_power_window_holds_the_timed_steps_only(monkeypatch):
    events = _events_around_the_window(monkeypatch, runner := _SlowRunner())
    out = _timed(runner)
    assert out["power_window"] == "timed steps" and len(out["step_ms"]) == 5
    # The warm-up step (its input, then the step), the five timed steps' inputs staged before the window opens,
    # and only the five steps inside it: an order, not a timing.
    assert events == ["put", "put", "step"] + ["put", "put"] * 5 + ["open"] + ["step"] * 5 + ["close"], events
    assert out["power_window_s"] >= sum(out["step_ms"]) / 1e3  # the window holds the steps it timed
    assert min(out["input_ms"]) >= 20.0
    import runners.execution.tasks as tasks

    monkeypatch.setattr(tasks, "STAGE_BYTES", 0)  # inputs too large to stage: prepared inside, and said so
    events.clear()
    out = _timed(runner)
    assert out["power_window"] == "timed steps with their input generation and transfer"
    assert events == ["put", "put", "step", "open"] + ["put", "put", "step"] * 5 + ["close"], events
    assert out["power_window_s"] >= (sum(out["step_ms"]) + sum(out["input_ms"])) / 1e3


def test_a_non_finite_loss_fails_the_run_naming_the_step():
    with pytest.raises(FloatingPointError, match="training loss became nan at step 3"):
        _timed(_SlowRunner(losses=[1.0, 0.9, 0.8, float("nan"), 0.7, 0.6], put_s=0, step_s=0))


def test_a_result_that_cannot_be_recorded_becomes_a_failed_record_not_a_crash():
    from runners.experiments.runs import recorded

    head = {k: v for k, v in run_record("torch").items() if k not in ("framework", "status")}
    head = {k: v for k, v in head.items() if k in {f.name for f in schema.FIELDS["run"] if f.need == "always"}}
    result = {"status": "ok"}
    rec = recorded(head, "torch", result, lambda: {"step_ms_p50": float("inf")})
    assert rec["status"] == "failed" and rec["reason"].startswith("the worker's result cannot be recorded: field")
    assert result["status"] == "failed"  # nothing built on it (parity) follows
    rec = recorded(head, "torch", {"status": "ok"}, lambda: {}[("step_ms")])
    assert rec["status"] == "failed" and "field 'step_ms'" in rec["reason"]


def test_console_parity_lines_count_steps_and_never_print_nan():
    from reports.console import parity_lines

    p = run_record("torch")
    parity = {
        **{k: p[k] for k in schema.IDENTITY_FIELDS}, "other": "mindspore", "reference": "torch",
        "forward_rel_l2": None, "gradient_max_rel_l2": 2e-5, "gradient_worst_parameter": "w", "loss_max_rel": 1e-6,
        "loss_rel_per_step": [0.0] * 24, "nonfinite": ["forward output"], "gradient_missing": ["norm.weight"],
        "gradient_mismatch": [], "tolerances": None, "bounds_source": "bounds not established: no bf16 ...",
        "within_tolerance": False, "verdict": "fail",
    }  # fmt: skip
    text = "\n".join(parity_lines(parity))
    assert "losses (first + 23 Adam steps)" in text and not re.search(r"\bnan\b", text)  # as Python prints NaN
    assert "forward output, relative L2       no value" in text
    assert "difference not finite (NaN, Inf, or a zero reference): forward output" in text
    assert "FAIL" in text and "no gradient in either framework (not compared): norm.weight" in text


@needs_both
def test_resume_skips_only_the_same_run(tmp_path):
    from runners.experiments.pair import run_pair
    from runners.options import PairOptions

    def pair(**kw):
        kw = {"frameworks": ("torch", "mindspore"), "resume": True, **kw}
        opts = PairOptions(results_dir=tmp_path, seed=5, warmup_steps=0, train_steps=1, forward_steps=1, **kw)
        lines = []
        out = run_pair(opts, progress=lines.append)
        return out, [ln for ln in lines if "skipped (--resume)" in ln]

    first, skipped = pair(frameworks=("torch",))
    assert skipped == [] and first.records[0]["status"] == "ok"
    with open(tmp_path / "records.jsonl", "a") as fh:
        fh.write('{"torn": ')  # a run killed mid-write: set aside (kept beside the file), never glued to
    second, skipped = pair()  # torch is the same run: skipped; MindSpore runs, and the pair gets its parity
    assert [s.split("]")[0] for s in skipped] == ["[torch"] and second.comparison["verdict"] == "pass"
    assert second.records[0] == first.records[0]
    assert (tmp_path / "records.jsonl.torn").read_text() == '{"torn": \n'
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    third, skipped = pair()  # all done: nothing runs, no new folder, no copy of the weights, the recorded parity
    assert len(skipped) == 2 and sorted(p for p in tmp_path.iterdir() if p.is_dir()) == folders
    assert third.records == second.records and third.comparison_record == second.comparison_record
    for changed in ({"recompute": True}, {"threads": 1}):  # another identity: nothing is skipped
        _, skipped = pair(**changed)
        assert skipped == [], changed
    kinds = [(r["record_type"], r.get("framework")) for r in read_records_lenient(tmp_path / "records.jsonl")[0]]
    assert (
        kinds
        == [("run", "torch"), ("run", "mindspore"), ("parity", None)]
        + [("run", "torch"), ("run", "mindspore"), ("parity", None)] * 2
    )
    # Each framework done alone, in runs of their own: the pair has no parity record yet. Resuming the pair
    # computes it from the two runs' arrays (no run, no folder) and records it once.
    alone = {"batch_size": 1}
    pair(frameworks=("torch",), **alone)
    pair(frameworks=("mindspore",), **alone)
    before = len(read_records_lenient(tmp_path / "records.jsonl")[0])
    fourth, skipped = pair(**alone)
    assert len(skipped) == 2 and fourth.comparison["verdict"] == "pass"
    assert fourth.comparison_record["record_type"] == "parity"
    assert len(read_records_lenient(tmp_path / "records.jsonl")[0]) == before + 1
    fifth, _ = pair(**alone)
    assert fifth.comparison_record == fourth.comparison_record
    assert len(read_records_lenient(tmp_path / "records.jsonl")[0]) == before + 1
    # A run done alone whose arrays are gone (its folder moved): it runs again, and the pair is compared from the new
    # arrays; never a traceback after the other framework's record.
    gone = {"batch_size": 3}
    sixth, _ = pair(frameworks=("torch",), **gone)
    (tmp_path / sixth.records[0]["run_id"] / "torch.npz").unlink()
    said = []
    seventh = run_pair(
        PairOptions(results_dir=tmp_path, seed=5, warmup_steps=0, train_steps=1, forward_steps=1, resume=True, **gone),
        progress=said.append,
    )
    assert any("arrays of torch's run" in line and "running it again" in line for line in said), said
    assert seventh.comparison["verdict"] == "pass" and seventh.records[0]["run_id"] != sixth.records[0]["run_id"]


def test_parity_of_each_device_is_shown_and_failures_print_no_nan():
    from reports.console import run_table
    from reports.tables import parity_table

    base = {k: v for k, v in run_record("torch").items() if k in schema.IDENTITY_FIELDS or k == "workload"}
    head = schema.header(
        schema.identity("run", **{k: v for k, v in base.items() if k not in ("task", "workload")}),
        run_id="r", timestamp="20261202T000000Z", workload="fourcastnet-tiny", device="cpu", commit=None,
    )  # fmt: skip
    found = {
        "other": "mindspore", "reference": "torch", "forward_rel_l2": 1e-7, "gradient_max_rel_l2": 1e-7,
        "gradient_worst_parameter": "w", "loss_max_rel": 1e-7, "loss_rel_per_step": [0.0], "nonfinite": [],
        "gradient_missing": [], "gradient_mismatch": [], "tolerances": None, "bounds_source": "x",
        "within_tolerance": True, "verdict": "pass",
    }  # fmt: skip
    cpu = schema.record(head, "parity", **found)
    gpu = schema.record({**head, "device": "cuda:0"}, "parity", **{**found, "verdict": "fail"})
    table = parity_table(pair_records([run_record("torch"), cpu, gpu]))
    assert sorted(zip(table.device, table.verdict, strict=True)) == [("cpu", "pass"), ("cuda:0", "fail")]
    text = run_table([run_record("torch"), run_record("mindspore", status="failed", reason="loss became nan")])
    assert "NaN" not in text and "failed: loss became nan" in text


def test_data_parallel_without_its_reference_still_records():
    from runners.experiments import distributed
    from runners.experiments.data_parallel import DataParallel
    from runners.options import DataParallelOptions

    opts = DataParallelOptions(nproc=2, batch_size=4, train_steps=1, warmup_steps=0, seed=1, threads=1)
    head = schema.header(
        DataParallel().points(opts, print)[0].ident,
        run_id="r", timestamp="20261202T000000Z", workload="fourcastnet-tiny", device="cpu", commit=None,
    )  # fmt: skip
    head["weights_source"] = "x"
    out = distributed.summarize_ranks(
        {r: {"step_ms": [1.0, 2.0], "losses": [1.0], "params_digest": "a", "threads": "1", "framework_version": "x"}
         for r in (0, 1)},
        global_batch=4,
    )  # fmt: skip
    rec = distributed.to_record({**out, "framework": "torch", "launcher": "torchrun", "status": "ok"}, head)
    assert rec["status"] == "ok" and "scaling_efficiency" not in rec
    broken = distributed.to_record({**out, "framework": "torch", "launcher": "torchrun", "status": "ok",
                                    "samples_per_s_total": "fast"}, head)  # fmt: skip
    assert broken["status"] == "failed" and "cannot be recorded: field 'samples_per_s_total'" in broken["reason"]


@needs_both
def test_a_killed_pairbench_takes_its_worker_with_it(tmp_path):
    """SIGKILL of `pairbench run` (which no handler can catch) must not leave its worker running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil
    from conftest import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen(
        [sys.executable, "-m", "runners.cli", "run", "--no-skill", "--frameworks", "torch", "--train-steps", "100000",
         "--results-dir", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline, workers = time.monotonic() + 120, []
    while time.monotonic() < deadline and not workers:
        time.sleep(0.5)
        workers = [p for p in psutil.Process(parent.pid).children() if "runners.execution.worker" in p.cmdline()]
    assert workers, "the worker never started"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_a_worker_watching_its_pairbench_dies_with_it_and_a_bad_name_is_ignored():
    """The lifeline of data-parallel ranks, which the launcher (not pairbench) starts: a process that names a
    pairbench in its environment is killed within seconds of that pairbench's death."""
    import subprocess
    import sys
    import time

    import psutil
    from conftest import ROOT

    from runners.execution.lifeline import PARENT_ENV, watch_parent

    middle = """
import os, subprocess, sys, time
from runners.execution.lifeline import PARENT_ENV, parent_token
watcher = "from runners.execution.lifeline import watch_parent as w; import time; w(interval_s=0.2); time.sleep(600)"
env = dict(os.environ, **{PARENT_ENV: parent_token()})
p = subprocess.Popen([sys.executable, "-c", watcher], env=env, start_new_session=True)
print(p.pid, flush=True)
time.sleep(600)
"""  # stands for pairbench: starts a watcher in a session of its own (as msrun does), then waits
    proc = subprocess.Popen(
        [sys.executable, "-c", middle], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    watcher = psutil.Process(int(proc.stdout.readline()))
    time.sleep(0.5)
    assert watcher.is_running()
    proc.kill()  # not reaped yet: a zombie, which has exited and counts as gone
    gone, alive = psutil.wait_procs([watcher], timeout=10)
    proc.wait()
    assert not alive  # (not our child: its exit status is not ours to read)
    for bad in ("", "abc", "12:", ":1.0", "12:1.5", "12:None"):
        assert watch_parent({PARENT_ENV: bad}) is False
    assert watch_parent({}) is False


@needs_torch
def test_killed_runs_leave_valid_records_and_resume_completes_the_sweep(tmp_path):
    """A few trials of scripts/crash_consistency.py (its 50-trial run is a benchmark): SIGKILL of the parent and
    of a worker at random moments, then the checks of the script (valid lines, nothing reported done missing,
    no worker left alive, --resume completes). At least one trial must have killed the parent and one a worker,
    as the script found from what happened (the parent's exit status, the worker gone after the signal), and no
    record may be lost. Seed 4 draws the kills at 24%, 10% and 40% of an uninterrupted sweep's time."""
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "crash_consistency.py"), "--trials", "3", "--frameworks", "torch",
         "--seed", "4", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3/3 trials consistent" in proc.stdout and "lost records: 0" in proc.stdout
    counts = re.search(r"killed the parent: (\d+), a worker: (\d+), nothing: (\d+)", proc.stdout)
    assert counts, proc.stdout
    parent, worker, nothing = map(int, counts.groups())
    assert parent + worker + nothing == 3 and parent >= 1 and worker >= 1, proc.stdout


def test_a_failure_reason_is_the_first_line_that_says_something():
    from runners.errors import first_line

    ms_style = "----------------------------------------------------\n- Kernel select failed:\n---\nOut of memory\n"
    assert first_line(ms_style) == "- Kernel select failed:"
    assert first_line("\n\n  RuntimeError text  \nmore") == "RuntimeError text"
    assert first_line("-----\n=====\n") == ""
