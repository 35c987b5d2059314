"""How quiet the machine was (metrics/load.py): /proc/stat read defensively, the verdict's thresholds, and a real
CPU burner beside a timed window seen as busy."""

from __future__ import annotations

import math
import multiprocessing
import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics.load import (
    BUSY_OTHER_CPU,
    UNSTABLE_CV,
    CpuTimes,
    LoadWatch,
    coefficient_of_variation,
    parse_proc_stat,
    verdict,
)

STAT = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\n"


def test_proc_stat_aggregate_line_in_seconds():
    t = parse_proc_stat(STAT, ticks_per_s=100)
    assert t == CpuTimes(total=10.0, idle=8.5, steal=0.0)
    # Only the CPUs this process may run on (a container's two of the host's many): their own lines, summed.
    two = STAT + "cpu1 50 0 25 400 25 0 0 7 0 0\n"
    assert parse_proc_stat(two, 100, cpus={0, 1}) == CpuTimes(total=10.07, idle=8.5, steal=0.07)
    assert parse_proc_stat(two, 100, cpus={1}) == CpuTimes(total=5.07, idle=4.25, steal=0.07)
    assert parse_proc_stat(two, 100, cpus={0, 5}) is None  # a CPU it may use that /proc/stat does not list
    old_kernel = parse_proc_stat("cpu 1 2 3 4\n", 1)  # before iowait and steal existed
    assert old_kernel == CpuTimes(10.0, 4.0, 0.0)


@pytest.mark.parametrize("text", ["", "cpu0 1 2 3 4\n", "cpu 1 2 x 4\n", "cpu 1 2\n", "cpu -1 2 3 4 5\n"])
def test_unreadable_proc_stat_is_none(text):
    assert parse_proc_stat(text, 100) is None


@given(st.text(max_size=300))
def test_any_proc_stat_text_parses_or_is_none(text):
    t = parse_proc_stat(text, 100)
    assert t is None or (t.total >= t.idle >= 0 and t.steal >= 0)


def test_verdict_thresholds_and_what_was_unreadable():
    assert verdict(0.01, 0.0, 0, 0.02)[0] == "quiet"
    name, why = verdict(BUSY_OTHER_CPU + 0.01, 0.0, 0, 0.02)
    assert name == "busy" and "other processes used 11%" in why
    assert verdict(0.0, 0.2, None, 0.0)[0] == "busy"
    assert verdict(0.0, 0.0, 3, 0.0) == ("busy", "the CPU was thermally throttled 3 time(s)")
    name, why = verdict(0.0, 0.0, 0, UNSTABLE_CV + 0.05)
    assert name == "unstable" and "vary by 15%" in why
    name, why = verdict(None, None, None, 0.01)  # nothing says the machine was quiet: never called so
    assert name == "unknown" and why.startswith("other processes' CPU time could not be read")
    assert verdict(0.0, None, None, 0.01) == (
        "quiet", "nothing else ran and the timed samples vary by 1.0% of their mean (steal time unreadable)"
    )  # fmt: skip


def test_coefficient_of_variation_ignores_non_finite_and_needs_two():
    assert coefficient_of_variation([1.0]) is None
    assert coefficient_of_variation([2.0, 2.0, float("nan")]) == 0.0
    assert coefficient_of_variation([1.0, 3.0]) == pytest.approx(math.sqrt(2) / 2)


def test_a_watch_with_fake_counters_gives_other_processes_share():
    stats = iter([CpuTimes(100.0, 50.0, 0.0), CpuTimes(110.0, 52.0, 1.0)])  # 10 s of CPU: 2 idle, 1 stolen
    own = iter([5.0, 8.0])  # this process: 3 s of it
    w = LoadWatch(read_stat=lambda: next(stats), own_cpu=lambda: next(own), throttle=lambda: None)
    w.start()
    rec = w.stop([10.0, 10.0, 10.0])
    assert rec["load_other_cpu_frac"] == pytest.approx(0.4) and rec["load_steal_frac"] == pytest.approx(0.1)
    assert rec["load_verdict"] == "busy" and rec["load_cv"] == 0.0
    assert rec["load_throttle_events"] is None and "no thermal throttle counters" in rec["load_reason"]


def test_unreadable_counters_are_none_never_zero():
    w = LoadWatch(read_stat=lambda: None, own_cpu=lambda: 0.0, throttle=lambda: None)
    w.start()
    rec = w.stop([1.0, 1.0])
    assert rec["load_other_cpu_frac"] is None and rec["load_steal_frac"] is None
    assert "/proc/stat is not readable" in rec["load_reason"]


def _burn(stop, deadline: float) -> None:
    """Spin until ``stop`` is set (or, should the test die, until ``deadline``)."""
    while not stop.is_set() and time.time() < deadline:
        pass


def _burners(ctx):
    """One spinning process per CPU this process may use, so that they are a busy machine on any core count."""
    stop = ctx.Event()
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else multiprocessing.cpu_count()
    procs = [ctx.Process(target=_burn, args=(stop, time.time() + 900)) for _ in range(n)]
    for proc in procs:
        proc.start()
    return stop, procs


def _stop(stop, procs) -> None:
    stop.set()
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


def _window(seconds: float) -> dict:
    w = LoadWatch()
    w.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)  # this process itself is idle: whatever the machine did was someone else's
    return w.stop([10.0, 10.0, 10.0])


