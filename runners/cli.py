"""The ``pairbench`` command: ``run`` (paired runs; no options = the demo), ``devices``, ``workloads``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runners.datasets.source import DataError
from runners.registry import DEFAULT_WORKLOAD, WORKLOADS
from runners.spec import FRAMEWORKS, PairbenchError
from runners.torch_pickle import CheckpointError
from runners.weights import WeightsMismatch


def _frameworks(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown framework '{unknown[0] if unknown else text}'; choose from {', '.join(FRAMEWORKS)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pairbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workload in each framework from the same weights")
    run.add_argument("--workload", default=DEFAULT_WORKLOAD, help=f"default {DEFAULT_WORKLOAD}")
    run.add_argument(
        "--frameworks", type=_frameworks, default=FRAMEWORKS, help="comma-separated, default torch,mindspore"
    )
    run.add_argument("--device", default="cpu", help="cpu, cuda[:i] or ascend[:i]")
    run.add_argument("--batch-size", type=int, default=None)
    run.add_argument("--warmup-steps", type=int, default=3)
    run.add_argument("--train-steps", type=int, default=20, help="timed Adam steps after warm-up")
    run.add_argument("--forward-steps", type=int, default=20, help="timed forward passes after warm-up")
    run.add_argument("--seed", type=int, default=None, help="weights and data seed; fresh by default")
    run.add_argument(
        "--weights", default=None, help="start from this safetensors file or NVlabs checkpoint instead of a fresh init"
    )
    run.add_argument("--results-dir", type=Path, default=Path("results"))
    run.add_argument("--timeout", type=float, default=3600.0, help="seconds per framework run")
    run.add_argument(
        "--skill",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train both frameworks on the built-in data and score rollouts (default: on)",
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

    sk = sub.add_parser("skill", help="train each framework to a fixed budget on the built-in data and score rollouts")
    sk.add_argument("--workload", default=DEFAULT_WORKLOAD)
    sk.add_argument("--frameworks", type=_frameworks, default=FRAMEWORKS)
    sk.add_argument("--device", default="cpu")
    sk.add_argument("--batch-size", type=int, default=8)
    sk.add_argument("--train-steps", type=int, default=400, help="the training budget in Adam steps")
    sk.add_argument("--lr", type=float, default=2e-3)
    sk.add_argument("--n-init", type=int, default=16, help="initial conditions in the test split")
    sk.add_argument("--n-lead", type=int, default=8, help="autoregressive steps of 6 h")
    sk.add_argument("--seed", type=int, default=None)
    sk.add_argument("--results-dir", type=Path, default=Path("results"))
    sk.add_argument("--timeout", type=float, default=3600.0)

    rp = sub.add_parser("report", help="pair records and write an HTML, Markdown or CSV report")
    rp.add_argument("results", nargs="+", type=Path, help="records.jsonl files, or directories holding one")
    rp.add_argument("-o", "--output", type=Path, default=Path("results/report.html"))
    rp.add_argument("--format", choices=("html", "md", "csv"), default="html")
    rp.add_argument("--skip-invalid", action="store_true", help="report the valid records of a damaged file")

    dv = sub.add_parser("devices", help="list CUDA GPUs, Ascend NPUs and the CPU with profiles and power")
    dv.add_argument("--json", action="store_true")

    wl = sub.add_parser("workloads", help="list workloads with parameter counts and FLOPs")
    wl.add_argument("--json", action="store_true")
    return p


def _cmd_workloads(args) -> int:
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
    from reports.console import skill_tables
    from runners.devices import parse_device
    from runners.skill import SkillOptions, run_skill

    parse_device(args.device)
    opts = SkillOptions(
        workload=args.workload,
        frameworks=args.frameworks,
        device=args.device,
        batch_size=args.batch_size,
        train_steps=args.train_steps,
        lr=args.lr,
        n_init=args.n_init,
        n_lead=args.n_lead,
        seed=args.seed,
        results_dir=args.results_dir,
        timeout_s=args.timeout,
    )
    summary = run_skill(opts)
    print()
    print(skill_tables(summary))
    print(f"\nrecords appended to {Path(args.results_dir) / 'records.jsonl'}; run files in {summary['run_dir']}")
    ok = all(r["status"] == "ok" for r in summary["records"])
    return 0 if ok and (summary["agreement"] is None or summary["agreement"]["within_tolerance"]) else 1


def _cmd_report(args) -> int:
    from reports.build import write_report

    for path in write_report(args.results, args.output, args.format, args.skip_invalid):
        print(f"report written: {path.resolve()}")
    return 0


def _cmd_devices(args) -> int:
    from hardware_profiles.detect import detect_devices, format_devices

    devices = detect_devices()
    print(json.dumps(devices, indent=1) if args.json else format_devices(devices))
    return 0


def _cmd_run(args) -> int:
    from reports.console import parity_lines, run_table
    from runners.pair import PairOptions, run_pair

    opts = PairOptions(
        workload=args.workload,
        frameworks=args.frameworks,
        device=args.device,
        batch_size=args.batch_size,
        warmup_steps=args.warmup_steps,
        train_steps=args.train_steps,
        forward_steps=args.forward_steps,
        seed=args.seed,
        weights=args.weights,
        results_dir=args.results_dir,
        timeout_s=args.timeout,
        resume=args.resume,
    )
    outcome = run_pair(opts)
    print()
    print(run_table(outcome.records))
    if outcome.parity:
        print()
        print("\n".join(parity_lines(outcome.parity)))
    print(f"\nrecords appended to {Path(args.results_dir) / 'records.jsonl'}; run files in {outcome.run_dir}")
    records = [*outcome.records, *([outcome.parity_record] if outcome.parity_record else [])]
    ok = outcome.ok
    if args.skill:
        ok &= _run_skill_after(args, records)
    from reports.build import render

    report = args.report or Path(args.results_dir) / "report.html"
    for path in render(records, report, "html", [str(Path(args.results_dir) / "records.jsonl")]):
        print(f"\nreport written: {path.resolve()}")
    return 0 if ok else 1


def _run_skill_after(args, records: list[dict]) -> bool:
    """The skill part of the main job, for workloads the built-in data covers; adds its records."""
    from reports.console import skill_tables
    from runners.datasets.builtin import BUILTIN
    from runners.registry import get_workload
    from runners.skill import SkillOptions, run_skill

    h, w = get_workload(args.workload).model.img_size
    if BUILTIN.nlat % h or (BUILTIN.nlat // h) * w != BUILTIN.nlon:
        print(f"\nskill: skipped: the built-in data has no {h} x {w} grid (use pairbench skill with your data)")
        return True
    print()
    summary = run_skill(
        SkillOptions(
            workload=args.workload,
            frameworks=args.frameworks,
            device=args.device,
            seed=args.seed,
            results_dir=args.results_dir,
            timeout_s=args.timeout,
        )
    )
    print()
    print(skill_tables(summary))
    records += summary["records"]
    good = all(r["status"] == "ok" for r in summary["records"])
    return good and (summary["agreement"] is None or summary["agreement"]["within_tolerance"])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {
            "run": _cmd_run,
            "skill": _cmd_skill,
            "report": _cmd_report,
            "workloads": _cmd_workloads,
            "devices": _cmd_devices,
        }[args.command](args)
    except (PairbenchError, FileNotFoundError, CheckpointError, WeightsMismatch, DataError) as exc:
        print(f"pairbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
