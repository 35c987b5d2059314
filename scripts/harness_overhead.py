"""Harness overhead: median training-step time through the worker (its power window, load watch and staging) over
a bare loop calling the same runner's training step; with ``--forecast``, median forecast time through pairbench's
timed forecast (the worker, per engine: the frameworks themselves, onnxruntime, mindir) over a bare loop of the same
model, session or graph calls on the same inputs."""

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
from runners.engines.spec import parse_engine  # noqa: E402
from runners.errors import PairbenchError  # noqa: E402
from runners.execution.worker import build  # noqa: E402
from runners.experiments.runs import run_worker  # noqa: E402
from runners.spec import FRAMEWORKS, RunConfig, check_framework  # noqa: E402
from runners.weights.canonical import load_weights, save_weights  # noqa: E402
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
# Forecasts (--forecast): each engine's bare loop, in a subprocess of its own (``--bare-forecast ENGINE``).
# --------------------------------------------------------------------------------------------------

FORECAST_ENGINES = ("torch", "mindspore", "onnxruntime", "mindir")
DEFAULT_FORECASTS = 30  # timed forecasts per bare measurement (the worker times at least as many, over >= 2 s)


def _bare_forecaster(engine: str, spec, weights, x0: np.ndarray, n_lead: int, graph: Path | None, threads):
    """Returns forecast() for a hand-written loop of ``engine``: ``n_lead`` calls of the model, session or graph,
    each output the next input, from the host array ``x0`` (as pairbench's forecast of a model whose outputs are all
    its inputs, runners.execution.rollout.Rollout)."""
    if engine == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def forecast():
            x = x0
            for _ in range(n_lead):
                x = session.run(None, {name: x})[0]

        return forecast
    if engine == "torch":
        import torch

        from runners.backends.torch_backend import torch_model

        if threads:
            torch.set_num_threads(threads)
        net = torch_model(spec, weights)

        def forecast():
            with torch.no_grad():
                x = torch.from_numpy(x0)
                for _ in range(n_lead):
                    x = net(x)

        return forecast
    import mindspore as ms
    from mindspore import Tensor, nn

    ms.set_context(mode=ms.GRAPH_MODE if engine == "mindir" else ms.PYNATIVE_MODE)
    if threads:
        ms.set_context(runtime_num_threads=threads)
    ms.set_device("CPU")
    ms.runtime.launch_blocking()  # as the runner and the engine do on CPU
    if engine == "mindir":
        net = nn.GraphCell(ms.load(str(graph)))
    else:
        from runners.backends.mindspore_backend import mindspore_net

        net = mindspore_net(spec, weights)

    def forecast():
        x = Tensor(x0)
        for _ in range(n_lead):
            x = net(x)

    return forecast


def bare_forecast_main(args) -> int:
    """Time ``args.steps`` bare forecasts after ``WARMUP_STEPS`` untimed ones; write their ms as JSON."""
    spec = get_workload(args.workloads)
    weights = load_weights(Path(args.weights), spec.model)
    # The worker's synthetic initial conditions: the seed's first batch.
    x0, _ = synthetic_batch((args.batch, spec.model.in_chans, *spec.model.img_size), spec.model.out_chans, args.seed, 0)
    graph = Path(args.graph) if args.graph else None
    forecast = _bare_forecaster(args.bare_forecast, spec, weights, x0, args.n_lead, graph, args.threads)
    for _ in range(WARMUP_STEPS):
        forecast()
    forecast_ms = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        forecast()
        forecast_ms.append((time.perf_counter() - t0) * 1e3)
    Path(args.out).write_text(json.dumps({"step_ms": forecast_ms}))
    return 0


def forecast_run(args, name: str, engine: str, weights: Path) -> RunConfig:
    """pairbench's timed forecast of ``engine`` (a framework: its eager forecast; else the engine's graph)."""
    spec = get_workload(name)
    source = parse_engine(engine).source
    return RunConfig(
        workload=name, framework=source, weights=str(weights), threads=args.threads, batch_size=args.batch,
        warmup_steps=WARMUP_STEPS, seed=args.seed, task="forecast", model=spec.model.to_dict(),
        hyper_parameters=spec.hyper_parameters(), engine=None if engine in FRAMEWORKS else engine,
        data={"initial_conditions": "synthetic", "n_lead": args.n_lead, "repeats": args.steps or DEFAULT_FORECASTS},
    )  # fmt: skip


def measure_forecast_bare(engine: str, name: str, weights: Path, graph: Path | None, args, prefix: Path) -> list[float]:
    extra = ["--bare-forecast", parse_engine(engine).name, "--n-lead", str(args.n_lead)]
    extra += ["--graph", str(graph)] if graph else []
    return measure_bare(None, name, weights, args.steps or DEFAULT_FORECASTS, args, prefix, extra)