def test_a_cpu_burner_beside_the_window_makes_it_busy_and_alone_it_is_quiet():
    alone = _window(1.0)
    if alone["load_other_cpu_frac"] is None:
        pytest.skip(f"no /proc/stat here: {alone['load_reason']}")
    stop, procs = _burners(multiprocessing.get_context("spawn"))
    try:
        time.sleep(2.0)  # the burners are running before the window opens
        beside = _window(1.0)
    finally:
        _stop(stop, procs)
    assert beside["load_verdict"] == "busy", beside
    assert beside["load_other_cpu_frac"] > 0.5, beside
    if alone["load_verdict"] != "quiet":
        pytest.skip(f"this machine was not quiet without the burner: {alone['load_verdict_reason']}")
    assert alone["load_other_cpu_frac"] < BUSY_OTHER_CPU


def test_waiting_for_quiet_stops_when_quiet_or_at_the_limit():
    from metrics.load import others_share, wait_until_quiet

    t = [0.0]

    def clock():
        return t[0]

    def share_from(values):
        it = iter(values)

        def share(probe_s):
            t[0] += probe_s
            return next(it)

        return share

    assert wait_until_quiet(10, share=share_from([0.5, 0.3, 0.05]), clock=clock) == "quiet after 3 s"
    t[0] = 0.0
    said = wait_until_quiet(2, share=share_from([0.5, 0.6, 0.7]), clock=clock)
    assert said == "still busy after 2 s (other processes used 60% of the CPU time)"
    assert wait_until_quiet(5, share=lambda s: None, clock=clock) == "not waited: /proc/stat is not readable"
    stats = iter([CpuTimes(10.0, 5.0, 0.0), CpuTimes(12.0, 5.5, 0.5)])
    own = iter([1.0, 1.5])
    share = others_share(0, read_stat=lambda: next(stats), own_cpu=lambda: next(own), sleep=lambda s: None)
    assert share == pytest.approx((2.0 - 0.5 - 0.5 - 0.5) / 2.0)


def test_require_quiet_runs_a_busy_run_again_up_to_its_limit(monkeypatch, tmp_path):
    import runners.experiments.runs as runs
    from runners.spec import RunConfig

    verdicts = iter(["busy", "busy", "quiet"])
    calls = []

    def fake_worker(run, prefix, timeout_s):
        calls.append(prefix)
        return {"status": "ok", "load_verdict": next(verdicts), "load_verdict_reason": "other processes used 50%"}

    monkeypatch.setattr(runs, "run_worker", fake_worker)
    monkeypatch.setattr(runs, "wait_until_quiet", lambda limit: "quiet after 0 s")
    run = RunConfig(workload="fourcastnet-tiny", framework="torch", weights="")
    said = []
    out = runs.run_timed_worker(run, tmp_path / "torch", 60, require_quiet=3, progress=said.append)
    assert out["load_verdict"] == "quiet" and out["load_attempts"] == 3 and len(calls) == 3
    assert out["load_waits"] == "; ".join(["quiet after 0 s"] * 3) and len(said) == 2
    verdicts = iter(["busy", "busy", "busy"])
    out = runs.run_timed_worker(run, tmp_path / "torch", 60, require_quiet=1)
    assert out["load_verdict"] == "busy" and out["load_attempts"] == 2  # at the limit: kept, marked busy
    calls.clear()
    out = runs.run_timed_worker(run, tmp_path / "torch", 60, require_quiet=0)
    assert "load_attempts" not in out and len(calls) == 1  # off: one run, nothing waited for


def test_require_quiet_is_bounded_and_named():
    from runners.errors import PairbenchError
    from runners.options import MAX_QUIET_REPEATS, PairOptions

    PairOptions(require_quiet=MAX_QUIET_REPEATS).validate()
    with pytest.raises(PairbenchError, match="--require-quiet"):
        PairOptions(require_quiet=MAX_QUIET_REPEATS + 1).validate()
    with pytest.raises(PairbenchError, match="--require-quiet"):
        PairOptions(require_quiet=-1).validate()


@pytest.mark.skipif(not __import__("importlib").util.find_spec("torch"), reason="torch is not installed")
def test_a_real_run_beside_a_cpu_burner_is_marked_busy_and_alone_is_not(tmp_path):
    from runners.experiments.pair import run_pair
    from runners.options import PairOptions

    def one(where):
        opts = PairOptions(
            frameworks=("torch",), results_dir=tmp_path / where, seed=3, warmup_steps=1, train_steps=30,
            forward_steps=2,
        )  # fmt: skip
        (rec,) = run_pair(opts, progress=lambda s: None).records
        assert rec["status"] == "ok", rec.get("reason")
        return rec

    stop, procs = _burners(multiprocessing.get_context("spawn"))
    try:
        beside = one("beside")
    finally:
        _stop(stop, procs)
    assert beside["load_verdict"] == "busy" and "other processes used" in beside["load_verdict_reason"], beside
    alone = one("alone")
    if alone["load_other_cpu_frac"] is not None and alone["load_other_cpu_frac"] > BUSY_OTHER_CPU:
        pytest.skip(f"this machine was busy without the burners: {alone['load_verdict_reason']}")
    # Alone, nothing else took the CPU: quiet, or unstable where 30 steps of a few ms vary by more than 10%.
    assert alone["load_verdict"] in ("quiet", "unstable"), alone["load_verdict_reason"]
