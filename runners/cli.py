"""The ``pairbench`` command: ``run`` (paired runs; no options = the demo), ``skill``, ``forecast``, ``diagnose``,
``report``, ``devices``, ``workloads``."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from reports import DEFAULT_OUTPUT, FORMATS
from runners.data.source import DataError
from runners.errors import PairbenchError
from runners.options import (
    ARG_OF,
    DEFAULT_CHECK_EVERY,
    DEFAULT_WORKLOAD,
    QUIET_WAIT_S,
    DataParallelOptions,
    ForecastOptions,
    PairOptions,
    SkillOptions,
    check_count,
)
from runners.records.store import records_path, where_records_went
from runners.spec import FRAMEWORKS, MODES, OBJECTIVES, PRECISIONS
from runners.weights.canonical import WeightsMismatch
from runners.weights.checkpoint import CheckpointError
from runners.workloads.registry import WORKLOADS
from runners.workloads.spectral import SPECTRAL_TRANSFORMS


def _frameworks(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown framework '{unknown[0] if unknown else text}'; choose from {', '.join(FRAMEWORKS)}"
        )
    return names


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"'{bad[0] if bad else text}' is not one of {', '.join(allowed)}")
        return names

    return parse


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (each checked where it is used)."""
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"'{text}' has an empty item; give names separated by single commas")
    return names


def _ints(text: str) -> tuple[int, ...]:
    """--batch-size: one batch size or a comma-separated sweep of them, each within the option's bounds."""
    items = [v.strip() for v in text.split(",")]
    if len(items) > 1 and not all(items):
        raise argparse.ArgumentTypeError(f"'{text}' has an empty item; give batch sizes separated by single commas")
    try:
        values = tuple(int(v) for v in items)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a batch size or a comma-separated list of them") from None
    try:
        return tuple(check_count("batch_size", v) for v in values)
    except PairbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Option fields made from several arguments: the model configuration's overrides.
_DERIVED = {
    "model": lambda args: {"spectral_transform": args.spectral} if getattr(args, "spectral", None) else None,
    "data": lambda args: _data_request(args) if hasattr(args, "data") else None,
}
_DATA_OPTIONS = ("channels", "test_fraction", "lat_weights", "time_step_hours")


def _data_request(args):
    """The DataRequest of --data and its options; None without --data, where giving its options is an error."""
    from runners.data.dataset import DataRequest

    given = {k: getattr(args, k) for k in _DATA_OPTIONS if getattr(args, k) is not None}
    if args.data is None:
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise PairbenchError(f"{flags} describe --data, which was not given")
        return None
    return DataRequest(args.data, **given)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a user's data set, the same for every command that takes one."""
    p.add_argument(
        "--data",
        default=None,
        help="era5:DIR (FourCastNet's HDF5 year files and stats) or xarray:PATH (netCDF or zarr, WeatherBench 2 "
        "names; several files joined by commas); the model takes its channels and grid from it",
    )
    p.add_argument("--channels", default=None, help="comma-separated channel names of --data (name@level for a level)")
    p.add_argument("--test-fraction", type=float, default=None, help="the last share of --data's times tested on")
    p.add_argument("--lat-weights", default=None, help="cell-area (WeatherBench 2, default) or cosine, for --data")
    p.add_argument(
        "--time-step-hours", type=float, default=None, help="--data's time step where its times are irregular"
    )


def fill(cls, args, **given):
    """``cls`` (an options dataclass) from the parsed ``args``: each field from the argument of its name (or
    given here); an argument that is absent or None leaves the field's default, defined in runners.options."""
    import dataclasses

    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            value = given[f.name]
        elif f.name in _DERIVED:
            value = _DERIVED[f.name](args)
        else:
            value = getattr(args, ARG_OF.get(f.name, f.name), None)
        if value is not None:
            values[f.name] = value
    return cls(**values)


QUIET_HELP = (
    f"wait up to {QUIET_WAIT_S:g} s for a quiet machine before each framework's run, and run one whose timed window "
    "was busy again, up to N more times (0, the default: off)"
)

