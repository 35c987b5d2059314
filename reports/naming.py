"""How a report names things: frameworks, one side of a comparison, a group's task and setting (its target
included), and a ratio whose runs were timed on a machine that was not quiet."""

from __future__ import annotations

from collections.abc import Iterator

from reports.pairing import Group, Pairing
from runners.engines.spec import ENGINES as SOURCED
from runners.engines.spec import label_values

FRAMEWORK_LABEL = {"torch": "PyTorch", "mindspore": "MindSpore"}
KIND_LABEL = {"cuda": "GPU", "ascend": "NPU", "cpu": "CPU"}
REFERENCE = "torch"  # the denominator of every ratio between frameworks
TASK_LABEL = {"pair": "training", "forecast": "forecast", "skill": "skill"}
NOT_QUIET = ("busy", "unstable")  # metrics.load's verdicts that mark a ratio


def target_of(identity: dict) -> dict | None:
    """The target a skill run was trained to (``--target-rmse``, in its hyper-parameters), or None."""
    target = (identity.get("hyper_parameters") or {}).get("target_rmse")
    return target if isinstance(target, dict) else None


def target_label(target: dict) -> str:
    """A target in words: ``RMSE of u at 6 h <= 0.5``."""
    return f"RMSE of {target.get('channel')} at {target.get('lead_hours', 0):g} h <= {target.get('rmse', 0):g}"


def setting(identity: dict) -> str:
    """How a group's runs were executed, in a few words: what tells two groups of one workload apart (the target
    a skill run was trained to included)."""
    parts = [identity["precision"], identity["mode"], f"batch {identity['batch_size']}", f"seed {identity['seed']}"]
    parts += ["recompute"] * bool(identity["recompute"])
    threads = identity["threads"]
    parts += [f"{threads} thread{'s' * (threads != 1)}"] * (threads is not None)
    parts += [identity["objective"]] * (identity["objective"] != "forecast")
    parts += [f"{identity['nproc']} processes"] * (identity["nproc"] != 1)
    target = target_of(identity)
    if target is not None:
        parts.append(f"to {target_label(target)}")
    return ", ".join(parts)


def task_label(group: Group) -> str:
    """What a group's runs did: training, forecast, skill, or training to a target."""
    if group.task == "skill" and target_of(group.identity):
        return "training to a target"
    return TASK_LABEL.get(group.task, group.task)


def engine_name(label: str) -> str:
    """An exported-graph engine's label (runners.engines.spec) in a few words: the engine and its settings without
    their keys or the source (``onnxruntime (fft, softshrink, cpu)``)."""
    name, values = label_values(label)
    shown = values[1:] if name in SOURCED else values  # the source is said beside it (framework_name)
    return f"{name} ({', '.join(shown)})" if shown else name


def framework_name(rec: dict) -> str:
    """A run's framework, with its exported-graph engine where the record names one."""
    name = FRAMEWORK_LABEL.get(rec["framework"], rec["framework"])
    return f"{name} via {engine_name(rec['engine'])}" if rec.get("engine") else name


def side_name(rec: dict) -> str:
    """One side of a comparison: framework (engine) on device."""
    return f"{framework_name(rec)} on {rec['device']}"


def ok_runs(pairing: Pairing, tasks=("pair", "forecast", "skill")) -> Iterator[tuple[Group, dict]]:
    """(group, run) of every successful run of ``tasks``, by group then framework and device."""
    for g in pairing.groups:
        if g.task in tasks:
            for key in sorted(g.runs, key=lambda k: (k[1], k[0] != REFERENCE, k[0])):
                yield g, g.runs[key]


def unavailable(reason: str | None) -> str:
    """What stands in a figure's place when it could not be obtained: never 0, never a blank."""
    return f"unavailable ({reason or 'no reason recorded'})"


def load_mark(*recs: dict) -> str | None:
    """``busy``, ``unstable`` or ``busy and unstable`` where any of ``recs`` was timed on a machine that was not
    quiet (metrics.load's verdict); None where every one was quiet or says nothing."""
    seen = {r.get("load_verdict") for r in recs} & set(NOT_QUIET)
    return " and ".join(v for v in NOT_QUIET if v in seen) or None


def load_sentence(*recs: dict) -> str:
    """Why a ratio of ``recs`` may not hold on a quiet machine, as a clause; empty where every run was quiet."""
    bad = [r for r in recs if r.get("load_verdict") in NOT_QUIET]
    if not bad:
        return ""
    runs = "; ".join(f"{side_name(r)} {r['load_verdict']}: {r.get('load_verdict_reason')}" for r in bad)
    return f" Marked {load_mark(*bad)}: the machine was not quiet while it was timed ({runs}), so it may not hold."