def compare_forecasts(args, tmp: Path) -> list[dict]:
    """For each workload and engine: pairbench's timed forecasts and the bare loop's, alternated ABBA."""
    rows = []
    for name in args.workloads:
        spec = get_workload(name)
        weights = tmp / f"{name}.safetensors"
        save_weights(weights, spec.model, spec.model.init_weights(args.seed))
        for engine in args.engines:
            run = forecast_run(args, name, engine, weights)
            samples, graph = {"runner": [], "bare": []}, None
            for r in range(args.rounds):
                order = ("runner", "bare") if r % 2 == 0 else ("bare", "runner")  # round 0 exports the graph first
                for side in order:
                    prefix = tmp / f"{name}-{parse_engine(engine).name}-{r}-{side}"
                    t0 = time.perf_counter()
                    if side == "runner":
                        result = run_worker(run, prefix, timeout_s=1800.0)
                        if result.get("status") != "ok":
                            raise RuntimeError(f"forecast {engine} {name}: {result.get('reason')}")
                        ms = result["forecast_ms"]
                        if result.get("engine_file") and graph is None:
                            graph = prefix.parent / result["engine_file"]
                    else:
                        ms = measure_forecast_bare(engine, name, weights, graph, args, prefix)
                    samples[side] += ms
                    print(
                        f"  {name} {engine:<11} round {r + 1}/{args.rounds} {side:<6} median {np.median(ms):9.3f} ms"
                        f"  ({len(ms)} forecasts, {time.perf_counter() - t0:5.1f} s wall, load "
                        f"{os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
            rows.append(
                {
                    "workload": name, "framework": engine, "runner_ms": float(np.median(samples["runner"])),
                    "bare_ms": float(np.median(samples["bare"])),
                    "ratio": bootstrap_ratio(samples["runner"], samples["bare"]),
                    "n": (len(samples["runner"]), len(samples["bare"])),
                }
            )  # fmt: skip
    return rows


def check_forecast_args(ap, args) -> None:
    """Unknown engines, or a workload whose forecast is not fed back whole, refused before anything runs."""
    try:
        args.engines = [parse_engine(e).label for e in args.engines.split(",") if e]
    except PairbenchError as exc:
        ap.error(str(exc))
    for engine in args.engines:
        e = parse_engine(engine)
        if e.name not in FORECAST_ENGINES or e.model_overrides() or (e.provider or "cpu") != "cpu":
            ap.error(f"--forecast compares {', '.join(FORECAST_ENGINES)} as they are, on CPU; not {engine}")
    for name in args.workloads:
        model = get_workload(name).model
        if model.in_chans != model.out_chans or model.output_mask() is not None:
            ap.error(f"--forecast needs a workload whose forecast is its whole next input; {name} is not one")
    if args.n_lead < 1:
        ap.error("--n-lead must be at least 1")


# --------------------------------------------------------------------------------------------------
# The comparison: runner and bare loop alternated, round after round, in one run.
# --------------------------------------------------------------------------------------------------


def measure_runner(run: RunConfig, prefix: Path) -> list[float]:
    result = run_worker(run, prefix, timeout_s=1800.0)
    if result.get("status") != "ok":
        raise RuntimeError(f"runner {run.framework} {run.workload}: {result.get('reason')}")
    return result["step_ms"]


def measure_bare(
    framework: str | None, workload: str, weights: Path, steps: int, args, prefix: Path, extra: list[str] = ()
) -> list[float]:
    """The bare loop's timings, from a subprocess: ``framework``'s training steps, or what ``extra`` asks for."""
    out = prefix.with_suffix(".bare.json")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, str(Path(__file__).resolve()), *(["--bare", framework] if framework else extra)]
    cmd += ["--workloads", workload]
    cmd += ["--weights", str(weights), "--steps", str(steps), "--batch", str(args.batch), "--seed", str(args.seed)]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--out", str(out)]
    log = prefix.with_suffix(".bare.log")
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=1800).returncode
    if code != 0 or not out.is_file():
        what = framework or " ".join(extra)
        raise RuntimeError(f"bare {what} {workload} exited with code {code}:\n{log.read_text()[-2000:]}")
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
    ap.add_argument("--forecast", action="store_true", help="compare forecasts, per engine, instead of training steps")
    ap.add_argument("--engines", default=",".join(FORECAST_ENGINES), help="with --forecast: the engines compared")
    ap.add_argument("--n-lead", type=int, default=4, help="with --forecast: lead steps per forecast")
    ap.add_argument("--bare", choices=("torch", "mindspore"), help=argparse.SUPPRESS)
    ap.add_argument("--bare-forecast", choices=FORECAST_ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--graph", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bare:
        return bare_main(args)
    if args.bare_forecast:
        return bare_forecast_main(args)
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
    if args.forecast:
        check_forecast_args(ap, args)
        return forecast_main(args)
    steps = ", ".join(f"{w} {args.steps or DEFAULT_STEPS.get(w, 30)}" for w in args.workloads)
    what = (
        f"batch {args.batch}, threads {args.threads or 'framework default'}; per measurement {WARMUP_STEPS} warm-up "
        f"steps, then timed: {steps}; {args.rounds} rounds of runner and bare loop alternated (ABBA...)"
    )
    return report(what, lambda tmp: compare(args, tmp))


def report(what: str, comparison) -> int:
    """Run ``comparison(tmp folder)`` between two load readings and print its rows' table."""
    t0 = time.perf_counter()
    print(f"load average at start: {loadavg()}")
    print(what, flush=True)
    with tempfile.TemporaryDirectory(prefix="pairbench-overhead-") as tmp:
        rows = comparison(Path(tmp))
    print()
    print_table(rows)
    print()
    print(f"load average at end:   {loadavg()}")
    print(f"wall time: {time.perf_counter() - t0:.0f} s")
    return 0


def forecast_main(args) -> int:
    """The forecast comparison (--forecast) and its table."""
    what = (
        f"batch {args.batch}, {args.n_lead} leads per forecast, threads {args.threads or 'default'}; per measurement "
        f"{WARMUP_STEPS} warm-up forecasts, then {args.steps or DEFAULT_FORECASTS} timed (the worker: at least as "
        f"many, over at least 2 s); {args.rounds} rounds of runner and bare loop alternated (ABBA...)"
    )
    return report(what, lambda tmp: compare_forecasts(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