_SPECTRAL = {
    "choices": SPECTRAL_TRANSFORMS,
    "default": None,
    "help": "the AFNO filter's transform: fft (the reference's rfft2) or dft (matrix products over the kept modes); "
    "the workload's own by default",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pairbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workload in each framework from the same weights")
    run.add_argument("--workload", default=DEFAULT_WORKLOAD, help=f"default {DEFAULT_WORKLOAD}")
    run.add_argument(
        "--frameworks", type=_frameworks, default=FRAMEWORKS, help="comma-separated, default torch,mindspore"
    )
    run.add_argument(
        "--device", default=PairOptions.device, help="cpu, cuda[:i], ascend[:i] or auto (what this machine has)"
    )
    run.add_argument(
        "--precision",
        type=_choices(PRECISIONS),
        default=("fp32",),
        help="comma-separated sweep of fp32, bf16, fp16 (default fp32)",
    )
    run.add_argument(
        "--mode",
        type=_choices(MODES),
        default=("eager",),
        help="eager (PyTorch eager, MindSpore PyNative) and/or compiled (torch.compile, MindSpore jit)",
    )
    run.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="forecast",
        help="forecast (default), or masked: masked pre-training, a random share of the patches hidden (AI-GOMS)",
    )
    run.add_argument("--recompute", action="store_true", help="activation recompute of every block")
    run.add_argument("--spectral", **_SPECTRAL)
    run.add_argument("--threads", type=int, default=None, help="intra-op threads per framework process")
    run.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes (torchrun / msrun); the batch size is the global batch",
    )
    run.add_argument("--nnodes", type=int, default=1, help="nodes of a data-parallel run (--nproc is per node)")
    run.add_argument(
        "--node-rank", type=int, default=0, help="this node's rank, 0 to nnodes - 1 (node 0 is the master)"
    )
    run.add_argument("--master-addr", default="127.0.0.1", help="node 0's address, the same on every node")
    run.add_argument("--master-port", type=int, default=None, help="node 0's port; needed with --nnodes above 1")
    run.add_argument("--batch-size", type=_ints, default=None, help="a batch size, or a comma-separated sweep")
    run.add_argument("--warmup-steps", type=int, default=PairOptions.warmup_steps)
    run.add_argument("--train-steps", type=int, default=PairOptions.train_steps, help="timed Adam steps after warm-up")
    run.add_argument(
        "--forward-steps", type=int, help=f"timed forward passes after warm-up (default {PairOptions.forward_steps})"
    )
    run.add_argument("--seed", type=int, default=None, help="weights and data seed; fresh by default")
    run.add_argument(
        "--weights", default=None, help="start from this safetensors file or NVlabs checkpoint instead of a fresh init"
    )
    run.add_argument("--results-dir", type=Path, default=PairOptions.results_dir)
    run.add_argument("--timeout", type=float, default=PairOptions.timeout_s, help="seconds per framework run")
    run.add_argument("--require-quiet", type=int, default=None, metavar="N", help=QUIET_HELP)
    run.add_argument(
        "--skill",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also train both frameworks on the built-in data and score rollouts (default: on, without --nproc)",
    )
    run.add_argument(
        "--report",
        type=Path,
        default=None,
        help="where to write the HTML report of this run's records (default RESULTS_DIR/report.html)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="skip frameworks whose run with this fingerprint already succeeded (needs --seed)",
    )

    sk = sub.add_parser(
        "skill",
        help="train each framework to a fixed budget or a target on the built-in data or --data; score rollouts",
    )
    sk.add_argument("--workload", default=DEFAULT_WORKLOAD)
    sk.add_argument("--frameworks", type=_frameworks, default=FRAMEWORKS)
    sk.add_argument("--device", default=SkillOptions.device, help="cpu, cuda[:i], ascend[:i] or auto")
    sk.add_argument("--batch-size", type=int, default=SkillOptions.batch_size)
    sk.add_argument(
        "--train-steps", type=int, default=SkillOptions.train_steps, help="the training budget in Adam steps"
    )
    sk.add_argument("--lr", type=float, default=SkillOptions.lr)
    sk.add_argument("--n-init", type=int, default=SkillOptions.n_init, help="initial conditions in the test split")
    sk.add_argument(
        "--n-lead",
        type=int,
        default=SkillOptions.n_lead,
        help="autoregressive steps of the data's time step (6 h; the ocean's: 1 day)",
    )
    sk.add_argument("--seed", type=int, default=None)
    sk.add_argument("--spectral", **_SPECTRAL)
    _data_arguments(sk)
    sk.add_argument(
        "--target-rmse",
        default=None,
        help="VAR@LEAD=VALUE (e.g. u@24h=0.5): train until the validation RMSE reaches it, --train-steps at most",
    )
    sk.add_argument(
        "--check-every",
        type=int,
        default=None,
        help=f"steps between checks of --target-rmse (default {DEFAULT_CHECK_EVERY})",
    )
    sk.add_argument("--results-dir", type=Path, default=SkillOptions.results_dir)
    sk.add_argument("--timeout", type=float, default=SkillOptions.timeout_s)
    sk.add_argument("--require-quiet", type=int, default=None, metavar="N", help=QUIET_HELP)

    fc = sub.add_parser(
        "forecast", help="time autoregressive forecasts in each framework from the same weights and initial conditions"
    )
    fc.add_argument("--workload", default=DEFAULT_WORKLOAD)
    fc.add_argument("--frameworks", type=_frameworks, default=None, help="default: " + ",".join(FRAMEWORKS))
    fc.add_argument(
        "--engine",
        type=_names,
        default=None,
        help="what runs the forecasts, comma-separated: torch, mindspore (the frameworks), onnxruntime[:key=value...], "
        "mindir[:key=value...] (exported graphs; keys source, spectral, shrink, provider: docs/deployment.md); an "
        "exported graph's source framework runs too, as its reference (default: the frameworks)",
    )
    fc.add_argument("--device", default=ForecastOptions.device, help="cpu, cuda[:i], ascend[:i] or auto")
    fc.add_argument("--precision", type=_choices(PRECISIONS), default=("fp32",), help="comma-separated sweep")
    fc.add_argument("--mode", type=_choices(MODES), default=("eager",), help="eager and/or compiled")
    fc.add_argument(
        "--batch-size",
        type=_ints,
        default=(ForecastOptions.batch_size,),
        help="forecasts made at once (ensemble members or initial conditions); a comma-separated sweep",
    )
    fc.add_argument(
        "--n-lead", type=int, default=None, help="autoregressive steps (default: ten days at the time step)"
    )
    fc.add_argument(
        "--repeats",
        type=int,
        default=ForecastOptions.repeats,
        help="timed forecasts: at least this many, and more until 2 s are timed (power readings need a window)",
    )
    fc.add_argument("--warmup", type=int, default=ForecastOptions.warmup, help="untimed forecasts after the first")
    fc.add_argument("--spectral", **_SPECTRAL)
    _data_arguments(fc)
    fc.add_argument("--threads", type=int, default=None)
    fc.add_argument("--seed", type=int, default=None)
    fc.add_argument("--weights", default=None, help="a safetensors file or NVlabs checkpoint (default: fresh init)")
    fc.add_argument("--results-dir", type=Path, default=ForecastOptions.results_dir)
    fc.add_argument("--timeout", type=float, default=ForecastOptions.timeout_s)
    fc.add_argument("--require-quiet", type=int, default=None, metavar="N", help=QUIET_HELP)
    fc.add_argument("--report", type=Path, default=None, help="the HTML report (default RESULTS_DIR/report.html)")

    _diagnose_parser(sub)
    rp = sub.add_parser("report", help="pair records and write an HTML, Markdown or CSV report")
    rp.add_argument("results", nargs="+", type=Path, help="records.jsonl files, or directories holding one")
    rp.add_argument(
        "-o", "--output", type=Path, default=None, help="the file written (for csv, the folder); "
        + ", ".join(f"{k}: {v}" for k, v in DEFAULT_OUTPUT.items()) + " by default",
    )  # fmt: skip
    rp.add_argument("--format", choices=FORMATS, default="html")
    rp.add_argument("--skip-invalid", action="store_true", help="report the valid records of a damaged file")
    rp.add_argument(
        "--carbon-intensity", default=None, metavar="G",
        help="the grid's carbon intensity in gCO2/kWh, for CO2 from the records' energy (default: "
        "PAIRBENCH_CARBON_INTENSITY, else none shown)",
    )  # fmt: skip

    dv = sub.add_parser("devices", help="list CUDA GPUs, Ascend NPUs and the CPU with profiles and power")
    dv.add_argument("--json", action="store_true")

    wl = sub.add_parser("workloads", help="list workloads with parameter counts and FLOPs")
    wl.add_argument("--json", action="store_true")
    return p


