"""What a worker's result (OUT.json, runners.execution.worker) declares: its status and reason, the environment
every successful result reports, and each task's own figures. The worker checks its result against it before
writing, and the parent reads every result through :func:`read_result`: a file that is not a result (cut short,
not JSON, a figure missing) becomes a failed result naming why, never a crash of the parent."""

from __future__ import annotations

import json
from pathlib import Path

from runners.records.schema import ENVIRONMENT, STATUSES

# Every successful result: what the worker reports of its environment (runners.records.schema.ENVIRONMENT's
# required fields), and of its own run.
COMMON = (*(f.name for f in ENVIRONMENT if f.need == "ok"), "status", "task")
# Each task's own figures in a successful result (runners.execution.tasks, .rollout, .capture).
TASK_FIELDS = {
    "pair": ("loss_initial", "losses", "forward_ms", "step_ms", "input_ms", "gradient_missing", "power_window"),
    "skill": ("losses", "step_ms", "rollout_ms", "power_window"),
    "forecast": ("first_forecast_ms", "forecast_ms", "lead_ms", "trajectory_members", "power_window"),
    "diagnose": ("loss", "layers"),
}


def result_problem(result) -> str | None:
    """Why ``result`` is not a worker's result as declared here, or None."""
    if not isinstance(result, dict):
        return f"it is {type(result).__name__}, not an object"
    status = result.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        return f"its status {str(status)[:40]!r} is not one of {', '.join(STATUSES)}"
    if status != "ok":
        return None if isinstance(result.get("reason"), str) else "it failed without a reason"
    task = result.get("task")
    if not isinstance(task, str) or task not in TASK_FIELDS:
        return f"its task {str(task)[:40]!r} is not one of {', '.join(TASK_FIELDS)}"
    missing = [k for k in (*COMMON, *TASK_FIELDS[task]) if k not in result]
    return f"it lacks {', '.join(missing)}" if missing else None


def read_result(path: Path) -> dict:
    """The worker's result in ``path`` (which exists), or a failed result saying why it cannot be one."""
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {"status": "failed", "reason": f"the worker's result {path} cannot be read ({exc})"}
    problem = result_problem(result)
    if problem:
        return {"status": "failed", "reason": f"the worker's result {path} is not a result: {problem}"}
    return result
