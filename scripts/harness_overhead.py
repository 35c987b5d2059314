"""Harness overhead: median training-step time through the worker (its power window, load watch and staging) over
a bare loop calling the same runner's training step."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reports.stats import bootstrap_ratio  # noqa: E402
from runners.data.synthetic import synthetic_batch  # noqa: E402
from runners.errors import PairbenchError  # noqa: E402
from runners.execution.worker import build  # noqa: E402
from runners.experiments.runs import run_worker  # noqa: E402
from runners.spec import RunConfig, check_framework  # noqa: E402
from runners.weights.canonical import save_weights  # noqa: E402
from runners.workloads.registry import get_workload  # noqa: E402

TARGET = 1.01
WARMUP_STEPS = 3
# Timed steps per measurement when --steps is not given: enough samples that a 2 % difference shows, with the
# full default run (3 rounds x 2 sides x 2 frameworks x 2 workloads) taking a few minutes on a 2-core CPU.
DEFAULT_STEPS = {"fourcastnet-tiny": 100, "fourcastnet-small": 30, "aigoms-tiny": 60, "aigoms-small": 20}


# --------------------------------------------------------------------------------------------------
# The bare loop: run in a subprocess of its own (``--bare FRAMEWORK``), imports one framework only.
# --------------------------------------------------------------------------------------------------


def measured_run(name: str, framework: str, weights: Path, steps: int, args) -> RunConfig:
    """The run both sides measure: the worker is asked for it, the bare loop builds its runner from it."""
    spec = get_workload(name)
    return RunConfig(
        workload=name,
        framework=framework,
        weights=str(weights),
        threads=args.threads,
        batch_size=args.batch,
        warmup_steps=WARMUP_STEPS,
        train_steps=steps,
        forward_steps=1,  # the worker's forward timing is not compared; keep it short
        seed=args.seed,
        model=spec.model.to_dict(),
        hyper_parameters=spec.hyper_parameters(),
    )


def bare_main(args) -> int:
    """Time ``args.steps`` bare training steps after ``WARMUP_STEPS`` untimed ones; write their ms and every step's
    loss as JSON. The step is the runner's own (``train_step`` of the runner a RunConfig builds, as the worker builds
    it), called in a plain perf_counter loop: no power window, no load watch, no staging."""
    spec, _, runner, _ = build(measured_run(args.workloads, args.bare, Path(args.weights), args.steps, args))
    shape = (args.batch, spec.model.in_chans, *spec.model.img_size)
    # The worker's training steps use batches 1, 2, ... of the seed's stream (batch 0 is the parity batch).
    n = WARMUP_STEPS + args.steps
    host = [synthetic_batch(shape, spec.model.out_chans, args.seed, i + 1) for i in range(n)]
    batches = [[runner.put(a) for a in arrays] for arrays in host]
    losses, step_ms = [], []
    for i in range(n):
        t0 = time.perf_counter()
        losses.append(runner.train_step(*batches[i]))
        runner.synchronize()
        if i >= WARMUP_STEPS:
            step_ms.append((time.perf_counter() - t0) * 1e3)
    Path(args.out).write_text(json.dumps({"step_ms": step_ms, "losses": losses}))
    return 0


# --------------------------------------------------------------------------------------------------
# The comparison: runner and bare loop alternated, round after round, in one run.
# --------------------------------------------------------------------------------------------------


def measure_runner(run: RunConfig, prefix: Path) -> list[float]:
    result = run_worker(run, prefix, timeout_s=1800.0)
    if result.get("status") != "ok":
        raise RuntimeError(f"runner {run.framework} {run.workload}: {result.get('reason')}")
    return result["step_ms"]


def measure_bare(framework: str, workload: str, weights: Path, steps: int, args, prefix: Path) -> list[float]:
    out = prefix.with_suffix(".bare.json")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bare", framework, "--workloads", workload]
    cmd += ["--weights", str(weights), "--steps", str(steps), "--batch", str(args.batch), "--seed", str(args.seed)]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--out", str(out)]
    log = prefix.with_suffix(".bare.log")
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=1800).returncode
    if code != 0 or not out.is_file():
        raise RuntimeError(f"bare {framework} {workload} exited with code {code}:\n{log.read_text()[-2000:]}")
    return json.loads(out.read_text())["step_ms"]


def verdict(ratio) -> str:
    met = "PASS" if ratio.value <= TARGET else "FAIL"
    if ratio.low <= TARGET <= ratio.high:
        return f"{met} (interval contains {TARGET}: too noisy to tell)"
    return met


def loadavg() -> str:
    load = os.getloadavg()
    text = " ".join(f"{v:.2f}" for v in load) + f" (1/5/15 min, {os.cpu_count()} CPUs)"
    if load[0] > 0.75 * (os.cpu_count() or 1):
        text += ": busy machine, other processes compete for the cores and the timings are noisy"
    return text


def compare(args, tmp: Path) -> list[dict]:
    rows = []
    for name in args.workloads:
        spec = get_workload(name)
        steps = args.steps or DEFAULT_STEPS.get(name, 30)
        weights = tmp / f"{name}.safetensors"
        save_weights(weights, spec.model, spec.model.init_weights(args.seed))
        for fw in args.frameworks:
            run = measured_run(name, fw, weights, steps, args)
            samples = {"runner": [], "bare": []}
            for r in range(args.rounds):
                order = ("runner", "bare") if r % 2 == 0 else ("bare", "runner")  # ABBA: drift hits both alike
                for side in order:
                    prefix = tmp / f"{name}-{fw}-{r}-{side}"
                    t0 = time.perf_counter()
                    if side == "runner":
                        step_ms = measure_runner(run, prefix)
                    else:
                        step_ms = measure_bare(fw, name, weights, steps, args, prefix)
                    samples[side] += step_ms
                    wall = time.perf_counter() - t0
                    print(
                        f"  {name} {fw:<9} round {r + 1}/{args.rounds} {side:<6} median {np.median(step_ms):9.3f} ms"
                        f"  ({len(step_ms)} steps, {wall:5.1f} s wall, load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
            ratio = bootstrap_ratio(samples["runner"], samples["bare"])
            rows.append(
                {
                    "workload": name,
                    "framework": fw,
                    "runner_ms": float(np.median(samples["runner"])),
                    "bare_ms": float(np.median(samples["bare"])),
                    "ratio": ratio,
                    "n": (len(samples["runner"]), len(samples["bare"])),
                }
            )
    return rows


def print_table(rows: list[dict]) -> None:
    head = f"{'workload':<18} {'framework':<10} {'runner ms':>10} {'bare ms':>10} {'steps':>9}  "
    print(head + f"{'runner/bare [95% CI]':<26} verdict (target <= {TARGET})")
    for row in rows:
        r = row["ratio"]
        n = f"{row['n'][0]}/{row['n'][1]}"
        ci = f"{r.value:.3f} [{r.low:.3f}, {r.high:.3f}]"
        print(
            f"{row['workload']:<18} {row['framework']:<10} {row['runner_ms']:>10.3f} {row['bare_ms']:>10.3f} "
            f"{n:>9}  {ci:<26} {verdict(r)}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workloads", default="fourcastnet-tiny,fourcastnet-small")
    ap.add_argument("--frameworks", default="torch,mindspore")
    ap.add_argument(
        "--steps", type=int, help="timed training steps per measurement (default: 100 for tiny, 30 otherwise)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="runner/bare measurement pairs, alternated")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads", type=int, help="CPU threads for both sides (default: the framework's); 1 resists a busy machine"
    )
    ap.add_argument("--bare", choices=("torch", "mindspore"), help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bare:
        return bare_main(args)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    if (args.steps is not None and args.steps < 2) or args.rounds < 1:
        ap.error("--steps must be at least 2 and --rounds at least 1")
    try:  # unknown names fail before anything runs
        for name in args.workloads:
            get_workload(name)
        for fw in args.frameworks:
            check_framework(fw)
    except PairbenchError as exc:
        ap.error(str(exc))
    steps = ", ".join(f"{w} {args.steps or DEFAULT_STEPS.get(w, 30)}" for w in args.workloads)
    t0 = time.perf_counter()
    print(f"load average at start: {loadavg()}")
    print(
        f"batch {args.batch}, threads {args.threads or 'framework default'}; per measurement {WARMUP_STEPS} warm-up "
        f"steps, then timed: {steps}; {args.rounds} rounds of runner and bare loop alternated (ABBA...)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="pairbench-overhead-") as tmp:
        rows = compare(args, Path(tmp))
    print()
    print_table(rows)
    print()
    print(f"load average at end:   {loadavg()}")
    print(f"wall time: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