def _diagnose_parser(sub) -> None:
    """``pairbench diagnose``: its options (defaults from DiagnoseOptions)."""
    from runners.options import DiagnoseOptions

    side = (
        "framework[:key=value,...], keys mode (eager|compiled), precision (fp32|bf16|fp16), spectral (fft|dft); "
        "fp32 eager and the workload's transform unless named"
    )
    dg = sub.add_parser(
        "diagnose", help="feed the same weights and batch through two computations and compare them layer by layer"
    )
    dg.add_argument("--workload", default=DEFAULT_WORKLOAD)
    dg.add_argument(
        "--a", default=DiagnoseOptions.a, help=f"side a (the reference), default {DiagnoseOptions.a}: {side}"
    )
    dg.add_argument("--b", default=DiagnoseOptions.b, help=f"side b, default {DiagnoseOptions.b}")
    dg.add_argument("--device", default=DiagnoseOptions.device, help="cpu, cuda[:i], ascend[:i] or auto")
    dg.add_argument("--threads", type=int, default=None, help="intra-op threads per side's process")
    dg.add_argument("--batch-size", type=int, default=None, help="the input batch (default: the workload's)")
    dg.add_argument("--seed", type=int, default=None, help="weights and data seed; fresh by default")
    dg.add_argument("--weights", default=None, help="a safetensors file or NVlabs checkpoint (default: fresh init)")
    dg.add_argument("--results-dir", type=Path, default=DiagnoseOptions.results_dir)
    dg.add_argument("--timeout", type=float, default=DiagnoseOptions.timeout_s, help="seconds per side")
    dg.add_argument("--report", type=Path, default=None, help="the HTML report (default RESULTS_DIR/report.html)")


