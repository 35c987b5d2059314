"""One rank of a data-parallel training run, under torchrun or msrun:
``python -m runners.execution.dp_worker REQUEST.json``.

REQUEST holds ``run``, a RunConfig as JSON with ``distributed`` set, and where to write. The rank builds the
framework's runner from it (runners.backends: the runner joins the group and averages the gradients) as the
single-process worker does, then trains on its shard of each global batch, logs its progress and writes its result.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

from runners.data.synthetic import synthetic_batch
from runners.devices import Device, parse_device
from runners.errors import AbsentError, first_line
from runners.execution.lifeline import watch_parent
from runners.execution.worker import build
from runners.spec import RunConfig
from runners.weights.canonical import weights_digest

CRASH_RANK_ENV = "PAIRBENCH_DP_CRASH_RANK"  # test hook: this rank exits abruptly ...
CRASH_STEP_ENV = "PAIRBENCH_DP_CRASH_STEP"  # ... at the start of this training step (default 1)
CRASH_EXIT_CODE = 17
PROGRESS_S = 5.0  # a rank logs the step it is on at most this often
# The launcher's variable that numbers this rank's accelerator on its node, added to the device's index.
LOCAL_INDEX_ENV = {"torch": "LOCAL_RANK", "mindspore": "DEVICE_ID"}


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _maybe_crash(rank: int, step: int) -> None:
    """Exit without a result, as a segfault or an OOM kill would, when the test hook names this rank and step."""
    if os.environ.get(CRASH_RANK_ENV) == str(rank) and os.environ.get(CRASH_STEP_ENV, "1").strip() == str(step):
        print(f"pairbench: injected crash of rank {rank} at step {step}", file=sys.stderr, flush=True)
        os._exit(CRASH_EXIT_CODE)


def rank_device(run: RunConfig) -> str:
    """This rank's device: on an accelerator, the run's index plus the rank's number on its node."""
    dev = parse_device(run.device)
    if dev.kind == "cpu":
        return run.device
    return str(Device(dev.kind, dev.index + int(os.environ.get(LOCAL_INDEX_ENV[run.framework], "0"))))


def shard(run: RunConfig, spec, step: int, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank ``rank``'s equal slice of global batch ``step``; every rank draws the same global batch."""
    cfg, b = spec.model, run.batch_size
    x, y = synthetic_batch((b, cfg.in_chans, *cfg.img_size), cfg.out_chans, run.seed, step)
    lo, hi = rank * b // world, (rank + 1) * b // world
    return np.ascontiguousarray(x[lo:hi]), np.ascontiguousarray(y[lo:hi])


def _train(run: RunConfig, spec, runner) -> tuple[dict, dict[str, np.ndarray]]:
    """Warm-up then timed steps, each fenced by synchronisation, its input preparation timed apart; also returns
    the first step's averaged gradients, read after that step's timing."""
    local_losses, step_ms, input_ms = [], [], []
    total, said = run.warmup_steps + run.train_steps, 0.0
    for i in range(total):
        _maybe_crash(runner.rank, i)
        if time.monotonic() - said > PROGRESS_S:  # what a time-out report quotes as this rank's last line
            print(f"pairbench: rank {runner.rank} starting step {i} of {total}", flush=True)
            said = time.monotonic()
        t_in = time.perf_counter()
        x, y = shard(run, spec, i, runner.rank, runner.world)
        runner.synchronize()
        t0 = time.perf_counter()
        loss = runner.train_step(runner.put(x), runner.put(y))
        runner.synchronize()
        t1 = time.perf_counter()
        if i == 0:
            grads0 = runner.grads()
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {i}")
        local_losses.append(loss)
        if i >= run.warmup_steps:
            step_ms.append((t1 - t0) * 1e3)
            input_ms.append((t0 - t_in) * 1e3)
    return {"local_losses": local_losses, "step_ms": step_ms, "input_ms": input_ms}, grads0


def run_rank(run: RunConfig, out_dir: Path) -> dict:
    """Everything one rank does; returns its result (rank 0 also saves the final parameters)."""
    spec, _, runner, _ = build(run)
    b = run.batch_size
    if b % runner.world:
        raise ValueError(f"global batch {b} is not divisible by {runner.world} processes")
    trained, grads0 = _train(run, spec, runner)
    losses = runner.mean_over_ranks(trained["local_losses"])
    state = runner.state()
    if runner.rank == 0:
        with open(out_dir / "params_rank0.npz", "wb") as fh:
            np.savez(fh, **state)
        with open(out_dir / "grads0_rank0.npz", "wb") as fh:
            np.savez(fh, **grads0)
    versions = runner.versions()
    result = {
        "status": "ok",
        "rank": runner.rank,
        "world_size": runner.world,
        "backend": run.distributed["backend"],
        "framework_version": versions["framework_version"],
        "threads": versions["threads_used"],
        "local_batch": b // runner.world,
        "losses": losses,
        "params_digest": weights_digest(state),
        "host": platform.node(),
        **trained,
    }
    runner.close()
    return result


def _rank_from_env() -> int:
    for name in ("RANK", "RANK_ID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return -1


def _mindspore_scheduler() -> int:
    """msrun also runs this script as the cluster's scheduler (MS_ROLE=MS_SCHED): it only builds the cluster."""
    import mindspore as ms
    from mindspore.communication import init

    ms.set_context(mode=ms.PYNATIVE_MODE)
    init()
    return 0


def _redirect_output(log_dir: Path, rank: int) -> None:
    """torchrun interleaves its ranks' output; give each rank its own log, named as msrun names them."""
    log_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_dir / f"worker_{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m runners.execution.dp_worker REQUEST.json", file=sys.stderr)
        return 2
    watch_parent()  # a rank dies with the pairbench that asked for it, whatever the launcher does
    req = json.loads(Path(argv[0]).read_text())
    run = RunConfig(**req["run"])
    if run.framework == "mindspore" and os.environ.get("MS_ROLE") == "MS_SCHED":
        return _mindspore_scheduler()
    out_dir = Path(req["out_dir"])
    rank = _rank_from_env()
    if rank >= 0:  # lets the orchestrator map a pid in the launcher's failure report to a rank
        (out_dir / f"rank_{rank}.pid").write_text(str(os.getpid()))
    if run.framework == "torch" and rank >= 0:
        _redirect_output(Path(req["log_dir"]), rank)
    try:
        result = run_rank(replace(run, device=rank_device(run)), out_dir)
    except AbsentError as exc:  # the device, collective backend or framework this rank needs is absent
        result = {"status": "unavailable", "rank": rank, "reason": f"rank {rank}: {exc}"}
    except Exception as exc:  # a failing rank leaves a result naming itself and the error
        traceback.print_exc()
        reason = f"rank {rank}: {type(exc).__name__}: {first_line(str(exc))}"
        result = {"status": "failed", "rank": rank, "reason": reason}
    _atomic_json(out_dir / f"rank_{result['rank']}.json", result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
