"""What every experiment shares: fresh run directories, worker subprocesses and their environment, and
turning a worker's result into a record."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hardware_profiles import match_profile
from metrics.load import wait_until_quiet
from runners.devices import parse_device
from runners.errors import PairbenchError
from runners.execution.lifeline import PARENT_ENV, die_with_parent, parent_token
from runners.execution.result import read_result
from runners.options import QUIET_WAIT_S
from runners.records import schema
from runners.spec import RunConfig
from runners.weights.canonical import save_weights


def utc_stamp() -> str:
    """The time stamp of a run (its records' ``timestamp`` and the start of its folder's name), UTC."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def stamped_run_dir(results_dir: Path, name: str) -> tuple[str, Path]:
    """A run's time stamp and its fresh folder ``<stamp>-<name>`` in ``results_dir``."""
    stamp = utc_stamp()
    return stamp, new_run_dir(Path(results_dir), f"{stamp}-{name}")


def open_run(results_dir: Path, name: str, spec, tensors: dict, ident: dict, device: str) -> tuple[Path, Path, dict]:
    """A run's fresh stamped folder ``<stamp>-<name>``, the starting weights saved in it, and its records' header:
    ``(run_dir, weights_path, head)``."""
    stamp, run_dir = stamped_run_dir(results_dir, name)
    weights_path = run_dir / "weights.safetensors"
    save_weights(weights_path, spec.model, tensors)
    head = schema.header(
        ident, run_id=run_dir.name, timestamp=stamp, workload=spec.name, device=device, commit=source_commit()
    )
    return run_dir, weights_path, head


def device_profile(run: RunConfig, result: dict):
    """The hardware profile of the device a worker ran on (by the CPU's name on a CPU), or None."""
    kind = parse_device(run.device).kind
    return match_profile(kind, result["cpu_name"] if kind == "cpu" else result["device_name"])


def new_run_dir(results_dir: Path, name: str) -> Path:
    """A fresh directory for one paired run; never reuses (and so never overwrites) an earlier one."""
    results_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = results_dir / (name if n == 1 else f"{name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise PairbenchError(f"cannot create a run directory for {name} in {results_dir}")


def worker_env() -> dict[str, str]:
    """The environment of a worker: this checkout importable, CUDA numbering GPUs as NVML does (by PCI bus id),
    enforced: with CUDA's default (fastest first) NVML could read another GPU's power; and this process named,
    so that a worker it starts through a launcher can die with it."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env[PARENT_ENV] = parent_token()  # what a worker's lifeline watches (runners.execution.lifeline)
    return env


# What a worker is told of a run's identity, under the same names.
_RUN_FROM_IDENTITY = (
    "precision", "mode", "objective", "recompute", "threads", "batch_size", "warmup_steps", "train_steps",
    "forward_steps", "seed", "model", "hyper_parameters",
)  # fmt: skip


def run_config(ident: dict, workload: str, framework: str, weights: Path, device: str, **task) -> RunConfig:
    """What one worker is asked to do: the run's identity (runners.records.schema), where, and ``task``'s own
    settings (the task, its data)."""
    fields = {k: ident[k] for k in _RUN_FROM_IDENTITY}
    return RunConfig(workload=workload, framework=framework, weights=str(weights), device=device, **fields, **task)


def run_worker(run: RunConfig, prefix: Path, timeout_s: float) -> dict:
    """Run one worker subprocess; a crash, kill or time-out becomes a failed result."""
    request = prefix.with_suffix(".request.json")
    for stale in (
        prefix.with_suffix(".json"),
        prefix.with_suffix(".npz"),
    ):  # an earlier attempt's, never read as this one's
        stale.unlink(missing_ok=True)
    request.write_text(json.dumps(run.to_dict(), indent=1))
    log = prefix.with_suffix(".log")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "runners.execution.worker", str(request), str(prefix)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=worker_env(),
                timeout=timeout_s,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"timed out after {timeout_s:g} s (log: {log})"}
    wall_s = time.perf_counter() - t0
    result_path = prefix.with_suffix(".json")
    if result_path.is_file():
        result = read_result(result_path)
    else:
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        result = {"status": "failed", "reason": f"worker {how} before writing a result (log: {log})"}
    result["worker_wall_s"] = wall_s
    return result


def run_timed_worker(run: RunConfig, prefix: Path, timeout_s: float, require_quiet: int = 0, progress=None) -> dict:
    """``run_worker`` for a timed run. With ``require_quiet`` N > 0: before each attempt wait up to QUIET_WAIT_S for
    other processes to leave the machine (metrics.load.wait_until_quiet), and run again a run whose timed window was
    busy, up to N more times; the result is the last attempt's, with ``load_attempts`` and what each wait found
    (``load_waits``). A busy last attempt stays busy in its record: it is marked, never dropped."""
    if not require_quiet:
        return run_worker(run, prefix, timeout_s)
    waits = []
    for attempt in range(1, require_quiet + 2):
        waits.append(wait_until_quiet(QUIET_WAIT_S))
        result = run_worker(run, prefix, timeout_s)
        if result["status"] != "ok" or result.get("load_verdict") != "busy":
            break
        if progress and attempt <= require_quiet:
            why = result.get("load_verdict_reason")
            progress(f"[{run.engine or run.framework}] busy while timed ({why}): running it again")
    result.update(load_attempts=attempt, load_waits="; ".join(waits))
    return result


_ENVIRONMENT = tuple(f.name for f in schema.ENVIRONMENT if f.need == "ok")
_ENVIRONMENT_OPT = tuple(f.name for f in schema.ENVIRONMENT if f.need == "opt")


def environment_fields(result: dict) -> dict:
    """What a worker reported about its environment, and its power fields, for a record."""
    env = {k: result[k] for k in _ENVIRONMENT}
    if env["device_name"] == "cpu":
        env["device_name"] = result["cpu_name"]
    env.update({k: result[k] for k in _ENVIRONMENT_OPT if result.get(k) is not None})
    env.update({k: v for k, v in result.items() if k.startswith(("power_", "energy_", "samples_per_j", "load_"))})
    return env


def recorded(head: dict, framework: str, result: dict, fields) -> dict:
    """The record of a worker's ``result`` (``fields()`` its measured fields when it succeeded). A result that
    does not make a valid record (a NaN timing, a missing figure) becomes a failed record saying so, and
    ``result`` is marked failed, so that nothing built on it follows."""
    try:
        return schema.outcome(head, framework, result, fields() if result["status"] == "ok" else None)
    except (schema.RecordError, KeyError, TypeError, ValueError) as exc:
        what = f"field {exc}" if isinstance(exc, KeyError) else str(exc)
        result.update(status="failed", reason=f"the worker's result cannot be recorded: {what}")
        return schema.outcome(head, framework, result)


def source_commit() -> str | None:
    """The git commit of this pairbench checkout, or None outside a git work tree."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
