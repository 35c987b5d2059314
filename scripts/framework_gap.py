"""MindSpore over PyTorch on this machine: training step and forward pass, measured side by side in one run.

Every setting of each framework (execution mode x spectral transform) runs through pairbench's own worker on the
same weights and batches, round after round with the order rotated, so that drift hits all alike. For each
workload it prints the medians, then MindSpore / PyTorch (median ratios with 95% bootstrap intervals over the
per-step samples) for: each framework's best setting (lowest median training step), and eager against eager on
the reference's FFT path. Targets (issue 16): training step within 2.5x on the small workloads, forward within 3x.

    python scripts/framework_gap.py                                   # tiny and small of both families
    python scripts/framework_gap.py --workloads fourcastnet-small --rounds 3
    python scripts/framework_gap.py --settings eager/fft,eager/dft    # skip the compiled settings
    python scripts/framework_gap.py --settings eager/fft,eager/dft,mindspore:compiled/dft   # one framework's only

torch.compile (inductor) compiles C++ on the CPU: each compiled setting costs a minute or more the first time.
A setting a framework refuses (MindSpore compiled on the FFT path: docs/mindspore-performance.md) is listed
with its reason and left out of the comparison."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reports.stats import bootstrap_ratio  # noqa: E402
from runners.data.synthetic import DATA_GENERATOR  # noqa: E402
from runners.errors import PairbenchError  # noqa: E402
from runners.experiments.runs import run_config, run_worker  # noqa: E402
from runners.records import schema  # noqa: E402
from runners.spec import FRAMEWORKS, MODES  # noqa: E402
from runners.weights.canonical import save_weights  # noqa: E402
from runners.workloads.registry import get_workload  # noqa: E402
from runners.workloads.spectral import SPECTRAL_TRANSFORMS  # noqa: E402

SETTINGS = tuple(f"{mode}/{transform}" for mode in MODES for transform in SPECTRAL_TRANSFORMS)
STEPS = {"fourcastnet-tiny": 40, "aigoms-tiny": 40, "fourcastnet-small": 15, "aigoms-small": 15}
TARGETS = {"train": 2.5, "forward": 3.0}


def run_once(name: str, fw: str, setting: str, weights: Path, digest: str, steps: int, args, prefix: Path):
    """One worker run of ``setting`` through pairbench's own run configuration (runners.experiments.runs)."""
    mode, transform = setting.split("/")
    spec = get_workload(name).overridden({"spectral_transform": transform})
    ident = schema.identity(
        "run", model=spec.model.to_dict(), weights_sha256=digest, seed=args.seed, data={"generator": DATA_GENERATOR},
        hyper_parameters=spec.hyper_parameters(), batch_size=args.batch, precision="fp32", mode=mode, recompute=False,
        threads=args.threads, warmup_steps=3, train_steps=steps, forward_steps=steps, objective="forecast", nproc=1,
    )  # fmt: skip
    return run_worker(run_config(ident, name, fw, weights, "cpu"), prefix, timeout_s=3600.0)


def measure(args, tmp: Path) -> dict:
    """{workload: {(framework, setting): {"train": [...], "forward": [...]} or {"refused": reason}}}"""
    out = {}
    for name in args.workloads:
        spec = get_workload(name)
        weights = tmp / f"{name}.safetensors"
        digest = save_weights(weights, spec.model, spec.model.init_weights(args.seed))
        steps = args.steps or STEPS.get(name, 15)
        cells = {
            (fw, s.split(":")[-1]): {"train": [], "forward": []}
            for s in args.settings
            for fw in args.frameworks
            if ":" not in s or s.split(":")[0] == fw
        }
        order = list(cells)
        for r in range(args.rounds):
            for key in order[r % len(order) :] + order[: r % len(order)]:  # rotated each round
                if "refused" in cells[key]:
                    continue
                fw, setting = key
                t0 = time.perf_counter()
                prefix = tmp / f"{name}-{fw}-{setting.replace('/', '-')}-r{r}"  # one per run: no stale result read
                result = run_once(name, fw, setting, weights, digest, steps, args, prefix)
                if result["status"] != "ok":
                    cells[key] = {"refused": f"{result['status']}: {result.get('reason', '')}"}
                    print(f"  {name} {fw:<9} {setting:<12} {cells[key]['refused'][:150]}", flush=True)
                    continue
                cells[key]["train"] += result["step_ms"]
                cells[key]["forward"] += result["forward_ms"]
                print(
                    f"  {name} {fw:<9} {setting:<12} round {r + 1}/{args.rounds}: "
                    f"train {np.median(result['step_ms']):8.2f} ms, forward {np.median(result['forward_ms']):8.2f} ms "
                    f"({time.perf_counter() - t0:5.1f} s)",
                    flush=True,
                )
        out[name] = cells
    return out