def _cmd_diagnose(args) -> int:
    from reports.diagnosis_tables import diagnosis_lines
    from runners.experiments.diagnose import run_diagnose
    from runners.options import DiagnoseOptions

    _resolve_auto(args)
    outcome = run_diagnose(fill(DiagnoseOptions, args))
    print()
    print("\n".join(diagnosis_lines(outcome.record)))
    print(f"\n{where_records_went(records_path(args.results_dir))}; run files in {outcome.run_dir}")
    _write_report(args, [outcome.record])
    return 0 if outcome.ok else 1


def _cmd_workloads(args) -> int:
    from runners.workloads.registry import LOAD_PROBLEMS

    for problem in LOAD_PROBLEMS:  # an installed package's family that could not be loaded
        print(f"pairbench: warning: {problem}", file=sys.stderr)
    rows = []
    for name, spec in WORKLOADS.items():
        f = spec.model.flops()
        rows.append(
            {
                "workload": name,
                "parameters": spec.model.parameter_count(),
                "gflop_forward_per_sample": f.forward / 1e9,
                "gflop_train_per_sample": f.train / 1e9,
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(
            f"{r['workload']:<20} {r['parameters']:>12,d} params  {r['gflop_forward_per_sample']:>10.3f} "
            f"GFLOP fwd  {r['gflop_train_per_sample']:>10.3f} GFLOP train  {r['description']}"
        )
    return 0


def _cmd_skill(args) -> int:
    from reports.console import skill_tables, target_lines
    from runners.experiments.skill import run_skill

    _resolve_auto(args)
    outcome = run_skill(fill(SkillOptions, args))
    print()
    print(skill_tables(outcome.summary))
    for line in target_lines(outcome.summary):
        print(line)
    print(f"\n{where_records_went(records_path(args.results_dir))}; run files in {outcome.run_dir}")
    return 0 if outcome.ok else 1


def _resolve_auto(args) -> None:
    """``--device auto`` made a device: what this machine has, saying why it passed over the others."""
    if args.device == "auto":
        from runners.devices import resolve_auto

        args.device, passed = resolve_auto()
        print(f"device auto: {args.device}" + "".join(f"\n  ({why})" for why in passed))


def _report_target(args) -> tuple[Path, list[str]]:
    """Where ``run`` and ``forecast`` write their HTML report (--report, else RESULTS_DIR/report.html), and the
    records file it must never replace."""
    return args.report or Path(args.results_dir) / "report.html", [str(records_path(args.results_dir))]


def _write_report(args, records: list[dict]) -> None:
    """The HTML report of this invocation's records."""
    from reports.build import render

    report, sources = _report_target(args)
    for path in render(records, report, "html", sources):
        print(f"\nreport written: {path.resolve()}")


def _cmd_forecast(args) -> int:
    from reports.console import forecast_lines
    from runners.experiments.forecast import check_forecast_plan, run_forecast
    from runners.experiments.skeleton import expand

    _resolve_auto(args)
    if args.engine and args.frameworks:
        raise PairbenchError("give --engine or --frameworks: --engine names the frameworks that run too")
    if args.seed is None:
        args.seed = secrets.randbits(31)  # one seed for the whole sweep: every point starts alike
    plan = expand(
        lambda **point: fill(ForecastOptions, args, **point),
        precision=args.precision, mode=args.mode, batch_size=args.batch_size,
    )  # fmt: skip
    check_forecast_plan(plan)
    records, ok = [], True
    for o in plan:
        outcome = run_forecast(o)
        print(f"\n{args.workload}, {o.precision}, {o.mode}, {o.batch_size} forecast(s) at once:")
        print("\n".join(forecast_lines(outcome.records, outcome.comparison_records)))
        print(f"run files in {outcome.run_dir}")
        records += outcome.all_records
        ok &= outcome.ok
    print(f"\n{where_records_went(records_path(args.results_dir))}")
    _write_report(args, records)
    return 0 if ok else 1


def _cmd_report(args) -> int:
    from reports.build import write_report

    notices = []
    out = args.output or Path(DEFAULT_OUTPUT[args.format])
    written = write_report(args.results, out, args.format, args.skip_invalid, notices.append, args.carbon_intensity)
    for line in notices:
        print(line, file=sys.stderr)
    for path in written:
        print(f"report written: {path.resolve()}")
    return 0


def _cmd_devices(args) -> int:
    from metrics.power.devices import detect_devices, format_devices

    devices = detect_devices()
    print(json.dumps(devices, indent=1) if args.json else format_devices(devices))
    return 0


def _cmd_run(args) -> int:
    from tqdm import tqdm

    from reports.console import parity_lines, run_table
    from runners.experiments.pair import run_pair
    from runners.experiments.skeleton import expand

    _resolve_auto(args)
    if args.nproc != 1 or args.nnodes != 1:
        return _cmd_data_parallel(args)
    if args.node_rank != 0 or args.master_port is not None or args.master_addr != "127.0.0.1":
        raise PairbenchError(
            "--node-rank, --master-addr and --master-port belong to data-parallel runs (--nproc, --nnodes)"
        )
    if args.seed is None and not args.resume:
        args.seed = secrets.randbits(31)  # one seed for the whole sweep: every point starts alike
    plan = expand(
        lambda **point: fill(PairOptions, args, **point),
        precision=args.precision, mode=args.mode, batch_size=args.batch_size or (None,),
    )  # fmt: skip
    records, ok = [], True
    for opts in tqdm(plan, desc="sweep", unit="run", disable=len(plan) == 1):
        outcome = run_pair(opts)
        extra = ", recompute" if args.recompute else ""
        extra += f", {args.objective}" if args.objective != "forecast" else ""
        print(f"\n{args.workload}, {opts.precision}, {opts.mode}{extra}:")
        print(run_table(outcome.records))
        if outcome.comparison_record:
            print()
            print("\n".join(parity_lines(outcome.comparison_record)))
        folders = sorted({str(Path(args.results_dir) / r["run_id"]) for r in outcome.records} | {str(outcome.run_dir)})
        print(f"run files in {', '.join(folders)}")
        records += outcome.all_records
        ok &= outcome.ok
    print(f"\n{where_records_went(records_path(args.results_dir))}")
    if args.skill is not False:
        ok &= _run_skill_after(args, records)

    _write_report(args, records)
    return 0 if ok else 1


def _data_parallel_refusals(args) -> list[str]:
    """The options given that data-parallel runs (--nproc) cannot honour."""
    asked = {
        "--precision other than fp32": args.precision != ("fp32",),
        "--mode compiled": args.mode != ("eager",),
        "--objective masked": args.objective != "forecast",
        "--recompute": args.recompute,
        "--resume": args.resume,
        "--spectral": args.spectral is not None,
        "--forward-steps": args.forward_steps is not None,
        "--skill": args.skill is True,
        "--require-quiet": bool(args.require_quiet),
    }
    return [name for name, given in asked.items() if given]


def _cmd_data_parallel(args) -> int:
    """``--nproc N``: each framework trained data-parallel over N processes, beside one process with the
    same global batch (losses compared, scaling efficiency); one set of records per batch size."""
    from runners.experiments.data_parallel import plan_data_parallel, run_data_parallel_point

    refused = _data_parallel_refusals(args)
    if refused:
        raise PairbenchError(
            f"data-parallel runs (--nproc) train fp32 eager forecast steps with no forward timing, skill training "
            f"or resume, so {', '.join(refused)} cannot be honoured; run without --nproc for that"
        )
    if args.seed is None:
        args.seed = secrets.randbits(31)  # one seed for the whole sweep: every point starts alike
    records, ok = [], True
    for opts in plan_data_parallel(fill(DataParallelOptions, args, batch_size=None), args.batch_size):
        outcome = run_data_parallel_point(opts)
        records += outcome.records
        ok &= outcome.ok
    print(f"\n{where_records_went(records_path(args.results_dir))}")
    _write_report(args, records)
    return 0 if ok else 1


def _run_skill_after(args, records: list[dict]) -> bool:
    """The skill part of the main job, for workloads the built-in data covers; adds its records."""
    from reports.console import skill_tables
    from runners.data.source import InvalidDataError
    from runners.experiments.skill import run_skill

    print()
    try:  # what the run shares with the skill part; the rest are the skill task's defaults
        outcome = run_skill(
            SkillOptions(
                workload=args.workload,
                frameworks=args.frameworks,
                device=args.device,
                seed=args.seed,
                results_dir=args.results_dir,
                require_quiet=args.require_quiet or 0,
                timeout_s=args.timeout,
                model=_DERIVED["model"](args) or {},
            )
        )
    except (InvalidDataError, PairbenchError) as exc:  # no built-in data at the workload's grid or channels
        print(f"skill: skipped: {exc} (use pairbench skill with your data)")
        return True
    except DataError as exc:  # the data cannot be made here (an unusable cache): the run's report still follows
        print(f"skill: failed: {exc}")
        return False
    print()
    print(skill_tables(outcome.summary))
    records += outcome.records
    return outcome.ok


def _interrupt_once(signum, frame):
    """SIGINT: stop the command (KeyboardInterrupt) and ignore a second one while it cleans up."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _interrupted(args, written: int) -> str:
    """The one line an interrupted command ends with."""
    if args.command not in ("run", "skill", "forecast", "diagnose"):
        return "interrupted"
    resume = "; --resume continues" if args.command == "run" and args.nproc == 1 and args.nnodes == 1 else ""
    return f"interrupted: {written} records written{resume}"


def main(argv: list[str] | None = None) -> int:
    import os
    import signal
    import threading

    from hardware_profiles import ProfileError, cpu_tdp_override
    from runners.records.store import os_error, records_written

    args = _parser().parse_args(argv)
    written = records_written()
    # Ctrl-C ends in one line (below); where SIGINT is ignored (a background job) it stays ignored
    ours = (
        threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    )
    previous = signal.signal(signal.SIGINT, _interrupt_once) if ours else None
    try:
        cpu_tdp_override(os.environ)  # checked before any work, not inside the workers after it
        if args.command in ("run", "skill", "forecast", "diagnose"):
            from runners.records.store import locked, ready_store

            with locked(args.results_dir):
                if args.command != "skill":  # the report's target, before any work
                    from reports.output import check_target

                    report, sources = _report_target(args)
                    check_target(report, "html", sources)
                for said in ready_store(args.results_dir):
                    print(f"pairbench: {said}", file=sys.stderr)
                commands = {"run": _cmd_run, "skill": _cmd_skill, "forecast": _cmd_forecast, "diagnose": _cmd_diagnose}
                return commands[args.command](args)
        return {
            "report": _cmd_report,
            "workloads": _cmd_workloads,
            "devices": _cmd_devices,
        }[args.command](args)
    except (PairbenchError, CheckpointError, WeightsMismatch, DataError, ProfileError) as exc:
        print(f"pairbench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a user's path that cannot be read or written: the path and the errno's meaning
        print(f"pairbench: error: {os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(args, records_written() - written), file=sys.stderr)
        return 130
    finally:
        if ours:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
