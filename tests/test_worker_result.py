"""A worker's result as declared (runners.execution.result): the parent reads whatever file a worker left without
crashing, and a file that is not a declared result becomes a failed result that says why."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from runners.execution.result import COMMON, TASK_FIELDS, read_result, result_problem


def _ok(task: str) -> dict:
    return {**{k: "x" for k in COMMON}, **{k: [] for k in TASK_FIELDS[task]}, "status": "ok", "task": task}


def test_a_declared_result_passes_and_each_missing_figure_is_named(tmp_path):
    for task in TASK_FIELDS:
        assert result_problem(_ok(task)) is None
        for name in TASK_FIELDS[task]:
            broken = {k: v for k, v in _ok(task).items() if k != name}
            assert result_problem(broken) == f"it lacks {name}"
    assert result_problem({"status": "failed", "reason": "boom"}) is None
    assert result_problem({"status": "failed"}) == "it failed without a reason"
    assert "not one of" in result_problem({"status": "fine"})
    assert "not one of" in result_problem({**_ok("pair"), "task": "dance"})
    assert "not one of" in result_problem({**_ok("pair"), "task": ["pair"]})  # unhashable: said, never a crash
    assert "not one of" in result_problem({"status": {"ok": 1}})


def test_a_cut_short_result_is_a_failed_result(tmp_path):
    path = tmp_path / "torch.json"
    path.write_text(json.dumps(_ok("forecast"))[:50])
    out = read_result(path)
    assert out["status"] == "failed" and "cannot be read" in out["reason"] and str(path) in out["reason"]
    path.write_text(json.dumps([1, 2]))
    assert read_result(path)["reason"].endswith("is not a result: it is list, not an object")
    path.write_text(json.dumps(_ok("forecast")))
    assert read_result(path) == _ok("forecast")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=8),
            lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
        ),
    )
)
def test_any_file_reads_as_a_result_or_a_failure(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("r") / "w.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    out = read_result(path)
    assert out["status"] in ("ok", "failed", "unsupported", "unavailable")
    assert out["status"] == "ok" or isinstance(out["reason"], str)