def best(cells: dict, fw: str) -> str | None:
    measured = [(np.median(c["train"]), s) for (f, s), c in cells.items() if f == fw and "train" in c and c["train"]]
    return min(measured)[1] if measured else None


def report(results: dict) -> list[str]:
    lines = []
    for name, cells in results.items():
        lines += ["", f"{name}: medians (ms)", f"  {'framework':<10} {'setting':<13} {'train step':>11} {'forward':>9}"]
        for (fw, setting), c in cells.items():
            if "refused" in c:
                lines.append(f"  {fw:<10} {setting:<13} refused: {c['refused'][:110]}")
            else:
                lines.append(f"  {fw:<10} {setting:<13} {np.median(c['train']):>11.2f} {np.median(c['forward']):>9.2f}")
        pairs = [
            ("best of each", best(cells, "mindspore"), best(cells, "torch")),
            ("eager vs eager", "eager/fft", "eager/fft"),
        ]
        for label, ms_setting, pt_setting in pairs:
            a, b = cells.get(("mindspore", ms_setting), {}), cells.get(("torch", pt_setting), {})
            if not a.get("train") or not b.get("train"):
                continue
            for what in ("train", "forward"):
                r = bootstrap_ratio(a[what], b[what])
                target = TARGETS[what]
                met = "within" if r.high <= target else ("not within" if r.low > target else "unclear (interval spans)")
                lines.append(
                    f"  MindSpore/PyTorch {what:<7} {label:<15} ({ms_setting} / {pt_setting}): {r.value:5.2f} "
                    f"[{r.low:.2f}, {r.high:.2f}]  {met} {target}x"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="fourcastnet-tiny,fourcastnet-small,aigoms-tiny,aigoms-small")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help="mode/transform pairs, comma-separated; FRAMEWORK:mode/transform for one framework only",
    )
    ap.add_argument("--threads", type=int, help="intra-op threads of every run (default: each framework's own)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, help="timed steps per run (default: 40 tiny, 15 small)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    args.settings = [s for s in args.settings.split(",") if s]
    bad = [s for s in args.settings if s.split(":")[-1] not in SETTINGS or s.count(":") > 1]
    if bad or args.rounds < 1 or (args.steps is not None and args.steps < 2):
        ap.error(f"settings are {', '.join(SETTINGS)}; --rounds >= 1, --steps >= 2" + (f" (got {bad})" if bad else ""))
    try:
        for name in args.workloads:
            get_workload(name)
    except PairbenchError as exc:
        ap.error(str(exc))
    if not any(":" not in s or s.split(":")[0] in args.frameworks for s in args.settings):
        ap.error("no setting applies to the frameworks given")
    t0 = time.perf_counter()
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"load average at start: {load} ({os.cpu_count()} CPUs); batch {args.batch}, {args.rounds} rounds", flush=True
    )
    with tempfile.TemporaryDirectory(prefix="pairbench-gap-") as tmp:
        results = measure(args, Path(tmp))
    print("\n".join(report(results)))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nload average at end: {load}; wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
